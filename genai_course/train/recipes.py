"""Recipes: every model a chapter trains, its settings, and the one function that trains it.

A recipe holds a model's settings under each profile, as frozen dataclasses
(``quick``: two CPU cores, about a minute a chapter; ``full``: the book's real
results, on one GPU), and the function that trains it with
:func:`~genai_course.train.fit`. Notebooks (the appendix of common mistakes included),
the benchmarks and the command line all train through it, so a model is trained one way everywhere
and the profile, not the caller, chooses how long::

    from genai_course.train.recipes import RECIPES

    vae = RECIPES["vae"]
    settings = vae.settings()           # the active profile's (GENAI_COURSE_PROFILE)
    trained = vae.train(settings)       # trained.model, trained.history

An experiment that changes one setting says so with
``dataclasses.replace(recipe.settings(), lr=2e-2)``. Every trainer takes
``seed`` (weights, noise and data order), ``device``, ``data`` (the training
data, when the caller has it already) and the options of ``fit`` that do not
change what is trained (``checkpoint``, ``checkpoint_every``, ``resume``,
``log_every``, ``desc``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cache, partial
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from genai_course import distributed
from genai_course.config import check_positive_int, get_profile, seed_everything
from genai_course.data import (
    binarize,
    binarized_fashion_mnist,
    cache_dir,
    load_fashion_mnist,
    load_shakespeare,
    ring_of_gaussians,
)
from genai_course.device import get_device
from genai_course.gan import (
    GAN,
    DCGANDiscriminator,
    DCGANGenerator,
    MLPDiscriminator,
    MLPGenerator,
    gan_step,
    to_gan_range,
)
from genai_course.lstm import CharLSTM, bits_per_char, tbptt_step, text_chunks
from genai_course.markov import CharVocab
from genai_course.metrics import FashionClassifier
from genai_course.pixels import IndependentBernoulli
from genai_course.train.history import History
from genai_course.train.loop import fit
from genai_course.vae import VAE, ConvVAE, elbo, negative_elbo

# -- settings ------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """What every recipe sets; a model's own settings add its sizes."""

    train_size: int | None  # training examples used (characters of text); None = all
    epochs: int  # passes over those examples
    batch_size: int  # examples per process and step (text: streams read side by side)
    lr: float  # Adam's learning rate

    def __post_init__(self):  # also on dataclasses.replace: a typo fails here, named
        for name in ("epochs", "batch_size"):
            check_positive_int(name, getattr(self, name))
        if self.train_size is not None:
            check_positive_int("train_size", self.train_size)
        if isinstance(self.lr, bool) or not isinstance(self.lr, int | float) or not self.lr >= 0:
            raise ValueError(f"lr must be a non-negative number, got {self.lr!r}")


def _check_choice(name: str, value, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")


@dataclass(frozen=True)
class GANSettings(Settings):
    architecture: str  # "ring" (MLPs on 2-D points), "mlp" or "dcgan" (on 28 x 28 images)
    latent_dim: int  # dimensions of the noise z
    generator_width: int  # hidden units of each MLP layer, or DCGAN's base channels
    discriminator_width: int  # the same, for the discriminator
    discriminator_layers: int  # hidden layers of an MLP discriminator (DCGAN: 0, unused)
    num_fixed: int  # fixed noise vectors whose samples are kept after every epoch

    def __post_init__(self):
        super().__post_init__()
        _check_choice("architecture", self.architecture, ("ring", "mlp", "dcgan"))
        for name in ("latent_dim", "generator_width", "discriminator_width", "num_fixed"):
            check_positive_int(name, getattr(self, name))


@dataclass(frozen=True)
class VAESettings(Settings):
    architecture: str  # "mlp" or "conv"
    latent_dim: int  # dimensions of the code z
    width: int  # hidden units of the MLP, or base channels of the conv VAE
    eval_size: int | None  # test images scored after every epoch; None = all 10,000

    def __post_init__(self):
        super().__post_init__()
        _check_choice("architecture", self.architecture, ("mlp", "conv"))
        for name in ("latent_dim", "width"):
            check_positive_int(name, getattr(self, name))
        if self.eval_size is not None:
            check_positive_int("eval_size", self.eval_size)


@dataclass(frozen=True)
class LSTMSettings(Settings):
    embed_dim: int  # size of each character's embedding
    hidden_size: int  # LSTM units per layer
    num_layers: int  # stacked LSTM layers
    dropout: float  # share of LSTM outputs zeroed in training (between layers, before the head)
    seq_len: int  # characters per stream and step: how far back gradients flow (TBPTT)
    clip: float  # gradient-norm clipping threshold

    def __post_init__(self):
        super().__post_init__()
        for name in ("embed_dim", "hidden_size", "num_layers", "seq_len"):
            check_positive_int(name, getattr(self, name))
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if not self.clip > 0:
            raise ValueError(f"clip must be positive, got {self.clip!r}")


@dataclass
class Trained:
    """What a recipe returns."""

    model: nn.Module  # the trained model (a GAN: both networks), in training mode
    history: History  # what fit measured
    examples: int  # what one epoch trains on: images, points, or chunks of text
    snapshots: list[torch.Tensor] = field(default_factory=list)  # GANs: fixed-noise samples


@dataclass(frozen=True)
class Recipe:
    """One model: what it is, its settings under each profile, and its trainer."""

    description: str  # one line: the model, its data and its chapter
    quick: Settings  # two CPU cores, about a minute a chapter
    full: Settings  # the book's real results, on one GPU
    train: Callable[..., Trained]  # train(settings, *, seed, device, data, **fit options)
    parallel: bool = True  # whether it trains on several processes under torchrun

    def settings(self, profile: str | None = None) -> Settings:
        """The settings of ``profile`` (default: the active one, see ``config.get_profile``)."""
        return getattr(self, get_profile(profile).name)


# -- what the trainers share -----------------------------------------------------------


def _prepare(settings: Settings, kind: type, seed: int, device) -> torch.device:
    """Check ``settings`` is a ``kind``; seed every generator, then pick the
    device: the same start for every recipe."""
    if not isinstance(settings, kind):
        raise TypeError(
            f"settings must be {kind.__name__} (a recipe's, e.g. RECIPES[name].settings()), "
            f"got {type(settings).__name__}"
        )
    seed_everything(seed)
    return get_device(device)


def _one_process(why: str) -> None:
    """Stop a recipe that trains on one process only when torchrun started several."""
    if distributed.current().world_size > 1:
        raise ValueError(f"{why}, so it trains on one process only; run it without torchrun")


def _place(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` on ``device``; a convolutional one in the channels-last layout on the CPU and
    on CUDA, where oneDNN and cuDNN run its convolutions fastest (measured on two CPU cores:
    the conv VAE's step about 30 % faster, the DCGAN's a few per cent).
    Only the layout of the weights changes: the model computes the same function."""
    model = model.to(device)
    convolutional = any(isinstance(m, nn.Conv2d | nn.ConvTranspose2d) for m in model.modules())
    if convolutional and device.type in ("cpu", "cuda"):
        model = model.to(memory_format=torch.channels_last)
    return model


@cache
def _code_digest() -> str:
    """A digest of the package's source: a saved run is not reused by changed code."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).resolve().parents[1].rglob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def saved_run(name: str, settings: Settings, seed: int = 0) -> Path:
    """Where a recipe's finished run is kept for other chapters: a checkpoint in the user
    cache, named by the recipe, a digest of its settings and seed, and the versions of the
    package (its source) and of PyTorch. A chapter that trains the model passes ``checkpoint=`` this
    path; a later chapter that needs the same model passes it with ``resume=True``, which
    loads the finished run (on the CPU, bit for bit the model the first chapter trained)
    or, where no chapter has trained it yet, trains it."""
    if name not in RECIPES:
        raise ValueError(f"name must be one of {', '.join(RECIPES)}, got {name!r}")
    key = repr((name, settings, seed, _code_digest(), torch.__version__)).encode()
    return cache_dir() / "runs" / f"{name}-{hashlib.sha256(key).hexdigest()[:16]}.pt"


def _adam(parameters, lr: float, betas: tuple[float, float] = (0.9, 0.999)):
    # PyTorch's fused Adam: the same update as the default one, in one kernel per step
    return torch.optim.Adam(parameters, lr=lr, betas=betas, fused=True)


# what a caller may pass on to fit: options that do not change what is trained
OPTIONS = ("checkpoint", "checkpoint_every", "resume", "log_every", "desc")


def _fit(model, optimizer, data, settings: Settings, seed: int, options: dict, **how) -> History:
    """``fit`` with a recipe's epochs, batch size and seed, and the caller's options."""
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise TypeError(
            f"a recipe's trainer takes no {', '.join(unknown)}; change its settings with "
            f"dataclasses.replace, or pass one of {', '.join(OPTIONS)}"
        )
    return fit(model, optimizer, data, epochs=settings.epochs, batch_size=settings.batch_size,
               seed=seed, **how, **options)  # fmt: skip


# -- the trainers ---------------------------------------------------------------------


def train_pixels(settings: Settings, *, seed: int = 0, device=None, **options) -> Trained:
    """The pipeline chapter's independent-pixel model: Adam on the mean negative
    log-likelihood of the book's fixed binarisation of the training images;
    the test NLL (nats per image) after every epoch."""
    _one_process("the independent-pixel model has no forward pass for DDP to wrap")
    device = _prepare(settings, Settings, seed, device)
    x_train = binarized_fashion_mnist("train")[: settings.train_size]  # (N, 28, 28)
    x_test = binarized_fashion_mnist("test").to(device)  # (10000, 28, 28)
    model = IndependentBernoulli().to(device)  # every theta_d starts at 1/2
    options.setdefault("desc", "independent pixels")
    history = _fit(
        model, _adam(model.parameters(), settings.lr), x_train, settings, seed, options,
        loss_fn=lambda x: -model.log_prob(x),  # (B,): nats per image
        evaluate=lambda: {"test NLL": -model.log_prob(x_test).mean().item()},
    )  # fmt: skip
    return Trained(model, history, len(x_train))


def gan_data(settings: GANSettings) -> torch.Tensor:
    """A GAN recipe's training data: points of the ring (N, 2), or images in [-1, 1]."""
    if settings.architecture == "ring":
        generator = torch.Generator().manual_seed(0)  # the chapter's one draw of the data
        points, _ = ring_of_gaussians(settings.train_size, generator=generator)
        return points  # (N, 2)
    images = load_fashion_mnist("train").images[: settings.train_size]
    return to_gan_range(images)  # (N, 1, 28, 28) in [-1, 1], the range of the generator's tanh


def build_gan(settings: GANSettings) -> GAN:
    """The networks of a GAN recipe, freshly initialised (from torch's global generator)."""
    s = settings
    if s.architecture == "dcgan":
        G = DCGANGenerator(s.latent_dim, width=s.generator_width)
        D = DCGANDiscriminator(width=s.discriminator_width)
    else:  # "ring" or "mlp"
        data_dim, shape = (2, None) if s.architecture == "ring" else (784, (28, 28))
        G = MLPGenerator(s.latent_dim, data_dim, hidden_dim=s.generator_width, image_shape=shape)
        D = MLPDiscriminator(data_dim, s.discriminator_width, s.discriminator_layers)
    return GAN(G, D, num_fixed=s.num_fixed)


def _check_gan_data(data, settings: GANSettings) -> None:
    """Points (N, 2) for the ring; images in [-1, 1], the range of the generator's tanh."""
    if not isinstance(data, torch.Tensor) or not data.is_floating_point():
        raise TypeError("data must be a floating-point torch.Tensor (images: use to_gan_range)")
    if settings.architecture != "ring" and (data.min() < -1 or data.max() > 1):
        raise ValueError(
            f"image data must be in [-1, 1], the range of the generator's tanh; got values "
            f"from {data.min().item():.3g} to {data.max().item():.3g} (use to_gan_range)"
        )


class _Snapshots:
    """``fit``'s evaluation for a GAN: keeps the samples of the fixed noise."""

    def __init__(self, gan: GAN):
        self.gan, self.images = gan, []

    def __call__(self) -> dict[str, float]:
        self.images.append(self.gan.snapshot())
        return {}


def train_gan(
    settings: GANSettings, *, seed: int = 0, device=None, data: torch.Tensor | None = None,
    non_saturating: bool = True, **options,
) -> Trained:
    """The GAN chapter's GANs: both networks trained by :func:`~genai_course.gan.gan_step`
    with Adam (``betas=(0.5, 0.999)``, as DCGAN); the samples of the fixed noise
    are kept after every epoch (``Trained.snapshots``; a resumed run keeps
    those of the epochs it ran itself). ``data``: the training data if the
    caller has it already (default: ``gan_data(settings)``)."""
    device = _prepare(settings, GANSettings, seed, device)
    data = gan_data(settings) if data is None else data
    _check_gan_data(data, settings)
    gan = _place(build_gan(settings), device)
    opt_d = _adam(gan.D.parameters(), settings.lr, betas=(0.5, 0.999))
    opt_g = _adam(gan.G.parameters(), settings.lr, betas=(0.5, 0.999))
    snapshots = _Snapshots(gan)
    options.setdefault("desc", f"{settings.architecture} GAN")
    history = _fit(
        gan, {"D": opt_d, "G": opt_g}, data, settings, seed, options,
        step=gan_step(gan, opt_d, opt_g, non_saturating), evaluate=snapshots,
    )  # fmt: skip
    return Trained(gan, history, len(data), snapshots.images)


def build_vae(settings: VAESettings) -> VAE | ConvVAE:
    """The model of a VAE recipe, freshly initialised (from torch's global generator)."""
    if settings.architecture == "mlp":
        return VAE(784, settings.width, settings.latent_dim)
    return ConvVAE(settings.latent_dim, width=settings.width)  # "conv"


def train_vae(
    settings: VAESettings, *, seed: int = 0, device=None, data: torch.Tensor | None = None,
    loss: Callable | None = None, **options,
) -> Trained:  # fmt: skip
    """The VAE chapter's VAEs on dynamically binarised images (binarised afresh
    in every batch), descending ``loss(model, x)`` per image (default: the negative
    ELBO, without its per-step check that ``x`` is in [0, 1], which binarised batches
    are by construction; the appendix of common mistakes passes a wrong loss); after every
    epoch the test -ELBO and its two terms on ``eval_size`` test images of the book's binarisation.
    ``data``: the uint8 training images if the caller has them already."""
    loss = partial(negative_elbo, check_values=False) if loss is None else loss
    device = _prepare(settings, VAESettings, seed, device)
    if data is None:
        data = load_fashion_mnist("train").images[: settings.train_size]  # (N, 28, 28) uint8
    x_eval = binarized_fashion_mnist("test")[: settings.eval_size].to(device)
    model = _place(build_vae(settings), device)
    net = distributed.wrap(model)  # the loss calls this: under torchrun it averages gradients

    def evaluate() -> dict[str, float]:
        # one code per image from a generator of its own: scoring draws nothing from the
        # global generator, so training goes the same way whatever eval_size is
        codes = torch.Generator().manual_seed(0)
        bound = elbo(x_eval, *model(x_eval, codes))  # model(x): logits, mu, logvar
        return {
            "test -ELBO": -bound.elbo.mean().item(),
            "test reconstruction": -bound.reconstruction.mean().item(),
            "test KL": bound.kl.mean().item(),
        }

    options.setdefault("desc", f"{settings.architecture} VAE")
    history = _fit(
        model, _adam(model.parameters(), settings.lr), data, settings, seed, options,
        loss_fn=lambda batch: loss(net, binarize(batch)), evaluate=evaluate,
    )  # fmt: skip
    return Trained(model, history, len(data))


def char_lstm_data(settings: LSTMSettings) -> tuple[CharVocab, torch.Tensor]:
    """The vocabulary of the whole text, and the training text as chunks (C, B, T + 1)."""
    vocab = CharVocab(load_shakespeare())
    train_ids = vocab.encode(load_shakespeare("train"))[: settings.train_size]
    return vocab, text_chunks(train_ids, settings.batch_size, settings.seq_len)


def build_char_lstm(settings: LSTMSettings, vocab_size: int) -> CharLSTM:
    """The model of the LSTM recipe, freshly initialised (from torch's global generator)."""
    s = settings
    return CharLSTM(vocab_size, s.embed_dim, s.hidden_size, s.num_layers, s.dropout)


def train_char_lstm(
    settings: LSTMSettings, *, seed: int = 0, device=None,
    data: tuple[CharVocab, torch.Tensor] | None = None, **options,
) -> Trained:  # fmt: skip
    """The sequences chapter's character LSTM on Shakespeare, by truncated
    backpropagation through time (:func:`~genai_course.lstm.tbptt_step`): the
    text read in order as ``batch_size`` streams of ``seq_len`` characters a
    step; the validation bits per character after every epoch. ``data``:
    ``char_lstm_data(settings)`` if the caller has it already."""
    _one_process("the character LSTM reads its text in order, carrying its state from one "
                 "chunk to the next")  # fmt: skip
    device = _prepare(settings, LSTMSettings, seed, device)
    vocab, chunks = char_lstm_data(settings) if data is None else data  # chunks: (C, B, T + 1)
    valid_ids = vocab.encode(load_shakespeare("valid")).to(device)
    model = build_char_lstm(settings, len(vocab)).to(device)
    optimizer = _adam(model.parameters(), settings.lr)
    options.setdefault("desc", "char LSTM")
    history = fit(
        model, optimizer, (chunks, torch.arange(len(chunks))),
        step=tbptt_step(model, optimizer, clip=settings.clip),
        epochs=settings.epochs, batch_size=1, shuffle=False, seed=seed,
        evaluate=lambda: {"valid bits/char": bits_per_char(model, valid_ids)}, **options,
    )  # fmt: skip
    return Trained(model, history, len(chunks))


def train_classifier(settings: Settings, *, seed: int = 0, device=None, **options) -> Trained:
    """The classifier whose features the Fréchet distance uses: cross-entropy
    on the labels with Adam (the default, unfused one, as the shipped weights
    were made); the test accuracy after every epoch."""
    device = _prepare(settings, Settings, seed, device)
    train, test = load_fashion_mnist("train"), load_fashion_mnist("test")
    n = settings.train_size
    x_test, y_test = test.images.to(device), test.labels.to(device)
    model = FashionClassifier().to(device)
    net = distributed.wrap(model)  # the loss calls this: under torchrun it averages gradients
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    options.setdefault("desc", "classifier")
    history = _fit(
        model, optimizer, (train.images[:n], train.labels[:n]), settings, seed, options,
        loss_fn=lambda x, y: F.cross_entropy(net(x), y, reduction="none"),  # (B,)
        evaluate=lambda: {"test accuracy": (model.predict(x_test) == y_test).float().mean()},
    )  # fmt: skip
    return Trained(model, history, len(train.images[:n]))


# -- the recipes ----------------------------------------------------------------------

_RING = GANSettings(train_size=20_000, epochs=10, batch_size=32, lr=1e-3, architecture="ring",
                    latent_dim=2, generator_width=128, discriminator_width=128,
                    discriminator_layers=2, num_fixed=2000)  # fmt: skip
_MLP_GAN = GANSettings(train_size=20_000, epochs=2, batch_size=64, lr=1e-3, architecture="mlp",
                       latent_dim=64, generator_width=512, discriminator_width=512,
                       discriminator_layers=2, num_fixed=64)  # fmt: skip
# quick: 2 passes over 10,000 images in batches of 32 at twice DCGAN's learning rate: a better
# Fréchet distance than 2 passes over 20,000 in batches of 64 at 2e-4, in less time
_DCGAN = GANSettings(train_size=10_000, epochs=2, batch_size=32, lr=4e-4, architecture="dcgan",
                     latent_dim=64, generator_width=32, discriminator_width=32,
                     discriminator_layers=0, num_fixed=64)  # fmt: skip
_VAE = VAESettings(train_size=20_000, epochs=10, batch_size=128, lr=1e-3, architecture="mlp",
                   latent_dim=20, width=400, eval_size=2000)  # fmt: skip
# quick: 2 passes in short chunks (1,162 steps): a little better than 6 passes of 64 x 100
# (870 steps), in a third of the time
_LSTM = LSTMSettings(train_size=None, epochs=2, batch_size=32, lr=5e-3, embed_dim=32,
                     hidden_size=256, num_layers=1, dropout=0.0, seq_len=50, clip=1.0)  # fmt: skip
_FULL = {"train_size": None, "epochs": 20}  # the whole training split, longer
_FULL_VAE = {**_FULL, "eval_size": None}


def _recipe(
    description: str, quick: Settings, train: Callable[..., Trained], parallel=True, **full
) -> Recipe:
    """A recipe whose ``full`` settings are ``quick``'s with ``full``'s changes."""
    return Recipe(description, quick, replace(quick, **full), train, parallel)


RECIPES: dict[str, Recipe] = {
    "pixels": _recipe(
        "independent pixels (the pipeline chapter) on binarised Fashion-MNIST",
        Settings(train_size=20_000, epochs=3, batch_size=128, lr=0.05), train_pixels,
        parallel=False, **_FULL,
    ),
    "ring_gan": _recipe("MLP GAN on a ring of eight Gaussians (the GAN chapter)", _RING, train_gan),
    "mlp_gan": _recipe(
        "MLP GAN (512 hidden units) on Fashion-MNIST (the GAN chapter)", _MLP_GAN, train_gan,
        **_FULL,
    ),
    "dcgan": _recipe(
        "DCGAN (width 32, 64 latent dimensions) on Fashion-MNIST (the GAN chapter)", _DCGAN,
        train_gan, **_FULL, batch_size=64, lr=2e-4,
    ),
    "vae": _recipe(
        "MLP VAE (784-400-20) on dynamically binarised Fashion-MNIST (the VAE chapter)", _VAE,
        train_vae, **_FULL_VAE,
    ),
    "conv_vae": _recipe(
        "convolutional VAE (width 32, 20 latent dimensions) on binarised Fashion-MNIST",
        # quick: 4 epochs of smaller batches (more steps): within a nat of 10 epochs of 128 in 40 %
        # of the time
        replace(_VAE, architecture="conv", width=32, epochs=4, batch_size=64, lr=2e-3),
        train_vae, **_FULL_VAE,
    ),
    "vae_2d": _recipe(
        "MLP VAE with a 2-D latent space, to draw (the VAE chapter)",
        replace(_VAE, latent_dim=2), train_vae, **_FULL_VAE,
    ),
    "char_lstm": _recipe(
        "character LSTM on Shakespeare, by truncated backpropagation (the sequences chapter)",
        _LSTM, train_char_lstm, parallel=False,
        epochs=50, batch_size=64, seq_len=100, lr=2e-3, hidden_size=512, num_layers=2,
        dropout=0.25,
    ),
    "classifier": _recipe(
        "the Fashion-MNIST classifier whose features the Fréchet distance uses",
        Settings(train_size=20_000, epochs=2, batch_size=128, lr=1e-3), train_classifier,
        train_size=None, epochs=12,
    ),
}

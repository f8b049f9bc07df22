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
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cache, partial
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from genai_course import distributed
from genai_course.bpe import BPE, train_bpe
from genai_course.conditional_gan import (
    ConditionalGAN,
    ConditionalGenerator,
    ProjectionDiscriminator,
    conditional_gan_step,
)
from genai_course.config import (
    check_non_negative_int,
    check_positive_int,
    check_real,
    get_profile,
    seed_everything,
)
from genai_course.data import (
    binarize,
    binarized_fashion_mnist,
    cache_dir,
    load_fashion_mnist,
    load_shakespeare,
    ring_of_gaussians,
)
from genai_course.device import get_device
from genai_course.diffusion import (
    PointDenoiser,
    alpha_bars,
    cosine_betas,
    linear_betas,
    noise_prediction_loss,
)
from genai_course.flow_matching import flow_matching_loss
from genai_course.flows import Flow, dequantize, discrete_bits_per_dim, image_flow, point_flow
from genai_course.gan import (
    GAN,
    DCGANDiscriminator,
    DCGANGenerator,
    MLPDiscriminator,
    MLPGenerator,
    gan_step,
    to_gan_range,
)
from genai_course.gan_stability import spectral_normalise, wgan_gp_step
from genai_course.lstm import CharLSTM, bits_per_char, tbptt_step, text_chunks
from genai_course.markov import CharVocab
from genai_course.metrics import FashionClassifier
from genai_course.pixels import IndependentBernoulli
from genai_course.train import parallel
from genai_course.train.history import History
from genai_course.train.loop import fit, gradient_step
from genai_course.transformer import (
    POSITIONS,
    CharGPT,
    text_bits_per_char,
    text_windows,
    window_loss,
)
from genai_course.unet import UNet
from genai_course.vae import (
    VAE,
    ConvVAE,
    elbo,
    gaussian_elbo,
    gaussian_negative_elbo,
    negative_elbo,
)

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
class StableGANSettings(GANSettings):
    method: str  # "gan" (the GAN chapter's game), "wgan-gp" or "spectral-norm"
    penalty: float  # WGAN-GP: the weight rho of the gradient penalty (other methods: unused)
    critic_steps: int  # WGAN-GP: critic steps per generator step (other methods: 1)

    def __post_init__(self):
        super().__post_init__()
        _check_choice("method", self.method, ("gan", "wgan-gp", "spectral-norm"))
        check_positive_int("critic_steps", self.critic_steps)
        if not self.penalty >= 0:
            raise ValueError(f"penalty must be a non-negative number, got {self.penalty!r}")
        if self.method == "wgan-gp" and self.architecture == "dcgan":
            raise ValueError("method 'wgan-gp' needs a critic without batch norm (the penalty "
                             "is per example): architecture 'ring' or 'mlp'")  # fmt: skip


@dataclass(frozen=True)
class VAESettings(Settings):
    architecture: str  # "mlp" or "conv"
    latent_dim: int  # dimensions of the code z
    width: int  # hidden units of the MLP, or base channels of the conv VAE
    eval_size: int | None  # test images scored after every epoch; None = all 10,000
    beta: float = 1.0  # the weight of the KL term in the loss; 1: the negative ELBO itself
    warmup_epochs: int = 0  # epochs over which the KL weight rises linearly from 0 to beta
    decoder_sigma: float | None = None  # None: Bernoulli decoder, binarised images; a number:
    # Gaussian decoder with this standard deviation, on grey levels in [0, 1]

    def __post_init__(self):
        super().__post_init__()
        _check_choice("architecture", self.architecture, ("mlp", "conv"))
        for name in ("latent_dim", "width"):
            check_positive_int(name, getattr(self, name))
        if self.eval_size is not None:
            check_positive_int("eval_size", self.eval_size)
        check_real("beta", self.beta, 0.0)
        check_non_negative_int("warmup_epochs", self.warmup_epochs)
        if self.decoder_sigma is not None:
            check_real("decoder_sigma", self.decoder_sigma, 0.0, low_open=True)


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


@dataclass(frozen=True)
class GPTSettings(Settings):
    context: int  # tokens the model reads at once (its window)
    dim: int  # width of the residual stream
    num_layers: int  # transformer blocks
    num_heads: int  # attention heads per block (dim / num_heads each)
    dropout: float  # share of activations zeroed in training
    position: str  # how order enters: "learned", "sinusoidal", "rotary" or "none"

    def __post_init__(self):
        super().__post_init__()
        for name in ("context", "dim", "num_layers", "num_heads"):
            check_positive_int(name, getattr(self, name))
        if self.dim % self.num_heads:
            raise ValueError(f"dim ({self.dim}) must be a multiple of num_heads "
                             f"({self.num_heads})")  # fmt: skip
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        _check_choice("position", self.position, POSITIONS)


@dataclass(frozen=True)
class BPEGPTSettings(GPTSettings):
    merges: int  # byte-pair merges learned from the training text (the tokens beyond characters)

    def __post_init__(self):
        super().__post_init__()
        check_positive_int("merges", self.merges)


@dataclass(frozen=True)
class FlowSettings(Settings):
    architecture: str  # "points": a RealNVP on the ring of Gaussians; "image": multi-scale, on
    # 8-bit Fashion-MNIST, dequantised
    steps: int  # couplings (points), or Glow steps at each of the two scales (images)
    width: int  # hidden units of the couplings' MLPs, or channels of their convolutions
    eval_size: int  # held-out points or test images scored after every epoch

    def __post_init__(self):
        super().__post_init__()
        _check_choice("architecture", self.architecture, ("points", "image"))
        for name in ("steps", "width", "eval_size"):
            check_positive_int(name, getattr(self, name))
        if self.architecture == "points" and self.train_size is None:
            raise ValueError("train_size must be a number of points to draw for architecture "
                             "'points', got None")  # fmt: skip


@dataclass(frozen=True)
class DiffusionSettings(Settings):
    objective: str  # "ddpm": predict the noise (Ho et al.); "flow-matching": the velocity
    architecture: str  # "points": an MLP on the ring of Gaussians; "image": the U-Net on
    # Fashion-MNIST dequantised to [-1, 1], class-conditional with labels dropped
    width: int  # hidden units of the MLP, or the U-Net's channels at 28 x 28
    steps: int  # T, the steps of the noising process (ddpm; flow matching: unused)
    schedule: str  # the betas: "linear" or "cosine" (ddpm; flow matching: unused)
    label_dropout: float  # share of training labels replaced by "no label" (images)
    eval_size: int  # held-out points or test images whose loss is scored after every epoch

    def __post_init__(self):
        super().__post_init__()
        _check_choice("objective", self.objective, ("ddpm", "flow-matching"))
        _check_choice("architecture", self.architecture, ("points", "image"))
        _check_choice("schedule", self.schedule, ("linear", "cosine"))
        for name in ("width", "steps", "eval_size"):
            check_positive_int(name, getattr(self, name))
        check_real("label_dropout", self.label_dropout, 0.0, 1.0)
        if self.architecture == "points" and self.train_size is None:
            raise ValueError("train_size must be a number of points to draw for architecture "
                             "'points', got None")  # fmt: skip

    def betas(self) -> torch.Tensor:
        """The schedule's :math:`\\beta_1, \\dots, \\beta_T`, (T,) float64."""
        return (linear_betas if self.schedule == "linear" else cosine_betas)(self.steps)


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


def train_stable_gan(
    settings: StableGANSettings, *, seed: int = 0, device=None,
    data: torch.Tensor | None = None, **options,
) -> Trained:  # fmt: skip
    """The chapter on stabilising GANs: the networks of ``build_gan`` trained by one of
    three methods. ``"gan"``: :func:`~genai_course.gan.gan_step`, Adam with
    ``betas=(0.5, 0.999)``, as ``train_gan``. ``"spectral-norm"``: the same, with every
    layer of the discriminator spectrally normalised
    (:func:`~genai_course.gan_stability.spectral_normalise`, batch norm removed).
    ``"wgan-gp"``: :func:`~genai_course.gan_stability.wgan_gp_step` with Adam's
    ``betas=(0.5, 0.9)`` (Gulrajani et al. use 0 and 0.9). The fixed-noise samples are
    kept after every epoch (``Trained.snapshots``)."""
    device = _prepare(settings, StableGANSettings, seed, device)
    data = gan_data(settings) if data is None else data
    _check_gan_data(data, settings)
    gan = build_gan(settings)
    if settings.method == "spectral-norm":
        spectral_normalise(gan.D)
    gan = _place(gan, device)
    betas = (0.5, 0.9) if settings.method == "wgan-gp" else (0.5, 0.999)
    opt_d = _adam(gan.D.parameters(), settings.lr, betas=betas)
    opt_g = _adam(gan.G.parameters(), settings.lr, betas=betas)
    if settings.method == "wgan-gp":
        step = wgan_gp_step(gan, opt_d, opt_g, settings.penalty, settings.critic_steps)
    else:
        step = gan_step(gan, opt_d, opt_g)
    snapshots = _Snapshots(gan)
    options.setdefault("desc", f"{settings.architecture} {settings.method}")
    history = _fit(gan, {"D": opt_d, "G": opt_g}, data, settings, seed, options, step=step,
                   evaluate=snapshots)  # fmt: skip
    return Trained(gan, history, len(data), snapshots.images)


def train_conditional_gan(
    settings: GANSettings, *, seed: int = 0, device=None,
    data: tuple[torch.Tensor, torch.Tensor] | None = None, **options,
) -> Trained:  # fmt: skip
    """The class-conditional DCGAN of the chapter on stabilising GANs
    (:mod:`~genai_course.conditional_gan`): a label-embedding generator and a projection
    discriminator, trained by :func:`~genai_course.conditional_gan.conditional_gan_step`
    with Adam (``betas=(0.5, 0.999)``) on Fashion-MNIST's images and labels; the
    fixed-noise samples (``num_fixed`` of them, split evenly over the ten classes) are
    kept after every epoch. ``data``: (images in [-1, 1], labels) if the caller has them."""
    device = _prepare(settings, GANSettings, seed, device)
    if settings.architecture != "dcgan":
        raise ValueError(f"the conditional GAN is a DCGAN: architecture must be 'dcgan', got "
                         f"{settings.architecture!r}")  # fmt: skip
    if data is None:
        train = load_fashion_mnist("train")
        n = settings.train_size
        data = (to_gan_range(train.images[:n]), train.labels[:n])
    _check_gan_data(data[0], settings)
    G = ConditionalGenerator(10, settings.latent_dim, settings.generator_width)
    D = ProjectionDiscriminator(10, settings.discriminator_width)
    gan = _place(ConditionalGAN(G, D, per_class=max(settings.num_fixed // 10, 1)), device)
    opt_d = _adam(gan.D.parameters(), settings.lr, betas=(0.5, 0.999))
    opt_g = _adam(gan.G.parameters(), settings.lr, betas=(0.5, 0.999))
    snapshots = _Snapshots(gan)
    options.setdefault("desc", "conditional GAN")
    history = _fit(
        gan, {"D": opt_d, "G": opt_g}, data, settings, seed, options,
        step=conditional_gan_step(gan, opt_d, opt_g), evaluate=snapshots,
    )  # fmt: skip
    return Trained(gan, history, len(data[0]), snapshots.images)


def build_vae(settings: VAESettings) -> VAE | ConvVAE:
    """The model of a VAE recipe, freshly initialised (from torch's global generator)."""
    if settings.architecture == "mlp":
        return VAE(784, settings.width, settings.latent_dim)
    return ConvVAE(settings.latent_dim, width=settings.width)  # "conv"


def _kl_weight(settings: VAESettings, optimizer, n: int) -> Callable[[], float | torch.Tensor]:
    """The KL term's weight at the coming step: ``beta`` without a warm-up; with one, the
    tensor ``beta * min(1, t / T)``, ``t`` the steps taken (the optimizer's count, which a
    checkpoint keeps, read without waiting for the device) and ``T`` those of ``warmup_epochs``."""
    if settings.warmup_epochs == 0:
        return lambda: settings.beta
    per_epoch = parallel.steps_left(n, 0, settings.batch_size, distributed.current())
    total = settings.warmup_epochs * per_epoch  # T
    first = optimizer.param_groups[0]["params"][0]

    def weight() -> torch.Tensor:
        t = optimizer.state.get(first, {}).get("step")  # None before the first step
        if t is None:
            return torch.zeros((), device=first.device)
        return settings.beta * torch.clamp(t.to(first.device) / total, max=1.0)

    return weight


def _vae_loss(settings: VAESettings, weight: Callable) -> Callable:
    """A VAE recipe's default ``loss(model, x)``, without the per-step value checks: the
    negative ELBO of its decoder, the KL weighted by ``weight()``."""
    if settings.decoder_sigma is not None:
        return lambda model, x: gaussian_negative_elbo(
            model, x, settings.decoder_sigma, beta=weight(), check_values=False)
    if settings.beta == 1.0 and settings.warmup_epochs == 0:
        return partial(negative_elbo, check_values=False)
    return lambda model, x: negative_elbo(model, x, beta=weight(), check_values=False)


def train_vae(
    settings: VAESettings, *, seed: int = 0, device=None, data: torch.Tensor | None = None,
    loss: Callable | None = None, **options,
) -> Trained:  # fmt: skip
    """The VAE chapters' VAEs: with a Bernoulli decoder on dynamically binarised images
    (binarised afresh in every batch), or with a Gaussian decoder on grey levels in [0, 1]
    (``decoder_sigma``), descending ``loss(model, x)`` per image (default: the negative
    ELBO, without its per-step check that ``x`` is in [0, 1], which the batches are by
    construction; its KL weighted by ``beta``, warmed up over ``warmup_epochs``; the appendix
    of common mistakes passes a wrong loss); after every epoch the test -ELBO (with weight 1)
    and its two terms on ``eval_size`` test images (the book's binarisation, or grey levels).
    ``data``: the uint8 training images if the caller has them already."""
    device = _prepare(settings, VAESettings, seed, device)
    sigma = settings.decoder_sigma
    if loss is not None and (settings.beta != 1 or settings.warmup_epochs or sigma is not None):
        raise ValueError("loss replaces the recipe's loss, which settings.beta, "
                         "settings.warmup_epochs and settings.decoder_sigma choose: pass one or "
                         "the other")  # fmt: skip
    if data is None:
        data = load_fashion_mnist("train").images[: settings.train_size]  # (N, 28, 28) uint8
    if sigma is None:
        x_eval = binarized_fashion_mnist("test")[: settings.eval_size].to(device)
    else:  # grey levels in [0, 1]
        x_eval = load_fashion_mnist("test").images[: settings.eval_size].to(device) / 255
    model = _place(build_vae(settings), device)
    net = distributed.wrap(model)  # the loss calls this: under torchrun it averages gradients
    optimizer = _adam(model.parameters(), settings.lr)
    loss = _vae_loss(settings, _kl_weight(settings, optimizer, len(data))) if loss is None else loss
    prepare = binarize if sigma is None else (lambda batch: batch / 255)  # uint8 -> floats

    def evaluate() -> dict[str, float]:
        # one code per image from a generator of its own: scoring draws nothing from the
        # global generator, so training goes the same way whatever eval_size is
        codes = torch.Generator().manual_seed(0)
        outputs = model(x_eval, codes)  # logits, mu, logvar
        bound = elbo(x_eval, *outputs) if sigma is None else gaussian_elbo(
            x_eval, *outputs, sigma=sigma)  # fmt: skip
        return {
            "test -ELBO": -bound.elbo.mean().item(),
            "test reconstruction": -bound.reconstruction.mean().item(),
            "test KL": bound.kl.mean().item(),
        }

    options.setdefault("desc", f"{settings.architecture} VAE")
    history = _fit(
        model, optimizer, data, settings, seed, options,
        loss_fn=lambda batch: loss(net, prepare(batch)), evaluate=evaluate,
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


def cosine_schedule_step(loss_fn, optimizer: torch.optim.Optimizer, total_steps: int,
                         warmup: int):  # fmt: skip
    """``gradient_step`` with the learning rate warmed up linearly over ``warmup`` steps, then
    decayed to 0 along half a cosine by ``total_steps`` (what short transformer runs need: a
    constant rate high enough to learn fast stays too high to settle). The count starts from
    the optimizer's own (Adam's ``step``), so a resumed run continues the schedule."""
    inner = gradient_step(loss_fn, optimizer)
    base = [group["lr"] for group in optimizer.param_groups]
    first = optimizer.param_groups[0]["params"][0]
    done = None

    def step(*batch):
        nonlocal done
        if done is None:  # read once (a resumed run's), then counted here: no sync per step
            done = int(optimizer.state[first]["step"]) if first in optimizer.state else 0
        cosine = 0.5 * (1 + math.cos(math.pi * min(done / total_steps, 1)))
        factor = min((done + 1) / warmup, cosine)
        for group, lr in zip(optimizer.param_groups, base, strict=True):
            group["lr"] = lr * factor
        done += 1
        return inner(*batch)

    return step


def char_gpt_data(settings: GPTSettings) -> tuple[CharVocab, torch.Tensor]:
    """The vocabulary of the whole text, and the training text as windows (W, context + 1)."""
    vocab = CharVocab(load_shakespeare())
    train_ids = vocab.encode(load_shakespeare("train"))[: settings.train_size]
    return vocab, text_windows(train_ids, settings.context)


def build_char_gpt(settings: GPTSettings, vocab_size: int) -> CharGPT:
    """The model of the GPT recipe, freshly initialised (from torch's global generator)."""
    s = settings
    return CharGPT(vocab_size, s.context, s.dim, s.num_layers, s.num_heads, s.dropout, s.position)


def train_char_gpt(
    settings: GPTSettings, *, seed: int = 0, device=None,
    data: tuple[CharVocab, torch.Tensor] | None = None, **options,
) -> Trained:  # fmt: skip
    """The transformers chapter's character GPT on Shakespeare: windows of ``context + 1``
    characters of the training text in random order, each character a target once an epoch
    (:func:`~genai_course.transformer.text_windows`), Adam on a warmed-up cosine schedule
    (:func:`cosine_schedule_step`); the validation bits per character after every epoch.
    ``data``: ``char_gpt_data(settings)`` if the caller has it already."""
    device = _prepare(settings, GPTSettings, seed, device)
    data = char_gpt_data(settings) if data is None else data
    options.setdefault("desc", "char GPT")
    return _train_gpt(settings, seed, device, *data, options)


def bpe_gpt_data(settings: BPEGPTSettings, bpe: BPE | None = None) -> tuple[BPE, torch.Tensor]:
    """Byte-pair encoding with ``merges`` merges learned from the training text (or ``bpe``, if
    the caller has learned it already), and that text's tokens as windows (W, context + 1)."""
    train_text = load_shakespeare("train")
    if bpe is None:
        bpe = train_bpe(train_text, settings.merges)
    elif not isinstance(bpe, BPE) or len(bpe.merges) != settings.merges:
        raise ValueError(f"bpe must be a BPE of settings.merges = {settings.merges} merges")
    return bpe, text_windows(bpe.encode(train_text)[: settings.train_size], settings.context)


def train_bpe_gpt(
    settings: BPEGPTSettings, *, seed: int = 0, device=None,
    data: tuple[BPE, torch.Tensor] | None = None, **options,
) -> Trained:  # fmt: skip
    """The same GPT on byte-pair tokens (``train_size`` counts tokens): trained as
    :func:`train_char_gpt`, and measured, like it, in bits per *character* of the validation
    text, so that the two tokenisations compare. ``data``: ``bpe_gpt_data(settings)``."""
    device = _prepare(settings, BPEGPTSettings, seed, device)
    data = bpe_gpt_data(settings) if data is None else data
    options.setdefault("desc", "BPE GPT")
    return _train_gpt(settings, seed, device, *data, options)


def _train_gpt(settings: GPTSettings, seed: int, device, tokenizer, windows: torch.Tensor,
               options: dict) -> Trained:  # fmt: skip
    valid_text = load_shakespeare("valid")
    model = build_char_gpt(settings, len(tokenizer)).to(device)
    net = distributed.wrap(model)  # the loss calls this: under torchrun it averages gradients
    optimizer = _adam(model.parameters(), settings.lr)
    total = settings.epochs * math.ceil(len(windows) / settings.batch_size)
    step = cosine_schedule_step(lambda batch: window_loss(net, batch), optimizer, total,
                                warmup=min(100, max(total // 10, 1)))  # fmt: skip

    history = _fit(
        model, optimizer, windows, settings, seed, options, step=step,
        evaluate=lambda: {"valid bits/char": text_bits_per_char(model, tokenizer, valid_text)},
    )  # fmt: skip
    return Trained(model, history, len(windows))


def build_flow(settings: FlowSettings) -> Flow:
    """The model of a flow recipe, freshly initialised (from torch's global generator)."""
    if settings.architecture == "points":
        return point_flow(settings.steps, settings.width)
    return image_flow(settings.steps, settings.width)


def flow_data(settings: FlowSettings, split: str = "train") -> torch.Tensor:
    """What a flow recipe trains on (``split`` "train") or scores (``"test"``): ring points
    (N, 2), drawn from a generator seeded by the split, or uint8 images (N, 28, 28)."""
    size = settings.train_size if split == "train" else settings.eval_size
    if settings.architecture == "points":
        generator = torch.Generator().manual_seed({"train": 0, "test": 1}[split])
        return ring_of_gaussians(size, generator=generator)[0]
    return load_fashion_mnist(split).images[:size]


def flow_nll(flow: Flow, batch: torch.Tensor, generator=None) -> torch.Tensor:
    """A flow's loss per example: nats per point, or bits per dimension of 8-bit images
    (dequantised with ``generator``'s noise, the global one's by default)."""
    if batch.dtype != torch.uint8:
        return -flow.log_prob(batch)
    x = dequantize(batch, generator)[:, None]  # (B, 1, 28, 28)
    return discrete_bits_per_dim(flow.log_prob(x), x[0].numel())


def train_flow(settings: FlowSettings, *, seed: int = 0, device=None,
               data: torch.Tensor | None = None, **options) -> Trained:  # fmt: skip
    """The flows chapter's flows: Adam on the negative log-likelihood, exact by the change of
    variables (images: of the dequantised 8-bit images, a bound on the discrete one's), and
    after every epoch the same on held-out data (``eval_size`` test points or images; the
    images dequantised with a fixed noise). ``data``: ``flow_data(settings)``."""
    _one_process("ActNorm sets its scale from the first batch it sees, which would differ "
                 "between processes")  # fmt: skip
    device = _prepare(settings, FlowSettings, seed, device)
    data = flow_data(settings) if data is None else data
    held_out = flow_data(settings, "test").to(device)
    flow = _place(build_flow(settings), device)
    optimizer = _adam(flow.parameters(), settings.lr)
    name = "test NLL (nats/point)" if settings.architecture == "points" else "test bits/dim"

    def evaluate() -> dict[str, float]:
        noise = torch.Generator(device).manual_seed(0)
        with torch.no_grad():
            return {name: torch.cat([flow_nll(flow, chunk, noise)
                                     for chunk in held_out.split(500)]).mean().item()}  # fmt: skip

    options.setdefault("desc", f"{settings.architecture} flow")
    history = _fit(flow, optimizer, data, settings, seed, options,
                   loss_fn=lambda batch: flow_nll(flow, batch), evaluate=evaluate)  # fmt: skip
    return Trained(flow, history, len(data))


def build_diffusion(settings: DiffusionSettings) -> nn.Module:
    """The network of a diffusion or flow-matching recipe, freshly initialised."""
    if settings.architecture == "points":
        return PointDenoiser(settings.width)
    return UNet(channels=1, width=settings.width, num_classes=10)


def diffusion_data(settings: DiffusionSettings, split: str = "train"):
    """What a diffusion recipe trains on or scores: ring points (N, 2), drawn from a generator
    seeded by the split, or (uint8 images (N, 28, 28), labels (N,))."""
    size = settings.train_size if split == "train" else settings.eval_size
    if settings.architecture == "points":
        generator = torch.Generator().manual_seed({"train": 0, "test": 1}[split])
        return ring_of_gaussians(size, generator=generator)[0]
    images = load_fashion_mnist(split)
    return images.images[:size], images.labels[:size]


def to_diffusion_range(images: torch.Tensor, generator=None) -> torch.Tensor:
    """uint8 images (B, 28, 28) to dequantised ones in [-1, 1], (B, 1, 28, 28):
    :math:`2 (k + u) / 256 - 1`, :math:`u \\sim U(0, 1)`."""
    return 2 * dequantize(images, generator)[:, None] - 1


def diffusion_loss(model, settings: DiffusionSettings, batch, labels=None, generator=None):
    """A diffusion recipe's loss per example (B,): noise or velocity regression on points, or
    on dequantised images with labels dropped at ``settings.label_dropout`` (global generator)."""
    if labels is not None:
        batch = to_diffusion_range(batch, generator)
        drop = torch.rand(len(labels), generator=generator, device=labels.device)
        labels = labels.masked_fill(drop < settings.label_dropout, 10)  # 10: "no label"
    if settings.objective == "flow-matching":
        return flow_matching_loss(model, batch, labels, generator)
    alpha_bar = _alpha_bar(settings, batch.device, batch.dtype)
    return noise_prediction_loss(model, batch, alpha_bar, labels, generator)


@cache
def _alpha_bar(settings: DiffusionSettings, device: torch.device, dtype: torch.dtype):
    """The schedule's alpha-bars on ``device``, computed once, not at every training step."""
    return alpha_bars(settings.betas()).to(device=device, dtype=dtype)


def train_diffusion(settings: DiffusionSettings, *, seed: int = 0, device=None,
                    data=None, **options) -> Trained:  # fmt: skip
    """The diffusion chapter's models: Adam on the noise-prediction loss (``ddpm``) or the
    flow-matching loss, on the ring or on Fashion-MNIST; after every epoch the same loss on
    held-out data, with a fixed noise. ``data``: ``diffusion_data(settings)``."""
    device = _prepare(settings, DiffusionSettings, seed, device)
    data = diffusion_data(settings) if data is None else data
    held_out = diffusion_data(settings, "test")
    held_out = [t.to(device) for t in (held_out if isinstance(held_out, tuple) else (held_out,))]
    model = _place(build_diffusion(settings), device)
    net = distributed.wrap(model)  # the loss calls this: under torchrun it averages gradients
    optimizer = _adam(model.parameters(), settings.lr)

    def evaluate() -> dict[str, float]:
        noise = torch.Generator(device).manual_seed(0)
        with torch.no_grad():
            return {"test loss": torch.cat([
                diffusion_loss(model, replace(settings, label_dropout=0.0), *chunks,
                               generator=noise)
                for chunks in zip(*(t.split(500) for t in held_out), strict=True)
            ]).mean().item()}  # fmt: skip

    options.setdefault("desc", f"{settings.objective} ({settings.architecture})")
    history = _fit(model, optimizer, data, settings, seed, options,
                   loss_fn=lambda *batch: diffusion_loss(net, settings, *batch),
                   evaluate=evaluate)  # fmt: skip
    return Trained(model, history, len(data[0] if isinstance(data, tuple) else data))


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
# the chapter on stabilising GANs: small and short, so that a sweep over methods, learning
# rates and seeds runs in seconds (256 steps, about a second a run on one CPU core); large
# batches, since on so few steps they reached all eight modes where batches of 64 did not
_RING_SMALL = StableGANSettings(
    train_size=4096, epochs=16, batch_size=256, lr=2e-3, architecture="ring", latent_dim=2,
    generator_width=64, discriminator_width=64, discriminator_layers=2, num_fixed=2000,
    method="gan", penalty=0.0, critic_steps=1)  # fmt: skip
_VAE = VAESettings(train_size=20_000, epochs=10, batch_size=128, lr=1e-3, architecture="mlp",
                   latent_dim=20, width=400, eval_size=2000)  # fmt: skip
# quick: 2 passes in short chunks (1,162 steps): a little better than 6 passes of 64 x 100
# (870 steps), in a third of the time
_LSTM = LSTMSettings(train_size=None, epochs=2, batch_size=32, lr=5e-3, embed_dim=32,
                     hidden_size=256, num_layers=1, dropout=0.0, seq_len=50, clip=1.0)  # fmt: skip
# quick: one pass over the training text in windows of 64 (910 steps of 16 windows); rotary
# positions a little ahead of learned ones at this length (2.80 against 2.82 valid bits/char in
# a 41-second trial with a cosine schedule)
_GPT = GPTSettings(train_size=None, epochs=1, batch_size=16, lr=5e-3, context=64, dim=128,
                   num_layers=2, num_heads=4, dropout=0.0, position="rotary")  # fmt: skip
# quick: the same network on byte-pair tokens (256 merges: about two characters a token), in
# windows of 32 tokens, about the 64 characters of the character model's; one pass
_BPE_GPT = BPEGPTSettings(**{**vars(_GPT), "context": 32}, merges=256)
# quick: six wide couplings trained more steadily than eight of width 64 (whose held-out NLL
# jumped by a nat or more in some epochs) and in less time
_RING_FLOW = FlowSettings(train_size=20_000, epochs=10, batch_size=128, lr=1e-3,
                          architecture="points", steps=6, width=128, eval_size=10_000)  # fmt: skip
# quick: one pass over 10,000 images in batches of 32 at a high rate: 3.99 test bits/dim in
# 25 s, where batches of 64 at 1e-3 reached 4.54, barely below independent pixels
_IMAGE_FLOW = FlowSettings(train_size=10_000, epochs=1, batch_size=32, lr=5e-3,
                           architecture="image", steps=4, width=32, eval_size=2000)  # fmt: skip
_RING_DIFFUSION = DiffusionSettings(
    train_size=20_000, epochs=30, batch_size=128, lr=2e-3, objective="ddpm",
    architecture="points", width=128, steps=100, schedule="linear", label_dropout=0.0,
    eval_size=10_000,
)  # fmt: skip
_DDPM = DiffusionSettings(
    train_size=20_000, epochs=1, batch_size=64, lr=2e-3, objective="ddpm", architecture="image",
    width=8, steps=1000, schedule="cosine", label_dropout=0.1, eval_size=2000,
)  # fmt: skip
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
    "ring_gan_small": _recipe(
        "small MLP GAN on the ring, for sweeps (the chapter on stabilising GANs)",
        _RING_SMALL, train_stable_gan, epochs=48,
    ),
    "ring_wgan_gp": _recipe(
        "small MLP WGAN-GP on the ring (the chapter on stabilising GANs)",
        # Gulrajani et al.'s toy settings: rho = 0.1, five critic steps per generator step
        replace(_RING_SMALL, method="wgan-gp", penalty=0.1, critic_steps=5), train_stable_gan,
        epochs=48,
    ),
    "ring_sn_gan": _recipe(
        "small MLP GAN with a spectrally normalised discriminator on the ring",
        replace(_RING_SMALL, method="spectral-norm"), train_stable_gan, epochs=48,
    ),
    "sn_dcgan": _recipe(
        "DCGAN with a spectrally normalised discriminator on Fashion-MNIST",
        StableGANSettings(**vars(_DCGAN), method="spectral-norm", penalty=0.0, critic_steps=1),
        train_stable_gan, **_FULL, batch_size=64, lr=2e-4,
    ),
    "cgan": _recipe(
        "class-conditional DCGAN (projection discriminator) on Fashion-MNIST",
        # quick: one pass over 10,000 images, half the DCGAN's, to fit the chapter's minute
        replace(_DCGAN, epochs=1, num_fixed=80), train_conditional_gan, **_FULL,
        batch_size=64, lr=2e-4,
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
    "small_vae": _recipe(
        "MLP VAE (784-256-32) trained many times over, for beta and the KL warm-up (the chapter "
        "VAEs in practice)",
        # quick: 5 passes over 20,000 images at twice the VAE chapter's learning rate, so that
        # units collapse within the budget of a chapter that trains seven of them
        replace(_VAE, train_size=20_000, epochs=5, lr=2e-3, width=256, latent_dim=32),
        train_vae, **_FULL_VAE,
    ),
    "gaussian_vae": _recipe(
        "MLP VAE (784-256-32) with a Gaussian decoder on grey-level Fashion-MNIST (the chapter "
        "VAEs in practice)",
        replace(_VAE, train_size=20_000, epochs=5, lr=2e-3, width=256, latent_dim=32,
                decoder_sigma=0.1),
        train_vae, **_FULL_VAE,
    ),
    "char_lstm": _recipe(
        "character LSTM on Shakespeare, by truncated backpropagation (the sequences chapter)",
        _LSTM, train_char_lstm, parallel=False,
        epochs=50, batch_size=64, seq_len=100, lr=2e-3, hidden_size=512, num_layers=2,
        dropout=0.25,
    ),
    "char_gpt": _recipe(
        "character GPT (decoder-only transformer) on Shakespeare (the transformers chapter)",
        # full: nanoGPT's baby GPT on our corpus (6 blocks of 384, windows of 256)
        _GPT, train_char_gpt, epochs=30, batch_size=64, lr=1e-3, context=256, dim=384,
        num_layers=6, num_heads=6, dropout=0.2,
    ),
    "bpe_gpt": _recipe(
        "GPT on byte-pair tokens of Shakespeare, scored per character (the transformers chapter)",
        # full: the character model's full settings, on windows of 128 tokens and 512 merges
        _BPE_GPT, train_bpe_gpt, epochs=30, batch_size=64, lr=1e-3, context=128, dim=384,
        num_layers=6, num_heads=6, dropout=0.2, merges=512,
    ),
    "ring_flow": _recipe(
        "RealNVP flow on a ring of eight Gaussians (the flows chapter)", _RING_FLOW, train_flow,
        parallel=False, epochs=30,
    ),
    "flow": _recipe(
        "multi-scale RealNVP/Glow flow on 8-bit Fashion-MNIST (the flows chapter)", _IMAGE_FLOW,
        train_flow, parallel=False, train_size=None, epochs=30, batch_size=64, lr=1e-3, steps=8,
        width=96, eval_size=10_000,
    ),
    "ring_diffusion": _recipe(
        "DDPM with an MLP denoiser on a ring of eight Gaussians (the diffusion chapter)",
        _RING_DIFFUSION, train_diffusion, epochs=100,
    ),
    "ddpm": _recipe(
        "class-conditional DDPM (a small U-Net) on Fashion-MNIST (the diffusion chapter)", _DDPM,
        train_diffusion, train_size=None, epochs=40, batch_size=128, lr=2e-4, width=64,
        eval_size=10_000,
    ),
    "flow_matching": _recipe(
        "class-conditional flow matching (the same U-Net) on Fashion-MNIST (the diffusion "
        "chapter)", replace(_DDPM, objective="flow-matching"), train_diffusion,
        train_size=None, epochs=40, batch_size=128, lr=2e-4, width=64, eval_size=10_000,
    ),
    "classifier": _recipe(
        "the Fashion-MNIST classifier whose features the Fréchet distance uses",
        Settings(train_size=20_000, epochs=2, batch_size=128, lr=1e-3), train_classifier,
        train_size=None, epochs=12,
    ),
}

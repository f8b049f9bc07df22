r"""Generative adversarial networks (the GAN chapter).

A generator :math:`G` maps noise :math:`z \sim \mathcal{N}(0, I)` to data; a
discriminator :math:`D` says how likely a point is to be real. They play

.. math:: \min_G \max_D \; V(D, G) =
   \mathbb{E}_{x \sim p}\big[\log D(x)\big]
   + \mathbb{E}_{z}\big[\log\big(1 - D(G(z))\big)\big]
   \qquad \text{(Goodfellow et al., 2014)}.

Every discriminator here returns a *logit* :math:`a`, with
:math:`D(x) = \sigma(a)`, and every loss is written with
:math:`\log \sigma(a) = -\operatorname{softplus}(-a)` and
:math:`\log(1 - \sigma(a)) = -\operatorname{softplus}(a)`, which stay finite
for any logit (the cross-entropy chapter). Losses return one value per example; the caller
averages. Images are in :math:`[-1, 1]` inside the networks (a ``tanh``
output, the DCGAN convention) and in :math:`[0, 1]` outside (``sample``).

The losses and the networks run in every training step: they check types and shapes,
not values, which would wait for the device every step. NaN in, NaN out.
"""

from __future__ import annotations

import math
import operator

import torch
import torch.nn.functional as F
from torch import nn

from genai_course import distributed
from genai_course.config import check_generator, check_non_negative_int, check_positive_int

# -- the losses -------------------------------------------------------------------


def _logits(value, name: str) -> torch.Tensor:
    """One logit per example, (B,), from (B,) or (B, 1); or an error naming ``name``."""
    if not isinstance(value, torch.Tensor) or not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point torch.Tensor of logits")
    if value.ndim > 1 and value.shape[1:].numel() == 1:
        value = value.reshape(len(value))  # (B, 1) -> (B,)
    if value.ndim != 1:
        raise ValueError(
            f"{name} must have shape (B,) or (B, 1), one logit per example; got "
            f"{tuple(value.shape)}"
        )
    return value


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    r"""The discriminator's loss, :math:`-V` per pair of a real and a fake example:

    .. math:: -\log D(x) - \log\big(1 - D(G(z))\big)
       = \operatorname{softplus}(-a_{\text{real}}) + \operatorname{softplus}(a_{\text{fake}}),

    the binary cross-entropy with label 1 for real and 0 for fake. Logits of
    shape (B,) or (B, 1), as many fake as real; returns (B,).
    """
    real, fake = _logits(real_logits, "real_logits"), _logits(fake_logits, "fake_logits")
    if real.shape != fake.shape:
        raise ValueError(
            f"real_logits and fake_logits must have the same shape, got "
            f"{tuple(real_logits.shape)} and {tuple(fake_logits.shape)}"
        )
    return F.softplus(-real) + F.softplus(fake)


def generator_loss(fake_logits: torch.Tensor, non_saturating: bool = True) -> torch.Tensor:
    r"""The generator's loss per fake example, (B,).

    Non-saturating (the default, Goodfellow et al., 2014, section 3):
    :math:`-\log D(G(z)) = \operatorname{softplus}(-a)`. Minimax (saturating):
    :math:`\log\big(1 - D(G(z))\big) = -\operatorname{softplus}(a)`, whose
    gradient vanishes exactly when the discriminator confidently rejects the
    fakes, that is, at the start of training.
    """
    fake = _logits(fake_logits, "fake_logits")
    if not isinstance(non_saturating, bool):
        raise TypeError(f"non_saturating must be True or False, got {non_saturating!r}")
    return F.softplus(-fake) if non_saturating else -F.softplus(fake)


def _log_density(value, name: str) -> torch.Tensor:
    """Log-densities as a floating tensor: real, never NaN or +inf (-inf: a density of 0)."""
    tensor = torch.as_tensor(value)
    if tensor.is_complex():
        raise TypeError(f"{name} must be real, got a complex tensor")
    if not tensor.is_floating_point():
        tensor = tensor.to(torch.get_default_dtype())
    if (torch.isnan(tensor) | (tensor == math.inf)).any():
        raise ValueError(f"{name} must be log-densities: no NaN, no +inf")
    return tensor


def optimal_discriminator(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    r"""The best discriminator against a fixed generator with density :math:`q`:

    .. math:: D^*(x) = \frac{p(x)}{p(x) + q(x)} = \sigma\big(\log p(x) - \log q(x)\big),

    from the log-densities of the data and of the generator at the same points (a density
    of 0 is a log-density of :math:`-\infty`; where both are 0, :math:`D^*` is undefined:
    NaN).
    """
    log_p, log_q = _log_density(log_p, "log_p"), _log_density(log_q, "log_q")
    try:
        torch.broadcast_shapes(log_p.shape, log_q.shape)
    except RuntimeError:
        raise ValueError(
            f"log_p and log_q must broadcast; got shapes {tuple(log_p.shape)} and "
            f"{tuple(log_q.shape)}"
        ) from None
    return torch.sigmoid(log_p - log_q)


# -- the networks -------------------------------------------------------------------


def _check_dims(**dims) -> None:
    for name, value in dims.items():
        check_positive_int(name, value)


def _image_shape(image_shape, data_dim: int) -> tuple[int, int]:
    """``image_shape`` as (H, W), positive ints holding ``data_dim`` values."""
    try:
        height, width = (operator.index(side) for side in image_shape)
    except (TypeError, ValueError):  # not two ints
        height = width = 0
    if height < 1 or width < 1:
        raise ValueError(f"image_shape must be two positive ints (H, W), got {image_shape!r}")
    if height * width != data_dim:
        raise ValueError(f"image_shape {image_shape} does not hold data_dim={data_dim} values")
    return height, width


def _batch(module: nn.Module, value, name: str, shape: tuple[int, ...]) -> torch.Tensor:
    """``value`` as a batch (B, *shape) in the dtype of ``module``'s weights, or an error
    naming ``name``."""
    expected = f"(B, {', '.join(map(str, shape))})"
    if not isinstance(value, torch.Tensor) or not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point torch.Tensor of shape {expected}")
    if value.ndim == 0 or value.shape[1:] != shape:
        raise ValueError(f"{name} must have shape {expected}, got {tuple(value.shape)}")
    return value.to(next(module.parameters()).dtype)


class MLPGenerator(nn.Module):
    """Noise (B, latent_dim) to points (B, data_dim) through ``hidden_dim``-wide
    ReLU layers. With ``image_shape`` (e.g. (28, 28)) the output goes through
    tanh, so pixels lie in [-1, 1], and comes back as images (B, 1, H, W)."""

    def __init__(
        self,
        latent_dim: int,
        data_dim: int,
        hidden_dim: int = 256,
        num_layers: int = 2,
        image_shape: tuple[int, int] | None = None,
    ):
        super().__init__()
        _check_dims(
            latent_dim=latent_dim, data_dim=data_dim, hidden_dim=hidden_dim, num_layers=num_layers
        )
        if image_shape is not None:
            image_shape = _image_shape(image_shape, data_dim)
        self.latent_dim, self.image_shape = latent_dim, image_shape
        widths = [latent_dim] + [hidden_dim] * num_layers
        layers: list[nn.Module] = []
        for w_in, w_out in zip(widths[:-1], widths[1:], strict=True):
            layers += [nn.Linear(w_in, w_out), nn.ReLU()]
        layers.append(nn.Linear(hidden_dim, data_dim))
        if image_shape is not None:
            layers += [nn.Tanh(), nn.Unflatten(1, (1, *image_shape))]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(_batch(self, z, "z", (self.latent_dim,)))  # (B, data_dim) or (B, 1, H, W)


class MLPDiscriminator(nn.Module):
    """Points (B, data_dim), or images flattened to them, to logits (B,)
    through ``hidden_dim``-wide LeakyReLU(0.2) layers."""

    def __init__(self, data_dim: int, hidden_dim: int = 256, num_layers: int = 2):
        super().__init__()
        _check_dims(data_dim=data_dim, hidden_dim=hidden_dim, num_layers=num_layers)
        self.data_dim = data_dim
        widths = [data_dim] + [hidden_dim] * num_layers
        layers: list[nn.Module] = [nn.Flatten()]
        for w_in, w_out in zip(widths[:-1], widths[1:], strict=True):
            layers += [nn.Linear(w_in, w_out), nn.LeakyReLU(0.2)]
        layers.append(nn.Linear(hidden_dim, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(x, torch.Tensor) and x.ndim > 2:
            x = x.flatten(1)  # images (B, 1, H, W) -> rows (B, data_dim)
        return self.net(_batch(self, x, "x", (self.data_dim,))).squeeze(1)  # (B,)


class DCGANGenerator(nn.Module):
    """The DCGAN generator (Radford et al., 2016) sized for 28 x 28 images:
    noise (B, latent_dim) -> (B, 4w, 7, 7) -> (B, 2w, 14, 14) -> (B, 1, 28, 28)
    with transposed convolutions, batch norm and ReLU, and tanh at the output;
    no pooling and no fully connected hidden layers. ``w`` is ``width``."""

    def __init__(self, latent_dim: int = 64, width: int = 32):
        super().__init__()
        _check_dims(latent_dim=latent_dim, width=width)
        self.latent_dim, self.image_shape = latent_dim, (28, 28)

        def up(c_in: int, c_out: int, kernel: int, stride: int, padding: int) -> list[nn.Module]:
            conv = nn.ConvTranspose2d(c_in, c_out, kernel, stride, padding, bias=False)
            return [conv, nn.BatchNorm2d(c_out), nn.ReLU()]

        self.net = nn.Sequential(
            nn.Unflatten(1, (latent_dim, 1, 1)),  # (B, latent_dim, 1, 1)
            *up(latent_dim, 4 * width, 7, 1, 0),  # (B, 4w, 7, 7)
            *up(4 * width, 2 * width, 4, 2, 1),  # (B, 2w, 14, 14)
            nn.ConvTranspose2d(2 * width, 1, 4, 2, 1),  # (B, 1, 28, 28)
            nn.Tanh(),
        )
        _dcgan_init(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(_batch(self, z, "z", (self.latent_dim,)))  # (B, 1, 28, 28) in [-1, 1]


class DCGANDiscriminator(nn.Module):
    """The DCGAN discriminator for 28 x 28 images: (B, 1, 28, 28) ->
    (B, w, 14, 14) -> (B, 2w, 7, 7) -> logit (B,), with strided convolutions
    (no pooling), batch norm (not on the input layer) and LeakyReLU(0.2). Takes images
    (B, 1, 28, 28) or (B, 28, 28), or rows (B, 784)."""

    def __init__(self, width: int = 32):
        super().__init__()
        _check_dims(width=width)
        self.net = nn.Sequential(
            nn.Conv2d(1, width, 4, 2, 1),  # (B, w, 14, 14)
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, 2, 1, bias=False),  # (B, 2w, 7, 7)
            nn.BatchNorm2d(2 * width),
            nn.LeakyReLU(0.2),
            nn.Conv2d(2 * width, 1, 7, 1, 0),  # (B, 1, 1, 1)
            nn.Flatten(0),  # (B,)
        )
        _dcgan_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(x, torch.Tensor) and x.ndim in (2, 3) and x.shape[1:].numel() == 784:
            x = x.reshape(len(x), 1, 28, 28)  # rows (B, 784) or images (B, 28, 28)
        return self.net(_batch(self, x, "x", (1, 28, 28)))  # (B,)


def _dcgan_init(module: nn.Module) -> None:
    """DCGAN's initialisation: convolution weights ~ N(0, 0.02^2), batch-norm
    scales ~ N(1, 0.02^2) and shifts 0."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


# -- the game -------------------------------------------------------------------------


class GAN(nn.Module):
    """A generator ``G`` and a discriminator ``D`` in one module (what ``fit`` trains and
    checkpoints), and a fixed batch of noise ``fixed_z`` (num_fixed, latent)
    whose images show the same "people" getting sharper during training."""

    def __init__(
        self, G: nn.Module, D: nn.Module, num_fixed: int = 64, seed: int = 0
    ):
        super().__init__()
        for name, network in (("G", G), ("D", D)):
            if not isinstance(network, nn.Module):
                raise TypeError(f"{name} must be a network (an nn.Module), got "
                                f"{type(network).__name__}")  # fmt: skip
        if not isinstance(getattr(G, "latent_dim", None), int):
            raise TypeError("G must have an int latent_dim, as the book's generators do")
        _check_dims(num_fixed=num_fixed)
        check_non_negative_int("seed", seed)
        self.G, self.D = G, D  # the networks; named as in the book's equations
        noise = torch.Generator().manual_seed(seed)
        self.register_buffer(
            "fixed_z", torch.randn(num_fixed, G.latent_dim, generator=noise)
        )

    @torch.no_grad()
    def snapshot(self) -> torch.Tensor:
        """The generator's output for ``fixed_z``, on the CPU: images (num_fixed, H, W)
        in [0, 1] or points (num_fixed, data_dim). Watched after every epoch, it
        shows the same "people" getting sharper."""
        return _from_gan_range(self.G, self.G(self.fixed_z)).cpu()


def _check_players(gan, opt_d, opt_g) -> None:
    """A GAN and an optimizer for each of its networks (the arguments every GAN step takes),
    or an error naming the wrong one."""
    if not isinstance(gan, GAN):
        raise TypeError(f"gan must be a GAN (a generator G and a discriminator D), got "
                        f"{type(gan).__name__}")  # fmt: skip
    for name, optimizer in (("opt_d", opt_d), ("opt_g", opt_g)):
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"{name} must be a torch.optim.Optimizer, got "
                            f"{type(optimizer).__name__}")  # fmt: skip


def _check_game(gan, opt_d, opt_g, non_saturating) -> None:
    """The arguments of :func:`gan_step`, or an error naming the wrong one."""
    _check_players(gan, opt_d, opt_g)
    if not isinstance(non_saturating, bool):
        raise TypeError(f"non_saturating must be True or False, got {non_saturating!r}")


def _check_real(real, fake: torch.Tensor | None = None) -> None:
    """A batch of real data: floating, not empty, and (given the fakes) as large per
    example as what the generator makes. Shapes and types only: no read-back."""
    if not isinstance(real, torch.Tensor) or not real.is_floating_point():
        raise TypeError("real must be a floating-point torch.Tensor, a batch of data "
                        "(images in [-1, 1]: to_gan_range)")  # fmt: skip
    if real.ndim == 0 or len(real) == 0:
        raise ValueError(f"real must be a non-empty batch, got shape {tuple(real.shape)}")
    if fake is not None and real.shape[1:].numel() != fake.shape[1:].numel():
        raise ValueError(
            f"real has {real.shape[1:].numel()} values per example but the generator makes "
            f"{fake.shape[1:].numel()} (shapes {tuple(real.shape)} and {tuple(fake.shape)})"
        )


def gan_step(
    gan: GAN,
    opt_d: torch.optim.Optimizer,
    opt_g: torch.optim.Optimizer,
    non_saturating: bool = True,
):
    """One round of the game on a batch of real data, for ``fit(step=...)``:

    1. discriminator: one gradient step on ``discriminator_loss`` for the
       real batch and as many fresh fakes (the generator held fixed: the
       fakes are detached);
    2. generator: one gradient step on ``generator_loss`` of the same fakes,
       scored by the just-updated discriminator (only the generator's
       optimizer steps; the discriminator's gradients are discarded). Reusing
       the fakes, as the DCGAN reference code does, saves a generator
       forward pass per step.

    Reports the two losses, the mean :math:`D` on real and fake examples,
    and the discriminator's accuracy (0.5 = chance).
    """
    _check_game(gan, opt_d, opt_g, non_saturating)
    # under torchrun each network in its own DistributedDataParallel, which averages its
    # gradients across the processes (each network is one forward-backward unit)
    G, D = distributed.wrap(gan.G), distributed.wrap(gan.D)
    latent_dim = gan.G.latent_dim

    def step(real: torch.Tensor) -> dict[str, torch.Tensor]:
        _check_real(real)
        batch = len(real)
        # -- 1. the discriminator ascends V: real -> 1, fake -> 0
        z = torch.randn(batch, latent_dim, device=real.device)  # (B, latent)
        fake = G(z)
        _check_real(real, fake)
        # detached: no gradient into G on this step
        real_logits, fake_logits = D(real), D(fake.detach())  # (B,), (B,)
        loss_d = discriminator_loss(real_logits, fake_logits).mean()
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        # -- 2. the generator makes D(G(z)) large
        loss_g = generator_loss(D(fake), non_saturating).mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        with torch.no_grad():
            correct = (real_logits > 0).float().mean() + (fake_logits < 0).float().mean()
        return {
            "loss_d": loss_d.detach(),
            "loss_g": loss_g.detach(),
            "d_real": torch.sigmoid(real_logits).mean().detach(),
            "d_fake": torch.sigmoid(fake_logits).mean().detach(),
            "d_accuracy": correct / 2,
        }

    return step


# -- data in and samples out ---------------------------------------------------------


def to_gan_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 images (0..255) or floats in [0, 1] to floats in [-1, 1], (N, 1, H, W)."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}")
    if images.dtype == torch.uint8:
        x = images.float() / 255
    elif images.is_floating_point() and images.numel() and 0 <= images.min() <= images.max() <= 1:
        x = images.float()
    else:
        raise ValueError("images must be uint8 or floats in [0, 1]")
    if x.ndim not in (3, 4) or (x.ndim == 4 and x.shape[1] != 1):
        raise ValueError(f"images must have shape (N, H, W) or (N, 1, H, W), got {tuple(x.shape)}")
    if x.ndim == 3:  # (N, H, W)
        x = x[:, None]
    return 2 * x - 1  # (N, 1, H, W)


def _from_gan_range(G: nn.Module, out: torch.Tensor) -> torch.Tensor:
    if G.image_shape is None:
        return out  # points: as they are
    return ((out + 1) / 2).clamp(0, 1).reshape(len(out), *G.image_shape)  # (N, H, W)


@torch.no_grad()
def sample(G: nn.Module, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` samples of the generator network ``G``: images (n, H, W) in [0, 1],
    or points (n, data_dim). ``generator`` (a ``torch.Generator``) fixes the
    noise. ``G`` runs in eval mode (batch norm with its running statistics)."""
    if not isinstance(G, nn.Module) or not isinstance(getattr(G, "latent_dim", None), int):
        raise TypeError("G must be a generator network with an int latent_dim (a GAN's .G)")
    _check_dims(n=n)
    check_generator("generator", generator)
    device = next(G.parameters()).device
    noise_device = generator.device if generator is not None else device
    z = torch.randn(n, G.latent_dim, generator=generator, device=noise_device).to(device)
    was_training = G.training
    G.eval()
    out = _from_gan_range(G, G(z))
    G.train(was_training)
    return out

r"""A class-conditional GAN (the chapter on stabilising GANs): ask for a class, get it.

Both players see the label :math:`y \in \{0, \dots, K - 1\}`. The generator turns noise
and the label's row of an embedding table :math:`U_G` (:math:`K \times J`) into an image,
:math:`G(z, y) = G_{\text{DCGAN}}([z, U_G[y]])` (Mirza and Osindero, 2014). The
discriminator is the DCGAN's convolutional body, its output flattened to :math:`M`
features :math:`h(x)` (B, M), with a *projection* head (Miyato and Koyama, 2018):

.. math:: a(x, y) = w^\top h(x) + b + U_C[y]^\top h(x),

the unconditional logit plus the inner product of the features with the class's row of
a second table :math:`U_C` (:math:`K \times M`). The game and its losses are the GAN
chapter's (:mod:`genai_course.gan`), each real image scored with its own label and each
fake with the label it was made for.

The networks and the step run in every training step: they check types and shapes, not
values (NaN in, NaN out).
"""

from __future__ import annotations

import torch
from torch import nn

from genai_course import distributed
from genai_course.config import check_generator, check_non_negative_int, check_positive_int
from genai_course.gan import DCGANDiscriminator, DCGANGenerator, discriminator_loss, generator_loss


def _labels(value, num_classes: int, name: str = "y") -> torch.Tensor:
    """Class labels (B,) of an integer dtype; values are not read (no device sync)."""
    if not isinstance(value, torch.Tensor) or value.is_floating_point() or value.is_complex():
        raise TypeError(f"{name} must be an integer torch.Tensor of class labels "
                        f"0..{num_classes - 1}")  # fmt: skip
    if value.ndim != 1:
        raise ValueError(f"{name} must have shape (B,), one label per example, got "
                         f"{tuple(value.shape)}")  # fmt: skip
    return value.long()


class ConditionalGenerator(nn.Module):
    """Noise (B, latent_dim) and labels (B,) to images (B, 1, 28, 28) in [-1, 1]: the DCGAN
    generator on the noise concatenated with the label's embedding (latent_dim values)."""

    def __init__(self, num_classes: int = 10, latent_dim: int = 64, width: int = 32):
        super().__init__()
        for name, value in (("num_classes", num_classes), ("latent_dim", latent_dim),
                            ("width", width)):  # fmt: skip
            check_positive_int(name, value)
        self.num_classes, self.latent_dim, self.image_shape = num_classes, latent_dim, (28, 28)
        self.embed = nn.Embedding(num_classes, latent_dim)  # U_G: (K, J)
        self.body = DCGANGenerator(2 * latent_dim, width)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if not isinstance(z, torch.Tensor) or z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"z must be a tensor of shape (B, {self.latent_dim})")
        y = _labels(y, self.num_classes)
        if len(y) != len(z):
            raise ValueError(f"y has {len(y)} labels but z has {len(z)} rows")
        h = torch.cat([z.to(self.embed.weight.dtype), self.embed(y)], dim=1)  # (B, 2J)
        return self.body(h)  # (B, 1, 28, 28)


class ProjectionDiscriminator(nn.Module):
    r"""Images (B, 1, 28, 28) and labels (B,) to logits (B,): the DCGAN discriminator's body
    (B, 2w, 7, 7), flattened to the features :math:`h(x)` (B, M), and
    :math:`a = w^\top h + b + U_C[y]^\top h`."""

    def __init__(self, num_classes: int = 10, width: int = 32):
        super().__init__()
        check_positive_int("num_classes", num_classes)
        check_positive_int("width", width)
        self.num_classes = num_classes
        dcgan = DCGANDiscriminator(width)
        self.body = dcgan.net[:-2]  # up to (B, 2w, 7, 7), without the 7 x 7 head
        features = 2 * width * 7 * 7  # M
        self.head = nn.Linear(features, 1)  # w, b
        self.embed = nn.Embedding(num_classes, features)  # U_C: (K, M)
        nn.init.normal_(self.embed.weight, 0.0, 0.02)  # DCGAN's scale

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.shape[1:].numel() != 784:
            raise ValueError("x must be images (B, 1, 28, 28), (B, 28, 28) or rows (B, 784)")
        y = _labels(y, self.num_classes)
        if len(y) != len(x):
            raise ValueError(f"y has {len(y)} labels but x has {len(x)} images")
        x = x.reshape(len(x), 1, 28, 28).to(self.head.weight.dtype)
        h = self.body(x).flatten(1)  # (B, M)
        # a = w^T h + b + U_C[y]^T h
        return self.head(h).squeeze(1) + (self.embed(y) * h).sum(1)  # (B,)


class ConditionalGAN(nn.Module):
    """A conditional generator ``G`` and discriminator ``D`` in one module (what ``fit``
    trains), and fixed noise ``fixed_z`` with labels ``fixed_y``: ``per_class`` of each
    class, class by class, to watch during training."""

    def __init__(self, G: ConditionalGenerator, D: ProjectionDiscriminator, per_class: int = 8,
                 seed: int = 0):  # fmt: skip
        super().__init__()
        if not isinstance(G, ConditionalGenerator):
            raise TypeError(f"G must be a ConditionalGenerator, got {type(G).__name__}")
        if not isinstance(D, ProjectionDiscriminator):
            raise TypeError(f"D must be a ProjectionDiscriminator, got {type(D).__name__}")
        check_positive_int("per_class", per_class)
        check_non_negative_int("seed", seed)
        self.G, self.D = G, D
        noise = torch.Generator().manual_seed(seed)
        n = per_class * G.num_classes
        self.register_buffer("fixed_z", torch.randn(n, G.latent_dim, generator=noise))
        self.register_buffer("fixed_y", torch.arange(G.num_classes).repeat_interleave(per_class))

    @torch.no_grad()
    def snapshot(self) -> torch.Tensor:
        """The generator's images for the fixed noise and labels, (n, 28, 28) in [0, 1],
        on the CPU, class by class."""
        return ((self.G(self.fixed_z, self.fixed_y) + 1) / 2).clamp(0, 1)[:, 0].cpu()


def conditional_gan_step(gan: ConditionalGAN, opt_d: torch.optim.Optimizer,
                         opt_g: torch.optim.Optimizer):  # fmt: skip
    """One round of the conditional game on a batch of real images and their labels, for
    ``fit(step=...)``: as :func:`~genai_course.gan.gan_step`, with every fake made for
    the label of the real image beside it (so each batch has the data's class mix)."""
    if not isinstance(gan, ConditionalGAN):
        raise TypeError(f"gan must be a ConditionalGAN, got {type(gan).__name__}")
    for name, optimizer in (("opt_d", opt_d), ("opt_g", opt_g)):
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"{name} must be a torch.optim.Optimizer, got "
                            f"{type(optimizer).__name__}")  # fmt: skip
    G, D = distributed.wrap(gan.G), distributed.wrap(gan.D)

    def step(real: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        if not isinstance(real, torch.Tensor) or not real.is_floating_point():
            raise TypeError("real must be a floating-point batch of images in [-1, 1]")
        z = torch.randn(len(real), gan.G.latent_dim, device=real.device)  # (B, J)
        fake = G(z, y)  # (B, 1, 28, 28), made for the real labels
        # -- 1. the discriminator: (real, y) -> 1, (fake, y) -> 0
        real_logits, fake_logits = D(real, y), D(fake.detach(), y)  # (B,), (B,)
        loss_d = discriminator_loss(real_logits, fake_logits).mean()
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        # -- 2. the generator: make the just-updated D accept (fake, y)
        loss_g = generator_loss(D(fake, y)).mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        with torch.no_grad():
            correct = (real_logits > 0).float().mean() + (fake_logits < 0).float().mean()
        return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach(), "d_accuracy": correct / 2}

    return step


@torch.no_grad()
def sample_conditional(G: ConditionalGenerator, y: torch.Tensor, *,
                       generator: torch.Generator | None = None) -> torch.Tensor:  # fmt: skip
    """One image of each class in ``y`` (n,): (n, 28, 28) in [0, 1], on the CPU, with ``G``
    in eval mode (batch norm with its running statistics); ``generator`` fixes the noise."""
    if not isinstance(G, ConditionalGenerator):
        raise TypeError(f"G must be a ConditionalGenerator, got {type(G).__name__}")
    y = _labels(y, G.num_classes)
    if len(y) and not (0 <= int(y.min()) and int(y.max()) < G.num_classes):
        raise ValueError(f"y must hold class labels 0..{G.num_classes - 1}")
    check_generator("generator", generator)
    device = G.embed.weight.device
    z = torch.randn(len(y), G.latent_dim, generator=generator,
                    device=generator.device if generator is not None else device)  # fmt: skip
    was_training = G.training
    G.eval()
    out = ((G(z.to(device), y.to(device)) + 1) / 2).clamp(0, 1)[:, 0].cpu()  # (n, 28, 28)
    G.train(was_training)
    return out

r"""A small U-Net (the diffusion chapter): the network that reads a noisy image
:math:`x_t`, the time :math:`t \in [0, 1]` and, optionally, a class label, and returns a tensor
of the image's shape (the noise :math:`\hat\epsilon` in a diffusion model, the velocity
:math:`\hat v` in flow matching).

Its parts, after Ronneberger et al. (2015) and the DDPM network of Ho et al. (2020), small
enough for a CPU:

- a **time embedding**: sinusoidal features of :math:`t` (those of the transformer's
  positions, at 1,000 times :math:`t`), then an MLP; a **label embedding** is added to it,
  with one extra row for "no label" (classifier-free guidance trains with labels dropped);
- **residual blocks**: GroupNorm, SiLU, 3x3 convolution, the embedding added to every
  channel, again GroupNorm, SiLU, 3x3 convolution, plus the input (through a 1x1 convolution
  where the channels change);
- a path **down** (28x28 -> 14x14 -> 7x7, a strided convolution at each step), a block in the
  middle, and a path **up** (nearest-neighbour upsampling, then a convolution) whose blocks also
  read, concatenated, what the path down computed at the same size: the **skip connections**
  that carry the fine detail past the bottleneck.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from genai_course.config import check_positive_int


def time_features(t: torch.Tensor, dim: int, scale: float = 1000.0) -> torch.Tensor:
    r"""Sinusoidal features of times ``t`` (B,) in [0, 1]: (B, dim),
    :math:`[\sin(s t \omega_k), \cos(s t \omega_k)]_{k < dim/2}` with
    :math:`\omega_k = 10000^{-2k/dim}` and :math:`s` = ``scale``."""
    half = dim // 2
    omega = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device) / half)  # (dim/2,)
    angles = scale * t.float()[:, None] * omega  # (B, dim/2)
    return torch.cat([angles.sin(), angles.cos()], dim=1)  # (B, dim)


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(8, channels), channels)  # groups of equal size


class ResBlock(nn.Module):
    """Two 3x3 convolutions with the embedding added between them, plus the input."""

    def __init__(self, in_channels: int, out_channels: int, emb_dim: int):
        super().__init__()
        self.conv1 = nn.Sequential(_norm(in_channels), nn.SiLU(),
                                   nn.Conv2d(in_channels, out_channels, 3, padding=1))  # fmt: skip
        self.emb = nn.Linear(emb_dim, out_channels)
        self.conv2 = nn.Sequential(_norm(out_channels), nn.SiLU(),
                                   nn.Conv2d(out_channels, out_channels, 3, padding=1))  # fmt: skip
        self.skip = (nn.Identity() if in_channels == out_channels
                     else nn.Conv2d(in_channels, out_channels, 1))  # fmt: skip

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(x) + self.emb(emb)[:, :, None, None]  # (B, C, H, W) + (B, C, 1, 1)
        return self.conv2(h) + self.skip(x)


class UNet(nn.Module):
    """``UNet(channels, width, num_classes)(x, t, y)``: x (B, channels, 28, 28), t (B,) in
    [0, 1], y (B,) labels in 0..num_classes - 1, or ``num_classes`` for "no label", or None
    (no label for every image); returns (B, channels, 28, 28). ``width``: channels at 28x28
    (2 x width at 14x14 and 7x7). The last convolution starts at zero, so the untrained
    network predicts 0."""

    def __init__(self, channels: int = 1, width: int = 32, num_classes: int | None = None):
        super().__init__()
        check_positive_int("channels", channels)
        check_positive_int("width", width)
        if num_classes is not None:
            check_positive_int("num_classes", num_classes)
        self.channels, self.num_classes = channels, num_classes
        w, emb = width, 4 * width
        self.time_dim = width
        self.time_mlp = nn.Sequential(nn.Linear(width, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.labels = None if num_classes is None else nn.Embedding(num_classes + 1, emb)
        self.stem = nn.Conv2d(channels, w, 3, padding=1)
        self.down = nn.ModuleList([ResBlock(w, w, emb), ResBlock(2 * w, 2 * w, emb)])
        self.downsample = nn.ModuleList([  # strided convolutions: 28 -> 14 -> 7
            nn.Conv2d(w, 2 * w, 3, stride=2, padding=1),
            nn.Conv2d(2 * w, 2 * w, 3, stride=2, padding=1),
        ])  # fmt: skip
        self.middle = ResBlock(2 * w, 2 * w, emb)
        self.upsample = nn.ModuleList([nn.Conv2d(2 * w, 2 * w, 3, padding=1),
                                       nn.Conv2d(2 * w, w, 3, padding=1)])  # fmt: skip
        self.up = nn.ModuleList([ResBlock(4 * w, 2 * w, emb), ResBlock(2 * w, w, emb)])
        self.head = nn.Sequential(_norm(w), nn.SiLU(), nn.Conv2d(w, channels, 3, padding=1))
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)

    def embed(self, t: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """The time embedding plus the label's: (B, 4 x width)."""
        emb = self.time_mlp(time_features(t, self.time_dim))
        if self.labels is None:
            if y is not None:
                raise ValueError("y must be None for a UNet built without num_classes")
            return emb
        if y is None:
            y = torch.full_like(t, self.num_classes, dtype=torch.long)  # "no label" for all
        return emb + self.labels(y)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None):
        _check(x, t, y, self.channels, self.num_classes)
        emb = self.embed(t, y)  # (B, E)
        h = self.stem(x)  # (B, w, 28, 28)
        skips = []
        for block, down in zip(self.down, self.downsample, strict=True):
            h = block(h, emb)
            skips.append(h)  # (B, w, 28, 28), then (B, 2w, 14, 14)
            h = down(h)  # (B, 2w, 14, 14), then (B, 2w, 7, 7)
        h = self.middle(h, emb)  # (B, 2w, 7, 7)
        for block, up in zip(self.up, self.upsample, strict=True):
            h = up(nn.functional.interpolate(h, scale_factor=2, mode="nearest"))
            h = block(torch.cat([h, skips.pop()], dim=1), emb)  # skip connection
        return self.head(h)  # (B, channels, 28, 28)


def _check(x, t, y, channels: int, num_classes: int | None) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != channels:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must be images (B, {channels}, H, W), got {got}")
    if x.shape[-2] % 4 or x.shape[-1] % 4:
        raise ValueError(f"x's height and width must be multiples of 4 (the U-Net halves them "
                         f"twice), got {tuple(x.shape[-2:])}")  # fmt: skip
    if not isinstance(t, torch.Tensor) or t.shape != x.shape[:1]:
        got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
        raise ValueError(f"t must be one time per image, shape ({len(x)},), got {got}")
    if y is not None and num_classes is not None:
        if not isinstance(y, torch.Tensor) or y.dtype != torch.long or y.shape != x.shape[:1]:
            got = (f"{y.dtype} {tuple(y.shape)}" if isinstance(y, torch.Tensor)
                   else type(y).__name__)  # fmt: skip
            raise ValueError(f"y must be one integer label per image, ({len(x)},), got {got}")

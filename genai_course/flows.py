r"""Normalising flows (the flows chapter): invertible layers, each with its inverse and the
log-determinant of its Jacobian, and the flows built from them.

A flow maps data :math:`x` to a code :math:`z = f(x)` of the same size through an invertible
:math:`f = f_K \circ \dots \circ f_1`, and gives :math:`z` a standard normal density. The
change of variables gives the likelihood itself, not a bound:

.. math:: \log p(x) = \log \mathcal{N}\big(f(x); 0, I\big)
          + \sum_{k=1}^{K} \log \big|\det J_{f_k}(x_{k-1})\big|,

where :math:`x_{k-1}` is what layer :math:`k` reads. Every layer here is a
:class:`FlowLayer`: ``forward(x)`` returns ``(y, logdet)`` with one log-determinant per
example, (B,); ``inverse(y)`` returns ``x``. Sampling runs the layers backwards from
:math:`z \sim \mathcal{N}(0, I)`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from genai_course.config import check_generator, check_positive_int, check_real


def _per_example(t: torch.Tensor) -> torch.Tensor:
    """The sum of ``t`` (B, ...) over everything but the batch: (B,)."""
    return t.flatten(1).sum(dim=1)


def _check_input(x, name: str, features: int | None = None, min_ndim: int = 2) -> None:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        got = x.dtype if isinstance(x, torch.Tensor) else type(x).__name__
        raise TypeError(f"{name} must be a floating-point tensor, got {got}")
    if x.ndim < min_ndim:
        raise ValueError(f"{name} must have a batch dimension and features, (B, ...), got "
                         f"shape {tuple(x.shape)}")  # fmt: skip
    if features is not None and x.shape[1] != features:
        raise ValueError(f"{name} must have {features} features (or channels) in dimension 1, "
                         f"got shape {tuple(x.shape)}")  # fmt: skip


class FlowLayer(nn.Module):
    """An invertible map: ``forward(x)`` gives ``(y, logdet)``, logdet (B,) the log of
    :math:`|\\det \\partial y / \\partial x|` for each example; ``inverse(y)`` gives ``x``."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


# -- the layers ------------------------------------------------------------------------------


class ActNorm(FlowLayer):
    r"""Glow's activation normalisation: a scale and a shift per feature (per channel of an
    image), :math:`y = e^{s} \odot x + b`; the Jacobian is diagonal, so
    :math:`\log|\det J| = (\text{positions per channel}) \sum_c s_c`. The first batch it sees in
    training mode sets :math:`s` and :math:`b` so that its output has mean 0 and variance 1 per
    channel (data-dependent initialisation); after that they are trained like any weight."""

    def __init__(self, features: int):
        super().__init__()
        check_positive_int("features", features)
        self.log_scale = nn.Parameter(torch.zeros(features))
        self.shift = nn.Parameter(torch.zeros(features))
        self.register_buffer("initialised", torch.tensor(False))  # saved with the weights
        self._ready = False  # the same, kept on the host: no read from the device every step

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._ready = bool(self.initialised)

    def _view(self, p: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return p.view(1, -1, *([1] * (x.ndim - 2)))  # (1, C, 1, ...)

    @torch.no_grad()
    def _initialise(self, x: torch.Tensor) -> None:
        per_channel = x.transpose(0, 1).flatten(1)  # (C, B * positions)
        mean, std = per_channel.mean(dim=1), per_channel.std(dim=1)
        self.log_scale.copy_(-torch.log(std + 1e-6))
        self.shift.copy_(-mean * self.log_scale.exp())
        self.initialised.fill_(True)
        self._ready = True

    def forward(self, x):
        _check_input(x, "x", len(self.log_scale))
        if self.training and not self._ready:
            self._initialise(x)
        y = x * self._view(self.log_scale.exp(), x) + self._view(self.shift, x)
        positions = x[0, 0].numel()
        return y, (self.log_scale.sum() * positions).expand(len(x))

    def inverse(self, y):
        _check_input(y, "y", len(self.log_scale))
        return (y - self._view(self.shift, y)) * self._view((-self.log_scale).exp(), y)


def affine_coupling(x: torch.Tensor, mask: torch.Tensor, s: torch.Tensor,
                    t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    r"""The affine coupling's formula, given its scale and shift :math:`s, t` (the shape of
    ``x``, (B, ...)) and ``mask`` (one example's shape):
    :math:`y = m \odot x + (1 - m) \odot (x \odot e^{s} + t)` and
    :math:`\log|\det J| = \sum (1 - m) \odot s`, (B,)."""
    free = 1 - mask
    return mask * x + free * (x * s.exp() + t), _per_example(free * s)


def affine_coupling_inverse(y: torch.Tensor, mask: torch.Tensor, s: torch.Tensor,
                            t: torch.Tensor) -> torch.Tensor:  # fmt: skip
    r"""Its inverse, :math:`x = m \odot y + (1 - m) \odot (y - t) \odot e^{-s}`."""
    return mask * y + (1 - mask) * (y - t) * (-s).exp()


class AffineCoupling(FlowLayer):
    r"""RealNVP's affine coupling (Dinh et al., 2017). A binary ``mask`` :math:`m` (the shape of
    one example) keeps part of the input as it is, and that part sets a scale and a shift for
    the rest:

    .. math:: y = m \odot x + (1 - m) \odot \big(x \odot e^{s} + t\big), \qquad
              (s, t) = \mathrm{net}(m \odot x).

    The Jacobian is triangular with diagonal :math:`1` on the kept part and :math:`e^{s}` on the
    rest, so :math:`\log|\det J| = \sum (1 - m) \odot s`, and the inverse needs no inverse of
    ``net``: :math:`m \odot y = m \odot x`, so the same :math:`(s, t)` give
    :math:`x = m \odot y + (1 - m) \odot (y - t) \odot e^{-s}`. ``net`` maps (B, C, ...) to
    (B, 2C, ...) (the raw scale, then the shift); the scale is :math:`s = a \tanh(\text{raw})`
    with a learned :math:`a` per channel, which keeps early steps from exploding. Zero the last
    layer of ``net`` and the coupling starts as the identity."""

    def __init__(self, mask: torch.Tensor, net: nn.Module):
        super().__init__()
        if not isinstance(mask, torch.Tensor) or not ((mask == 0) | (mask == 1)).all():
            raise ValueError("mask must be a tensor of zeros and ones (the shape of one example)")
        if mask.all() or not mask.any():
            raise ValueError("mask must keep some features and transform others")
        if not isinstance(net, nn.Module):
            raise TypeError(f"net must be a torch.nn.Module, got {type(net).__name__}")
        self.register_buffer("mask", mask.float())
        self.net = net
        self.scale = nn.Parameter(torch.ones(mask.shape[0]))

    def _scale_shift(self, kept: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raw, t = self.net(kept).chunk(2, dim=1)  # each (B, C, ...)
        a = self.scale.view(1, -1, *([1] * (kept.ndim - 2)))
        return a * torch.tanh(raw), t

    def _check(self, x, name):
        _check_input(x, name)
        if x.shape[1:] != self.mask.shape:
            raise ValueError(f"{name} must have examples of the mask's shape "
                             f"{tuple(self.mask.shape)}, got {tuple(x.shape[1:])}")  # fmt: skip

    def forward(self, x):
        self._check(x, "x")
        return affine_coupling(x, self.mask, *self._scale_shift(x * self.mask))

    def inverse(self, y):
        self._check(y, "y")
        return affine_coupling_inverse(y, self.mask, *self._scale_shift(y * self.mask))


class InvertibleLinear(FlowLayer):
    r"""Glow's invertible 1x1 convolution: one invertible :math:`C \times C` matrix :math:`W`
    applied to the channel vector at every position (to the whole vector of a 2-D point),
    :math:`y = W x`, so :math:`\log|\det J| = (\text{positions}) \log|\det W|`. It starts as a
    random orthogonal matrix (:math:`\log|\det W| = 0`), and generalises the fixed
    permutations RealNVP uses between couplings: every feature gets its turn to be
    transformed."""

    def __init__(self, features: int):
        super().__init__()
        check_positive_int("features", features)
        q, _ = torch.linalg.qr(torch.randn(features, features))
        self.weight = nn.Parameter(q)

    def _multiply(self, matrix, x):
        return torch.einsum("ij,bj...->bi...", matrix, x)

    def forward(self, x):
        _check_input(x, "x", len(self.weight))
        logdet = torch.linalg.slogdet(self.weight).logabsdet * x[0, 0].numel()
        return self._multiply(self.weight, x), logdet.expand(len(x))

    def inverse(self, y):
        _check_input(y, "y", len(self.weight))
        return self._multiply(torch.linalg.inv(self.weight), y)


class Squeeze(FlowLayer):
    r"""RealNVP's squeeze: each 2x2 block of pixels becomes four channels,
    (B, C, H, W) to (B, 4C, H/2, W/2). A permutation of the entries: :math:`\log|\det J| = 0`.
    It lets a channel coupling mix neighbouring pixels, and halves the resolution that the
    next layers work at."""

    def forward(self, x):
        _check_input(x, "x", min_ndim=4)
        B, C, H, W = x.shape
        if H % 2 or W % 2:
            raise ValueError(f"x must have an even height and width to squeeze, got {H} x {W}")
        y = x.view(B, C, H // 2, 2, W // 2, 2).permute(0, 1, 3, 5, 2, 4)  # (B, C, 2, 2, H/2, W/2)
        return y.reshape(B, 4 * C, H // 2, W // 2), x.new_zeros(B)

    def inverse(self, y):
        _check_input(y, "y", min_ndim=4)
        B, C4, H2, W2 = y.shape
        if C4 % 4:
            raise ValueError(f"y must have a multiple of 4 channels to unsqueeze, got {C4}")
        x = y.view(B, C4 // 4, 2, 2, H2, W2).permute(0, 1, 4, 2, 5, 3)  # (B, C, H/2, 2, W/2, 2)
        return x.reshape(B, C4 // 4, 2 * H2, 2 * W2)


class Unsqueeze(FlowLayer):
    """The inverse of :class:`Squeeze`, as a layer: (B, 4C, H, W) to (B, C, 2H, 2W)."""

    def __init__(self):
        super().__init__()
        self.squeeze = Squeeze()

    def forward(self, x):
        return self.squeeze.inverse(x), x.new_zeros(len(x))

    def inverse(self, y):
        return self.squeeze(y)[0]


class Logit(FlowLayer):
    r"""Data in :math:`(0, 1)` to the whole real line, as RealNVP prepares images:
    :math:`p = \alpha + (1 - 2\alpha)\,x`, :math:`y = \log p - \log(1 - p)`, with
    :math:`\log|\det J| = \sum \big[\log(1 - 2\alpha) - \log p - \log(1 - p)\big]`. The
    :math:`\alpha` keeps the ends of the interval finite. Counted in the likelihood, so
    that the flow's density is one of the data itself. The inverse maps the real line onto
    :math:`(-\alpha / (1 - 2\alpha), 1 + \alpha / (1 - 2\alpha))`, a little wider than
    :math:`(0, 1)`."""

    def __init__(self, alpha: float = 0.05):
        super().__init__()
        check_real("alpha", alpha, 0.0, 0.5, low_open=True, high_open=True)
        self.alpha = float(alpha)

    def forward(self, x):
        _check_input(x, "x")
        p = self.alpha + (1 - 2 * self.alpha) * x
        logdet = math.log(1 - 2 * self.alpha) - torch.log(p) - torch.log1p(-p)
        return torch.log(p) - torch.log1p(-p), _per_example(logdet)

    def inverse(self, y):
        _check_input(y, "y")
        return (torch.sigmoid(y) - self.alpha) / (1 - 2 * self.alpha)


class FactorOut(FlowLayer):
    r"""RealNVP's multi-scale step: the first ``keep`` channels leave for the code as they are
    (:math:`\log|\det| = 0` for them), and ``inner`` flows the rest on. The layers after a
    factor-out work on half the numbers, while every dimension still ends in :math:`z`."""

    def __init__(self, keep: int, inner: FlowLayer):
        super().__init__()
        check_positive_int("keep", keep)
        self.keep, self.inner = keep, inner

    def _split(self, x, name):
        _check_input(x, name)
        if x.shape[1] <= self.keep:
            raise ValueError(f"{name} must have more than keep = {self.keep} channels, got "
                             f"{x.shape[1]}")  # fmt: skip
        return x[:, : self.keep], x[:, self.keep :]

    def forward(self, x):
        out, rest = self._split(x, "x")
        y, logdet = self.inner(rest)
        return torch.cat([out, y], dim=1), logdet

    def inverse(self, y):
        out, rest = self._split(y, "y")
        return torch.cat([out, self.inner.inverse(rest)], dim=1)


class Sequential(FlowLayer):
    """Layers applied in order; their log-determinants add (the chain rule), and the inverse
    runs them backwards."""

    def __init__(self, *layers: FlowLayer):
        super().__init__()
        for i, layer in enumerate(layers):
            if not isinstance(layer, FlowLayer):
                raise TypeError(f"layer {i} must be a FlowLayer, got {type(layer).__name__}")
        self.layers = nn.ModuleList(layers)

    def forward(self, x):
        logdet = x.new_zeros(len(x))
        for layer in self.layers:
            x, layer_logdet = layer(x)
            logdet = logdet + layer_logdet
        return x, logdet

    def inverse(self, y):
        for layer in reversed(self.layers):
            y = layer.inverse(y)
        return y

    def trajectory(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``x`` and what each layer makes of it, in order: the pictures of the flow."""
        points = [x]
        for layer in self.layers:
            points.append(layer(points[-1])[0])
        return points


# -- a flow: layers and a standard normal base ------------------------------------------------


class Flow(nn.Module):
    r"""A normalising flow: ``layers`` from data to code, over a standard normal base density
    on codes of ``shape`` (one example's shape). :meth:`log_prob` is the change of variables,
    :math:`\log p(x) = \log \mathcal{N}(f(x); 0, I) + \log|\det J_f(x)|`, in nats per example."""

    def __init__(self, layers: Sequential, shape: tuple[int, ...]):
        super().__init__()
        if not isinstance(layers, Sequential):
            raise TypeError(f"layers must be a flows.Sequential, got {type(layers).__name__}")
        for size in shape:
            check_positive_int("shape", size)
        self.layers, self.shape = layers, tuple(shape)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Nats, (B,)."""
        z, logdet = self.layers(x)
        base = -0.5 * _per_example(z**2) - 0.5 * z[0].numel() * math.log(2 * math.pi)
        return base + logdet

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0,
               generator: torch.Generator | None = None) -> torch.Tensor:  # fmt: skip
        """``n`` samples (n, *shape): codes from :math:`\\mathcal{N}(0, T^2 I)` run backwards
        through the layers. A temperature :math:`T < 1` trades variety for typical samples."""
        check_positive_int("n", n)
        check_real("temperature", temperature, 0.0, low_open=True)
        device = next(self.parameters()).device
        check_generator("generator", generator)
        z = torch.randn(n, *self.shape, generator=generator, device=device) * temperature
        return self.layers.inverse(z)


# -- networks and masks for the couplings ------------------------------------------------------


def alternating_mask(features: int, parity: int) -> torch.Tensor:
    """(features,) ones on the even features if ``parity`` is 0, on the odd ones if it is 1."""
    check_positive_int("features", features)
    if parity not in (0, 1):
        raise ValueError(f"parity must be 0 or 1, got {parity!r}")
    return (torch.arange(features) % 2 == parity).float()


def checkerboard_mask(channels: int, height: int, width: int, parity: int) -> torch.Tensor:
    """(channels, height, width) ones on the squares of a checkerboard (``parity`` picks which)."""
    for name, value in (("channels", channels), ("height", height), ("width", width)):
        check_positive_int(name, value)
    if parity not in (0, 1):
        raise ValueError(f"parity must be 0 or 1, got {parity!r}")
    board = (torch.arange(height)[:, None] + torch.arange(width)[None]) % 2 == parity
    return board.float().expand(channels, height, width).clone()


def channel_mask(channels: int, height: int, width: int, parity: int) -> torch.Tensor:
    """(channels, height, width) ones on the first half of the channels (``parity`` 0) or on
    the second half (1)."""
    if channels < 2:
        raise ValueError(f"channels must be at least 2 to split them, got {channels}")
    first = torch.arange(channels) < channels // 2
    keep = first if parity == 0 else ~first
    return keep.float()[:, None, None].expand(channels, height, width).clone()


def _zero_last(net: nn.Sequential) -> nn.Sequential:
    nn.init.zeros_(net[-1].weight)
    nn.init.zeros_(net[-1].bias)
    return net


def mlp_conditioner(features: int, width: int) -> nn.Sequential:
    """The network of a coupling on points: (B, features) to the raw scale and shift,
    (B, 2 features), its last layer zeroed."""
    return _zero_last(nn.Sequential(
        nn.Linear(features, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
        nn.Linear(width, 2 * features)))  # fmt: skip


def conv_conditioner(channels: int, width: int) -> nn.Sequential:
    """The network of a coupling on images: (B, C, H, W) to (B, 2C, H, W), 3x3 convolutions
    with ReLUs between, its last layer zeroed."""
    return _zero_last(nn.Sequential(
        nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(),
        nn.Conv2d(width, width, 1), nn.ReLU(),
        nn.Conv2d(width, 2 * channels, 3, padding=1)))  # fmt: skip


# -- the chapter's two flows -----------------------------------------------------------------


def point_flow(num_couplings: int = 8, width: int = 64) -> Flow:
    """A RealNVP flow on 2-D points: ``num_couplings`` steps of ActNorm, an invertible linear
    map and an affine coupling whose MLP reads one coordinate and moves the other."""
    check_positive_int("num_couplings", num_couplings)
    check_positive_int("width", width)
    layers = []
    for k in range(num_couplings):
        coupling = AffineCoupling(alternating_mask(2, k % 2), mlp_conditioner(2, width))
        layers += [ActNorm(2), InvertibleLinear(2), coupling]
    return Flow(Sequential(*layers), (2,))


def _glow_steps(channels: int, size: int, steps: int, width: int) -> list[FlowLayer]:
    """Glow's steps at one scale: ActNorm, an invertible 1x1 convolution, a channel coupling."""
    return [layer for k in range(steps) for layer in (
        ActNorm(channels), InvertibleLinear(channels),
        AffineCoupling(channel_mask(channels, size, size, k % 2),
                       conv_conditioner(channels, width)))]  # fmt: skip


def image_flow(steps: int = 4, width: int = 32, alpha: float = 0.05) -> Flow:
    """A multi-scale RealNVP/Glow-style flow on 28 x 28 grey images in (0, 1): the logit, a
    squeeze to 4 x 14 x 14, ``steps`` Glow steps, half the channels factored out, a squeeze of
    the rest to 8 x 7 x 7 and ``steps`` more (unsqueezed back, so that the code has the shape
    4 x 14 x 14); the couplings' networks are ``width`` channels wide."""
    check_positive_int("steps", steps)
    check_positive_int("width", width)
    inner = Sequential(Squeeze(), *_glow_steps(8, 7, steps, width), Unsqueeze())
    layers = Sequential(Logit(alpha), Squeeze(), *_glow_steps(4, 14, steps, width),
                        FactorOut(2, inner))  # fmt: skip
    return Flow(layers, (4, 14, 14))


# -- 8-bit images ----------------------------------------------------------------------------


def dequantize(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    r"""Grey levels :math:`k \in \{0, \dots, 255\}` (uint8) to :math:`(k + u) / 256`,
    :math:`u \sim U(0, 1)`: each level becomes the interval :math:`[k/256, (k+1)/256)`. A density
    :math:`p` on :math:`[0, 1)^D` then gives each discrete image the probability
    :math:`P(k) = \int_{\text{its cube}} p \ge 256^{-D} \exp \mathbb{E}_u \log p`, by Jensen."""
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8:
        got = images.dtype if isinstance(images, torch.Tensor) else type(images).__name__
        raise TypeError(f"images must be a uint8 tensor of grey levels 0-255, got {got}")
    check_generator("generator", generator)
    u = torch.rand(images.shape, generator=generator, device=images.device)
    return (images.float() + u) / 256


def discrete_bits_per_dim(log_prob: torch.Tensor, num_dims: int) -> torch.Tensor:
    r"""The flow's log-density of dequantised images in :math:`[0, 1)^D` (nats, (B,)) as bits
    per dimension of the 8-bit images: each cube of side 1/256 has volume :math:`256^{-D}`, so
    :math:`-\log_2 P(k) \le -\big(\mathbb{E}_u \log p(y) - D \log 256\big) / \ln 2`, per
    dimension; with one draw of :math:`u` per image, an unbiased estimate of that bound."""
    check_positive_int("num_dims", num_dims)
    return -(log_prob - num_dims * math.log(256)) / (num_dims * math.log(2))

r"""Diffusion models (the diffusion chapter): the forward process that adds noise, the loss
that learns to remove it, and the samplers that run the process backwards.

The forward process adds Gaussian noise in :math:`T` steps with variances
:math:`\beta_1, \dots, \beta_T` (the *schedule*),

.. math:: q(x_t \mid x_{t-1}) = \mathcal{N}\big(\sqrt{1 - \beta_t}\, x_{t-1}, \beta_t I\big),
          \qquad q(x_t \mid x_0) = \mathcal{N}\big(\sqrt{\bar\alpha_t}\, x_0,
          (1 - \bar\alpha_t) I\big), \quad \bar\alpha_t = \prod_{s \le t} (1 - \beta_s),

so :math:`x_t = \sqrt{\bar\alpha_t}\, x_0 + \sqrt{1 - \bar\alpha_t}\, \epsilon` in one draw.
A network :math:`\hat\epsilon(x_t, t)` learns to predict :math:`\epsilon` (Ho et al. 2020), and
the samplers turn that prediction into steps from noise to data. Times reach the network as
:math:`t / T \in (0, 1]`. Arrays here are indexed by :math:`t - 1`: ``alpha_bar[0]`` is
:math:`\bar\alpha_1`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import nn

from genai_course.config import check_generator, check_positive_int, check_real
from genai_course.unet import time_features

# a denoiser: model(x_t, t / T (B,), labels (B,) or None) -> epsilon-hat, shaped like x_t
Denoiser = Callable[..., torch.Tensor]


class PointDenoiser(nn.Module):
    """The 2-D denoiser: an MLP on the point and sinusoidal features of its time,
    ``PointDenoiser(width)(x (B, 2), t (B,), None) -> (B, 2)``."""

    num_classes = None  # no labels

    def __init__(self, width: int = 128, time_dim: int = 32):
        super().__init__()
        check_positive_int("width", width)
        self.time_dim = time_dim
        self.net = nn.Sequential(
            nn.Linear(2 + time_dim, width), nn.SiLU(), nn.Linear(width, width), nn.SiLU(),
            nn.Linear(width, width), nn.SiLU(), nn.Linear(width, 2),
        )  # fmt: skip

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: None = None) -> torch.Tensor:
        if y is not None:
            raise ValueError("y must be None: the point denoiser takes no labels")
        return self.net(torch.cat([x, time_features(t, self.time_dim)], dim=1))


# -- schedules ---------------------------------------------------------------------------


def linear_betas(steps: int = 1000, start: float = 1e-4, end: float = 0.02) -> torch.Tensor:
    r"""DDPM's schedule: :math:`\beta_t` rising linearly from ``start`` to ``end``; (T,)
    float64. For ``steps`` other than 1,000 both ends are scaled by 1000 / steps, so that the
    process ends as noisy as DDPM's (Nichol & Dhariwal 2021)."""
    check_positive_int("steps", steps)
    scale = 1000 / steps
    return torch.linspace(scale * start, min(scale * end, 0.999), steps, dtype=torch.float64)


def cosine_betas(steps: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    r"""The cosine schedule (Nichol & Dhariwal 2021): :math:`\bar\alpha_t = f(t) / f(0)` with
    :math:`f(t) = \cos^2\!\big(\frac{t/T + s}{1 + s} \frac{\pi}{2}\big)`, and
    :math:`\beta_t = 1 - \bar\alpha_t / \bar\alpha_{t-1}` capped at ``max_beta``; (T,) float64."""
    check_positive_int("steps", steps)
    t = torch.arange(steps + 1, dtype=torch.float64) / steps
    f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    return (1 - f[1:] / f[:-1]).clamp(max=max_beta)


def alpha_bars(betas: torch.Tensor) -> torch.Tensor:
    r""":math:`\bar\alpha_t = \prod_{s \le t} (1 - \beta_s)` for t = 1..T: (T,)."""
    _check_betas(betas)
    return torch.cumprod(1 - betas, dim=0)


def snr(alpha_bar: torch.Tensor) -> torch.Tensor:
    r"""The signal-to-noise ratio of :math:`x_t`: :math:`\bar\alpha_t / (1 - \bar\alpha_t)`."""
    return alpha_bar / (1 - alpha_bar)


# -- the forward process -----------------------------------------------------------------


def noised(x0: torch.Tensor, alpha_bar_t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    r"""A draw of :math:`q(x_t \mid x_0)`: :math:`\sqrt{\bar\alpha_t}\, x_0 +
    \sqrt{1 - \bar\alpha_t}\, \epsilon`, with one :math:`\bar\alpha_t` per example (B,)."""
    a = alpha_bar_t.to(x0.dtype).reshape(-1, *[1] * (x0.ndim - 1))  # (B, 1, ...)
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


def run_chain(x0: torch.Tensor, betas: torch.Tensor,
              generator: torch.Generator | None = None) -> torch.Tensor:  # fmt: skip
    r"""The forward process simulated step by step: :math:`x_t = \sqrt{1 - \beta_t}\, x_{t-1}
    + \sqrt{\beta_t}\, \epsilon_t` for every :math:`\beta_t` in ``betas``; returns the last
    :math:`x_t` (what :func:`noised` draws in one step, in distribution)."""
    _check_betas(betas)
    check_generator("generator", generator)
    x = x0
    for beta in betas.tolist():
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        x = math.sqrt(1 - beta) * x + math.sqrt(beta) * noise
    return x


def posterior(x0: torch.Tensor, xt: torch.Tensor, t: int,
              betas: torch.Tensor) -> tuple[torch.Tensor, float]:  # fmt: skip
    r"""The forward process run backwards given :math:`x_0`: :math:`q(x_{t-1} \mid x_t, x_0)
    = \mathcal{N}(\tilde\mu_t, \tilde\beta_t I)` with

    .. math:: \tilde\mu_t = \frac{\sqrt{\bar\alpha_{t-1}}\,\beta_t}{1 - \bar\alpha_t} x_0
              + \frac{\sqrt{1 - \beta_t}\,(1 - \bar\alpha_{t-1})}{1 - \bar\alpha_t} x_t,
              \qquad \tilde\beta_t = \frac{1 - \bar\alpha_{t-1}}{1 - \bar\alpha_t} \beta_t;

    returns :math:`(\tilde\mu_t, \tilde\beta_t)` for one step ``t`` in 1..T."""
    ab = alpha_bars(betas).tolist()
    if isinstance(t, bool) or not isinstance(t, int) or not 1 <= t <= len(ab):
        raise ValueError(f"t must be a step in 1..{len(ab)}, got {t!r}")
    beta, ab_t, ab_prev = betas[t - 1].item(), ab[t - 1], (ab[t - 2] if t > 1 else 1.0)
    mean = (math.sqrt(ab_prev) * beta * x0 + math.sqrt(1 - beta) * (1 - ab_prev) * xt) / (1 - ab_t)
    return mean, (1 - ab_prev) / (1 - ab_t) * beta


# -- the loss ------------------------------------------------------------------------------


def noise_prediction_loss(model: Denoiser, x0: torch.Tensor, alpha_bar: torch.Tensor,
                          y: torch.Tensor | None = None,
                          generator: torch.Generator | None = None) -> torch.Tensor:  # fmt: skip
    r"""DDPM's simple loss, one value per example (B,): with :math:`t` uniform on 1..T and
    :math:`\epsilon \sim \mathcal{N}(0, I)`, the mean over dimensions of
    :math:`\lVert \epsilon - \hat\epsilon(\sqrt{\bar\alpha_t} x_0 + \sqrt{1 - \bar\alpha_t}
    \epsilon, t) \rVert^2`. ``y``: labels passed to the model (or None)."""
    steps = len(alpha_bar)
    t = torch.randint(1, steps + 1, (len(x0),), generator=generator, device=x0.device)  # (B,)
    noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
    xt = noised(x0, alpha_bar.to(x0.device)[t - 1], noise)
    eps_hat = model(xt, t.to(x0.dtype) / steps, y)
    return (noise - eps_hat).pow(2).flatten(1).mean(dim=1)  # (B,)


# -- the bound -------------------------------------------------------------------------------


class Bound(NamedTuple):
    """The terms of the variational bound on :math:`-\\log p(x_0)`, in nats, (B,) each."""

    prior: torch.Tensor  # L_T: KL(q(x_T | x_0) || N(0, I)), no parameters
    denoising: torch.Tensor  # the sum over t = 2..T of L_{t-1}
    decoder: torch.Tensor  # L_0: -log p(x_0 | x_1)

    @property
    def total(self) -> torch.Tensor:
        return self.prior + self.denoising + self.decoder


def bound_weights(betas: torch.Tensor) -> torch.Tensor:
    r"""The weights :math:`\lambda_t` that turn the squared error of the noise into the bound's
    terms, (T,) (the first, for :math:`L_0`, is 0): with :math:`p_\theta(x_{t-1} \mid x_t)` of
    variance :math:`\tilde\beta_t` and its mean written with :math:`\hat\epsilon`,
    :math:`L_{t-1} = \lambda_t \lVert \epsilon - \hat\epsilon \rVert^2` and
    :math:`\lambda_t = \beta_t^2 / \big(2 \tilde\beta_t (1 - \beta_t)(1 - \bar\alpha_t)\big)
    = \beta_t / \big(2 (1 - \beta_t)(1 - \bar\alpha_{t-1})\big)`."""
    ab = alpha_bars(betas)
    ab_prev = torch.cat([ab.new_ones(1), ab[:-1]])  # alpha-bar_{t-1}, alpha-bar_0 = 1
    weights = betas / (2 * (1 - betas) * (1 - ab_prev).clamp(min=1e-300))
    weights[0] = 0.0
    return weights


@torch.no_grad()
def variational_bound(model: Denoiser, x0: torch.Tensor, betas: torch.Tensor,
                      y: torch.Tensor | None = None,
                      generator: torch.Generator | None = None) -> Bound:  # fmt: skip
    r"""DDPM's bound :math:`-\log p(x_0) \le L_T + \sum_{t=2}^{T} L_{t-1} + L_0` per example,
    for continuous data (e.g. dequantised images), every term computed with one draw of
    :math:`x_t`: :math:`L_{t-1}` as in :func:`bound_weights`, and the decoder
    :math:`L_0 = -\log \mathcal{N}(x_0; \mu_\theta(x_1, 1), \beta_1 I)`. It costs T calls of
    the model per example."""
    total = len(betas)
    check_generator("generator", generator)
    ab = alpha_bars(betas).to(device=x0.device, dtype=x0.dtype)
    weights = bound_weights(betas).tolist()
    dims, n = x0[0].numel(), len(x0)

    def predict(t: int):  # x_t, the squared error of the noise, eps-hat at step t
        noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
        xt = noised(x0, ab[t - 1].expand(n), noise)
        eps_hat = model(xt, torch.full((n,), t / total, dtype=x0.dtype, device=x0.device), y)
        return xt, (noise - eps_hat).pow(2).flatten(1).sum(1), eps_hat

    a_T = ab[-1].item()  # L_T = KL(N(sqrt(a_T) x0, (1 - a_T) I) || N(0, I))
    prior = 0.5 * (a_T * x0.pow(2).flatten(1).sum(1) + dims * (-a_T - math.log(1 - a_T)))
    denoising = sum(weights[t - 1] * predict(t)[1] for t in range(2, total + 1))
    beta_1 = betas[0].item()  # L_0: the mean at t = 1 from eps-hat, variance beta_1
    x1, _, eps_hat = predict(1)
    mean = (x1 - beta_1 / math.sqrt(1 - ab[0].item()) * eps_hat) / math.sqrt(1 - beta_1)
    decoder = 0.5 * ((x0 - mean).pow(2).flatten(1).sum(1) / beta_1
                     + dims * math.log(2 * math.pi * beta_1))  # fmt: skip
    return Bound(prior, x0.new_zeros(n) + denoising, decoder)


# -- sampling ------------------------------------------------------------------------------


def guided(model: Denoiser, x: torch.Tensor, time: torch.Tensor, y: torch.Tensor | None,
           weight: float) -> torch.Tensor:  # fmt: skip
    r"""Classifier-free guidance (Ho & Salimans 2022): :math:`(1 + w)\, \hat\epsilon(x, t, y)
    - w\, \hat\epsilon(x, t, \varnothing)`, both in one batch; without labels or with
    :math:`w = 0`, the model's own prediction. Works the same for a velocity."""
    if y is None or weight == 0:
        return model(x, time, y)
    both = model(torch.cat([x, x]), torch.cat([time, time]), torch.cat([y, torch.full_like(
        y, model.num_classes)]))  # the second half: "no label"  # fmt: skip
    conditional, unconditional = both.chunk(2)
    return (1 + weight) * conditional - weight * unconditional


def check_sampling(shape, steps: int, total: int, y, n_classes, generator) -> None:
    """The arguments every sampler shares, checked, each error naming its argument."""
    check_positive_int("steps", steps)
    if steps > total:
        raise ValueError(f"steps must be at most the process's {total} steps, got {steps}")
    if not isinstance(shape, tuple | torch.Size) or not shape or not all(
            isinstance(n, int) and n > 0 for n in shape):  # fmt: skip
        raise ValueError(f"shape must be a tuple of positive sizes (B, ...), got {shape!r}")
    if y is not None:
        if n_classes is None:
            raise ValueError("y must be None: this model takes no labels")
        if not isinstance(y, torch.Tensor) or y.dtype != torch.long or y.shape != shape[:1]:
            got = (f"{y.dtype} {tuple(y.shape)}" if isinstance(y, torch.Tensor)
                   else type(y).__name__)  # fmt: skip
            raise ValueError(f"y must be one integer label per sample, ({shape[0]},), got {got}")
        if not (0 <= int(y.min()) and int(y.max()) < n_classes):
            raise ValueError(f"y must be labels in 0..{n_classes - 1}, got "
                             f"{int(y.min())}..{int(y.max())}")  # fmt: skip
    check_generator("generator", generator)


def model_device(model: Denoiser) -> torch.device:
    """Where ``model``'s parameters are (the CPU for a function without any)."""
    parameters = getattr(model, "parameters", None)
    first = next(parameters(), None) if callable(parameters) else None
    return torch.device("cpu") if first is None else first.device


def timesteps(total: int, steps: int) -> list[int]:
    """``steps`` times from ``total`` down to 1, evenly spaced (DDIM's sub-sequence)."""
    return sorted({round(total - (total - 1) * i / max(steps - 1, 1)) for i in range(steps)},
                  reverse=True)  # fmt: skip


@torch.no_grad()
def ddim_sample(model: Denoiser, shape: tuple[int, ...], alpha_bar: torch.Tensor,
                steps: int, eta: float = 0.0, y: torch.Tensor | None = None,
                guidance: float = 0.0, clip: float | None = None, x_T: torch.Tensor | None = None,
                generator: torch.Generator | None = None, trajectory: bool = False):  # fmt: skip
    r"""DDIM (Song et al. 2021) on ``steps`` of the ``len(alpha_bar)`` times: from
    :math:`x_T \sim \mathcal{N}(0, I)` (or ``x_T``), at each time :math:`t` with next time
    :math:`s < t` (:math:`\bar\alpha_0 = 1`),

    .. math:: \hat x_0 = \frac{x_t - \sqrt{1 - \bar\alpha_t}\, \hat\epsilon}{\sqrt{\bar\alpha_t}},
              \qquad x_s = \sqrt{\bar\alpha_s}\, \hat x_0 + \sqrt{1 - \bar\alpha_s
              - \sigma^2}\, \hat\epsilon + \sigma z,

    :math:`\sigma = \eta \sqrt{(1 - \bar\alpha_s)/(1 - \bar\alpha_t)}
    \sqrt{1 - \bar\alpha_t / \bar\alpha_s}`: ``eta`` = 0 is deterministic (an ODE solver),
    ``eta`` = 1 is DDPM's ancestral sampler on those times. ``clip``: clamp
    :math:`\hat x_0` to [-clip, clip] (images). ``guidance``: the weight :math:`w` of
    :func:`guided`. Returns the samples, or with ``trajectory`` the list of every
    :math:`x_t` visited, :math:`x_T` first."""
    total = len(alpha_bar)
    check_sampling(shape, steps, total, y, getattr(model, "num_classes", None), generator)
    check_real("eta", eta, 0.0)
    device = model_device(model)
    ab = alpha_bar.tolist()
    x = torch.randn(shape, generator=generator, device=device) if x_T is None else x_T
    path = [x]
    times = timesteps(total, steps)
    for t, s in zip(times, times[1:] + [0], strict=True):
        a_t, a_s = ab[t - 1], (ab[s - 1] if s > 0 else 1.0)
        eps = guided(model, x, torch.full((shape[0],), t / total, device=device), y, guidance)
        x0 = (x - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)
        if clip is not None:
            x0 = x0.clamp(-clip, clip)
        sigma = eta * math.sqrt((1 - a_s) / (1 - a_t) * (1 - a_t / a_s))
        x = math.sqrt(a_s) * x0 + math.sqrt(max(1 - a_s - sigma**2, 0.0)) * eps
        if sigma > 0:
            x = x + sigma * torch.randn(shape, generator=generator, device=device)
        path.append(x)
    return path if trajectory else x


@torch.no_grad()
def ddpm_sample(model: Denoiser, shape: tuple[int, ...], betas: torch.Tensor,
                y: torch.Tensor | None = None, guidance: float = 0.0,
                generator: torch.Generator | None = None) -> torch.Tensor:  # fmt: skip
    r"""DDPM's ancestral sampler (Ho et al. 2020, Algorithm 2), all T steps: from
    :math:`x_T \sim \mathcal{N}(0, I)`,

    .. math:: x_{t-1} = \frac{1}{\sqrt{1 - \beta_t}} \Big(x_t - \frac{\beta_t}
              {\sqrt{1 - \bar\alpha_t}} \hat\epsilon(x_t, t)\Big) + \sqrt{\tilde\beta_t}\, z,

    the posterior's mean with :math:`x_0` replaced by the model's estimate, and its variance
    :math:`\tilde\beta_t` (0 at the last step)."""
    total = len(betas)
    check_sampling(shape, total, total, y, getattr(model, "num_classes", None), generator)
    device = model_device(model)
    ab = alpha_bars(betas).tolist()
    x = torch.randn(shape, generator=generator, device=device)
    for t in range(total, 0, -1):
        beta, a_t, a_prev = betas[t - 1].item(), ab[t - 1], (ab[t - 2] if t > 1 else 1.0)
        eps = guided(model, x, torch.full((shape[0],), t / total, device=device), y, guidance)
        x = (x - beta / math.sqrt(1 - a_t) * eps) / math.sqrt(1 - beta)
        if t > 1:
            x = x + math.sqrt((1 - a_prev) / (1 - a_t) * beta) * torch.randn(
                shape, generator=generator, device=device)  # fmt: skip
    return x


@torch.no_grad()
def ddim_invert(model: Denoiser, x0: torch.Tensor, alpha_bar: torch.Tensor, steps: int,
                y: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
    r"""Deterministic DDIM run forwards: the :math:`x_T` from which
    ``ddim_sample(..., steps, eta=0, x_T=x_T)``, with the same ``steps`` and no ``clip``,
    returns ``x0`` (up to the solver's error, which falls with ``steps``). Each step from
    :math:`s` to :math:`t > s` reads the model at the point it starts from and the time it
    lands on, :math:`\hat\epsilon = \hat\epsilon(x_s, t)`, and with
    :math:`\hat x_0 = (x_s - \sqrt{1 - \bar\alpha_s}\, \hat\epsilon) / \sqrt{\bar\alpha_s}`
    goes to :math:`x_t = \sqrt{\bar\alpha_t}\, \hat x_0 + \sqrt{1 - \bar\alpha_t}\,
    \hat\epsilon`."""
    total = len(alpha_bar)
    check_sampling(tuple(x0.shape), steps, total, y, getattr(model, "num_classes", None), None)
    ab = alpha_bar.tolist()
    times = timesteps(total, steps)[::-1]  # 1 ... T
    x = x0
    for s, t in zip([0] + times[:-1], times, strict=True):
        a_s, a_t = (ab[s - 1] if s > 0 else 1.0), ab[t - 1]
        # the prediction at the time the step lands on, read at the point it starts from
        eps = model(x, torch.full((len(x),), t / total, device=x.device), y)
        x0_hat = (x - math.sqrt(1 - a_s) * eps) / math.sqrt(a_s)
        x = math.sqrt(a_t) * x0_hat + math.sqrt(1 - a_t) * eps
    return x


def _check_betas(betas) -> None:
    if not isinstance(betas, torch.Tensor) or betas.ndim != 1 or not len(betas):
        raise ValueError(f"betas must be a 1-D tensor of variances, got {betas!r}")
    if not bool(((betas > 0) & (betas < 1)).all()):
        raise ValueError("betas must all be in (0, 1)")

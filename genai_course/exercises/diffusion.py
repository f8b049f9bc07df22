"""The diffusion chapter (notebook ``diffusion``): a draw of the forward process in one
step, and one deterministic DDIM step.
"""

from __future__ import annotations

import math

import torch

from genai_course.diffusion import noised
from genai_course.exercises.core import Exercise, f64, random_int, random_normal, random_uniform

# -- diffusion.noised ----------------------------------------------------------------------


def _noised(
    x0: torch.Tensor, alpha_bar: torch.Tensor, t: torch.Tensor, noise: torch.Tensor
) -> torch.Tensor:
    r"""A draw of :math:`q(x_t \mid x_0)`: :math:`\sqrt{\bar\alpha_t}\, x_0 + \sqrt{1 -
    \bar\alpha_t}\, \epsilon`, (B, D), each example at its own step ``t`` (B,) in 1..T, with
    :math:`\bar\alpha_t` = ``alpha_bar[t - 1]``."""
    return noised(x0, alpha_bar[t - 1], noise)  # (B, D)


def _draw_noised(g: torch.Generator):
    b, d, steps = random_int(g, 1, 6), random_int(g, 1, 5), random_int(g, 1, 20)
    # a rising schedule of betas from 1e-3 to 0.3: alpha-bar_T down to about 1e-3
    betas = (1e-3 + 0.3 * torch.rand(steps, generator=g, dtype=torch.float64)).sort().values
    alpha_bar = torch.cumprod(1 - betas, dim=0)  # (T,), decreasing in (0, 1)
    t = torch.randint(1, steps + 1, (b,), generator=g)  # (B,) int64 steps in 1..T
    return random_normal(g, b, d), alpha_bar, t, random_normal(g, b, d)


# alpha-bar chosen so that both square roots are exact: (sqrt(a), sqrt(1 - a)) =
# (24/25, 7/25), (4/5, 3/5), (3/5, 4/5), (7/25, 24/25)
_ALPHA_BAR = f64(576 / 625, 0.64, 0.36, 49 / 625)

NOISED = Exercise(
    "diffusion.noised",
    "noised(x0, alpha_bar, t, noise): x0 (B, D), alpha_bar (T,) decreasing in (0, 1) with "
    "alpha_bar[0] the alpha-bar of step 1, t (B,) int64 steps in 1..T, noise (B, D) -> x_t "
    "(B, D): the draw of q(x_t | x_0) made with that noise, sqrt(a) * x0 + sqrt(1 - a) * noise "
    "with a = alpha_bar[t - 1], each example at its own step",
    _noised,
    _draw_noised,
    fixed=[
        # B = D = 2 and the steps T and 1: alpha_bar[t] is out of range at t = T, and a
        # (B,) vector of alpha-bars not reshaped to (B, 1) broadcasts along D without an error
        (
            torch.stack([f64(1.0, -2.0), f64(0.5, 3.0)]),
            _ALPHA_BAR,
            torch.tensor([4, 1]),
            torch.stack([f64(1.0, 1.0), f64(-1.0, 2.0)]),
        ),
        # B = 1
        (f64(2.0, 0.0, -1.0)[None], _ALPHA_BAR, torch.tensor([3]), f64(0.5, -1.0, 1.0)[None]),
    ],
    hint="alpha_bar[0] is the alpha-bar of step 1, so step t reads alpha_bar[t - 1]. x0 is "
    "scaled by the square root of alpha-bar and the noise by the square root of "
    "1 - alpha-bar (standard deviations, not variances), each example by its own step's: "
    "alpha_bar[t - 1] is a (B,) vector, to be shaped (B, 1) to scale the rows of a (B, D) "
    "tensor.",
)

# -- diffusion.ddim_step -------------------------------------------------------------------


def _ddim_step(x_t: torch.Tensor, eps_hat: torch.Tensor, a_t: float, a_s: float) -> torch.Tensor:
    r"""One deterministic DDIM step (:math:`\eta = 0`) from time t to an earlier time s:
    :math:`\hat x_0 = (x_t - \sqrt{1 - \bar\alpha_t}\, \hat\epsilon) / \sqrt{\bar\alpha_t}` and
    :math:`x_s = \sqrt{\bar\alpha_s}\, \hat x_0 + \sqrt{1 - \bar\alpha_s}\, \hat\epsilon`, (B, D);
    ``a_t`` and ``a_s`` are :math:`\bar\alpha_t < \bar\alpha_s \le 1`."""
    x0_hat = (x_t - math.sqrt(1 - a_t) * eps_hat) / math.sqrt(a_t)  # (B, D)
    return math.sqrt(a_s) * x0_hat + math.sqrt(1 - a_s) * eps_hat  # (B, D)


def _draw_ddim_step(g: torch.Generator):
    b, d = random_int(g, 1, 6), random_int(g, 1, 5)
    a_t = math.exp(random_uniform(g, math.log(1e-3), math.log(0.99)))  # log-uniform
    # the next time: s = 0 (alpha-bar 1) one time in four, else between t and 0
    a_s = 1.0 if random_int(g, 0, 3) == 0 else a_t + (1 - a_t) * random_uniform(g, 0.05, 1.0)
    return random_normal(g, b, d), random_normal(g, b, d), a_t, a_s


_EPS_HAT = f64(1.0, 0.5, -2.0)  # the predicted noise of the second fixed case

DDIM_STEP = Exercise(
    "diffusion.ddim_step",
    "ddim_step(x_t, eps_hat, a_t, a_s): x_t and eps_hat (B, D), a_t and a_s floats with "
    "0 < a_t < a_s <= 1, the alpha-bars of the current time t and of the next, earlier time s "
    "(a_s = 1 for s = 0) -> x_s (B, D), deterministic DDIM (eta = 0): "
    "x0_hat = (x_t - sqrt(1 - a_t) * eps_hat) / sqrt(a_t), then "
    "x_s = sqrt(a_s) * x0_hat + sqrt(1 - a_s) * eps_hat",
    _ddim_step,
    _draw_ddim_step,
    fixed=[
        # s = 0: the step returns the estimate of x0 itself
        (
            torch.stack([f64(1.0, -2.0), f64(0.5, 0.0)]),
            torch.stack([f64(0.5, 1.0), f64(-1.0, 2.0)]),
            0.36,
            1.0,
        ),
        # alpha-bar_t = 1e-4: x_t is almost all noise, and x0_hat divides by sqrt(a_t) = 0.01;
        # x_t is made from x0 = (2, -1, 0.5), so that x0_hat is x0; B = 1
        (
            (0.01 * f64(2.0, -1.0, 0.5) + math.sqrt(1 - 1e-4) * _EPS_HAT)[None],
            _EPS_HAT[None],
            1e-4,
            0.64,
        ),
    ],
    hint="first estimate x0 by solving x_t = sqrt(a_t) * x0 + sqrt(1 - a_t) * eps_hat for x0; "
    "then put that estimate back at time s with the same eps_hat, scaling both by a_s's "
    "square roots as q(x_s | x_0) does. eta = 0 adds no fresh noise, and with a_s = 1 the "
    "step returns the estimate of x0.",
)

EXERCISES = (NOISED, DDIM_STEP)

"""The flows chapter (notebook ``flows``): an affine coupling layer with its
log-determinant, and the change of variables through an invertible linear map.
"""

from __future__ import annotations

import math

import torch

from genai_course.exercises.core import Exercise, f64, random_int, random_normal, random_uniform
from genai_course.flows import affine_coupling

# -- flows.affine_coupling -----------------------------------------------------------------


def _affine_coupling(
    x: torch.Tensor, mask: torch.Tensor, s: torch.Tensor, t: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    r""":math:`y = m \odot x + (1 - m) \odot (x \odot e^{s} + t)`, (B, D), and
    :math:`\log|\det J| = \sum_d (1 - m_d)\, s_{b,d}`, (B,): x, s and t (B, D), mask (D,)."""
    return affine_coupling(x, mask, s, t)  # (B, D), (B,)


def _draw_affine_coupling(g: torch.Generator):
    b, d = random_int(g, 1, 6), random_int(g, 1, 6)
    mask = torch.randint(0, 2, (d,), generator=g).to(torch.float64)  # (D,) zeros and ones
    x, s, t = random_normal(g, b, d, scale=1.5), random_normal(g, b, d), random_normal(g, b, d)
    return x, mask, s, t  # x, s, t: (B, D) each


AFFINE_COUPLING = Exercise(
    "flows.affine_coupling",
    "affine_coupling(x, mask, s, t): x, s and t (B, D), mask (D,) of zeros and ones -> "
    "(y (B, D), logdet (B,)): y = mask * x + (1 - mask) * (x * exp(s) + t), the features with "
    "mask 1 kept as they are and the others scaled and shifted, and logdet the log |det| of "
    "the Jacobian dy/dx for each example, the sum of s over the transformed features",
    _affine_coupling,
    _draw_affine_coupling,
    fixed=[
        # mask all ones: the identity, logdet 0 whatever s is
        (
            torch.stack([f64(1.0, -2.0, 0.5), f64(0.0, 3.0, -1.0)]),
            f64(1.0, 1.0, 1.0),
            torch.stack([f64(4.0, -3.0, 2.0), f64(1.0, 1.0, 1.0)]),
            torch.stack([f64(1.0, 2.0, 3.0), f64(-1.0, 0.5, 0.0)]),
        ),
        # mask all zeros: every feature scaled and shifted; B = 1
        (f64(1.0, -1.0)[None], f64(0.0, 0.0), f64(0.0, 1.0)[None], f64(0.5, -0.5)[None]),
        # large s on the kept features (exp(20) is 5e8): they must not move y nor count in
        # logdet
        (
            torch.stack([f64(0.5, 1.0, -1.0, 2.0), f64(-0.5, 2.0, 1.5, 1.0)]),
            f64(1.0, 0.0, 1.0, 0.0),
            torch.stack([f64(20.0, 0.5, -20.0, -1.0), f64(20.0, -0.25, 20.0, 0.0)]),
            torch.stack([f64(3.0, 0.0, -3.0, 1.0), f64(1.0, 1.0, 1.0, 1.0)]),
        ),
    ],
    hint="the features with mask 1 pass through unchanged and add nothing to the "
    "log-determinant; the others become x * exp(s) + t and each adds its s (the Jacobian is "
    "triangular, its diagonal 1 or exp(s)). Sum over the features (dim 1), one "
    "log-determinant per example: shape (B,), even when B = 1.",
)

# -- flows.linear_flow_log_prob ------------------------------------------------------------


def _linear_flow_log_prob(x: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    r""":math:`\log p(x) = \log \mathcal{N}(z; 0, I) + \log|\det W|` with :math:`z = W x + b`
    for each row of ``x`` (B, D): :math:`-\tfrac12 |z|^2 - \tfrac D2 \log 2\pi + \log|\det W|`,
    (B,)."""
    z = x @ W.T + b  # (B, D): each row W x_i + b
    base = -0.5 * (z**2).sum(dim=1) - 0.5 * x.shape[1] * math.log(2 * math.pi)  # (B,)
    return base + torch.linalg.slogdet(W).logabsdet  # (B,)


def _draw_linear_flow_log_prob(g: torch.Generator):
    n, d = random_int(g, 1, 6), random_int(g, 1, 5)
    # a random orthogonal matrix (det +1 or -1) times a positive diagonal, its entries within
    # a factor e of a common scale: well conditioned, |det W| anywhere from e^-8 to e^8
    q, _ = torch.linalg.qr(random_normal(g, d, d))  # (D, D)
    scale = math.exp(random_uniform(g, -0.6, 0.6))
    W = q * (scale * torch.exp(random_normal(g, d).clamp(-1.0, 1.0)))  # (D, D): q diag(.)
    return random_normal(g, n, d), W, random_normal(g, d, scale=0.5)  # x (B, D), W, b (D,)


LINEAR_FLOW_LOG_PROB = Exercise(
    "flows.linear_flow_log_prob",
    "linear_flow_log_prob(x, W, b): x (B, D), W (D, D) invertible, b (D,) -> (B,): the "
    "log-density in nats of each row x_i under the flow z = W x_i + b (for the whole batch, "
    "z = x W^T + b) with a standard normal base in D dimensions, "
    "log N(z; 0, I) + log |det W|",
    _linear_flow_log_prob,
    _draw_linear_flow_log_prob,
    fixed=[
        # a W with det -2 (a swap of the coordinates, one of them doubled): log |det W|, not
        # log det W
        (
            torch.stack([f64(1.0, 0.5), f64(0.5, 0.0)]),
            torch.stack([f64(0.0, 2.0), f64(1.0, 0.0)]),
            f64(-1.0, 0.0),
        ),
        # D = 1
        (f64(1.0, -2.0, 0.0)[:, None], f64(0.5)[None], f64(1.0)),
        # W = 100 R, R a quarter turn about the third axis: det W = 1e6, and W^T != W
        (
            torch.stack([f64(0.01, 0.0, 0.01), f64(-0.01, 0.02, 0.0)]),
            100 * torch.stack([f64(0.0, -1.0, 0.0), f64(1.0, 0.0, 0.0), f64(0.0, 0.0, 1.0)]),
            f64(0.0, -1.0, 0.0),
        ),
    ],
    hint="map each row through z = W x + b (for a batch of rows, x @ W.T + b), score z under "
    "N(0, I) in D dimensions (-|z|^2 / 2 - (D/2) log(2 pi)), and add log |det W|, the "
    "absolute value's log: det W can be negative (torch.linalg.slogdet gives it).",
)

EXERCISES = (AFFINE_COUPLING, LINEAR_FLOW_LOG_PROB)

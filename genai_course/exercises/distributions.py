"""The distributions chapter (notebook ``distributions``): a Gaussian log-density
that stays finite in the tails, and sampling a categorical by its inverse CDF.
"""

from __future__ import annotations

import torch
from scipy import stats

from genai_course.exercises.core import Exercise, f64, random_int, random_normal, random_simplex

# -- distributions.gaussian_log_pdf --------------------------------------------------------


def _gaussian_log_pdf(x, mu, sigma) -> torch.Tensor:
    r""":math:`\log\mathcal{N}(x; \mu, \sigma^2)
    = -\log\sigma - \tfrac12\log 2\pi - (x - \mu)^2 / 2\sigma^2`, elementwise."""
    return torch.as_tensor(stats.norm.logpdf(x.numpy(), mu.numpy(), sigma.numpy()))


def _draw_gaussian_log_pdf(g: torch.Generator):
    n = random_int(g, 1, 10)
    return random_normal(g, n, scale=3), random_normal(g, n), random_normal(g, n).abs() + 0.1


GAUSSIAN_LOG_PDF = Exercise(
    "distributions.gaussian_log_pdf",
    "gaussian_log_pdf(x, mu, sigma): tensors of one shape -> log N(x; mu, sigma^2), "
    "elementwise",
    _gaussian_log_pdf,
    _draw_gaussian_log_pdf,
    fixed=[(f64(40.0, -60.0), f64(0.0, 0.0), f64(1.0, 1.0))],  # the density underflows to 0
    hint="-log(sigma) - log(2 pi) / 2 - (x - mu)^2 / (2 sigma^2); in the far tails the "
    "density underflows to 0, so take the log of the formula by hand, not log(pdf).",
)

# -- distributions.categorical_inverse_cdf -------------------------------------------------


def _inverse_cdf(probs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    r"""The first category :math:`k` with :math:`F(k) = \sum_{j \le k} p_j > u`: (N,) int64.

    (Clamped to the last category in case round-off leaves :math:`F(K - 1)` below u.)
    """
    index = torch.searchsorted(torch.cumsum(probs, 0), u, right=True)
    return index.clamp(max=len(probs) - 1)


def _draw_inverse_cdf(g: torch.Generator):
    probs = random_simplex(g, random_int(g, 2, 8))
    return probs, torch.rand(random_int(g, 1, 20), generator=g, dtype=torch.float64)


CATEGORICAL_INVERSE_CDF = Exercise(
    "distributions.categorical_inverse_cdf",
    "categorical_inverse_cdf(probs, u): probs (K,) summing to 1, u (N,) uniforms in "
    "[0, 1) -> (N,) int64 categories, the first k whose cumulative probability exceeds u",
    _inverse_cdf,
    _draw_inverse_cdf,
    # a category of probability 0, and u on the boundaries
    fixed=[(f64(0.5, 0.0, 0.5), f64(0.0, 0.5, 0.25, 0.75))],
    hint="compare u with the running sum of probs; a category of probability 0 is never "
    "drawn, and u exactly on a boundary belongs to the category above it.",
)

EXERCISES = (GAUSSIAN_LOG_PDF, CATEGORICAL_INVERSE_CDF)

"""The common-mistakes appendix (notebook ``common_mistakes``): a log-sum-exp that
does not overflow, and the multinomial log-pmf with every factorial in it.
"""

from __future__ import annotations

import torch
from scipy import stats

from genai_course.exercises.core import Exercise, f64, random_int, random_normal, random_simplex

# -- common_mistakes.log_sum_exp -----------------------------------------------------------


def _log_sum_exp(x: torch.Tensor) -> torch.Tensor:
    r""":math:`\log\sum_n e^{x_n} = m + \log\sum_n e^{x_n - m}`, :math:`m = \max_n x_n`."""
    return torch.logsumexp(x, 0)


def _draw_log_sum_exp(g: torch.Generator):
    return (random_normal(g, random_int(g, 1, 20), scale=5),)


LOG_SUM_EXP = Exercise(
    "common_mistakes.log_sum_exp",
    "log_sum_exp(x): x (N,) -> log(sum(exp(x))) as a 0-dim tensor, finite for any finite x",
    _log_sum_exp,
    _draw_log_sum_exp,
    fixed=[(f64(1000.0, 1000.0),), (f64(-1000.0, -1001.0),)],  # exp overflows, underflows
    hint="factor out the largest entry m: log sum exp(x) = m + log sum exp(x - m).",
)

# -- common_mistakes.multinomial_log_pmf ---------------------------------------------------


def _multinomial_log_pmf(x: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    r""":math:`\log\frac{n!}{\prod_k x_k!} \prod_k p_k^{x_k}` with
    :math:`n = \sum_k x_k`: a 0-dim tensor."""
    return torch.as_tensor(stats.multinomial.logpmf(x.numpy(), int(x.sum()), probs.numpy()))


def _draw_multinomial(g: torch.Generator):
    k = random_int(g, 2, 6)
    return torch.randint(0, 6, (k,), generator=g).to(torch.float64), random_simplex(g, k)


MULTINOMIAL_LOG_PMF = Exercise(
    "common_mistakes.multinomial_log_pmf",
    "multinomial_log_pmf(x, probs): counts x (K,) as a float tensor and positive "
    "probabilities probs (K,) -> the log of the multinomial pmf (a 0-dim tensor)",
    _multinomial_log_pmf,
    _draw_multinomial,
    hint="every category has a factorial in the coefficient's denominator, not only the "
    "first two; torch.lgamma(x + 1) is log x!.",
)

EXERCISES = (LOG_SUM_EXP, MULTINOMIAL_LOG_PMF)

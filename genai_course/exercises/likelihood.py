"""The likelihood chapter (notebook ``likelihood``): the maximum-likelihood
estimates of a Gaussian and of a categorical distribution.
"""

from __future__ import annotations

import torch

from genai_course.exercises.core import Exercise, random_int, random_normal

# -- likelihood.gaussian_mle ---------------------------------------------------------------


def _gaussian_mle(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r""":math:`\hat\mu = \frac1N \sum_n x_n` and
    :math:`\hat\sigma^2 = \frac1N \sum_n (x_n - \hat\mu)^2`, per column: (D,), (D,)."""
    return x.mean(0), x.var(0, correction=0)


def _draw_gaussian_mle(g: torch.Generator):
    return (random_normal(g, random_int(g, 2, 30), random_int(g, 1, 4), scale=2) + 5,)


GAUSSIAN_MLE = Exercise(
    "likelihood.gaussian_mle",
    "gaussian_mle(x): x (N, D) -> (mean (D,), variance (D,)), the maximum-likelihood "
    "estimates of an independent Gaussian per column",
    _gaussian_mle,
    _draw_gaussian_mle,
    hint="the maximum-likelihood variance divides by N, not N - 1; average over the rows.",
)

# -- likelihood.categorical_mle ------------------------------------------------------------


def _categorical_mle(x: torch.Tensor, num_classes: int) -> torch.Tensor:
    r""":math:`\hat p_k = N_k / N`, each class's share of the labels: (num_classes,)."""
    return torch.bincount(x, minlength=num_classes).to(torch.float64) / len(x)


def _draw_categorical_mle(g: torch.Generator):
    k = random_int(g, 2, 6)
    return torch.randint(0, k, (random_int(g, 1, 40),), generator=g), k


CATEGORICAL_MLE = Exercise(
    "likelihood.categorical_mle",
    "categorical_mle(x, num_classes): x (N,) int64 labels in 0..num_classes-1 -> "
    "(num_classes,) maximum-likelihood probabilities",
    _categorical_mle,
    _draw_categorical_mle,
    hint="each class's share of the data; a class never seen gets 0, and the result has "
    "num_classes entries.",
)

EXERCISES = (GAUSSIAN_MLE, CATEGORICAL_MLE)

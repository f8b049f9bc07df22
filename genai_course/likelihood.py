r"""Likelihood, log-likelihood and maximum-likelihood estimation (the likelihood chapter).

For independent observations :math:`x_1, \dots, x_N`,

.. math:: L(\theta) = \prod_{i=1}^N p_\theta(x_i), \qquad
   \ell(\theta) = \log L(\theta) = \sum_{i=1}^N \log p_\theta(x_i).

The product underflows to 0 after a few hundred observations; the sum does
not. Maximum-likelihood estimates are given in closed form (``fit_*``) and
found numerically by minimising :math:`-\ell(\theta)/N`
(``genai_course.train.mle.fit_by_gradient``).
"""

from __future__ import annotations

import torch

from genai_course.distributions import (
    Bernoulli,
    Categorical,
    Distribution,
    MultivariateNormal,
    Normal,
)


def observations(x, name: str = "data") -> torch.Tensor:
    """Observations along the first axis, checked to be non-empty and finite;
    a ``ValueError`` names ``name`` otherwise."""
    x = torch.as_tensor(x)
    if x.ndim == 0 or len(x) == 0:
        raise ValueError(f"{name} is empty: maximum likelihood needs at least one observation")
    if x.is_floating_point() and not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def _floating(x: torch.Tensor) -> torch.Tensor:
    return x if x.is_floating_point() else x.to(torch.get_default_dtype())


def likelihood(dist: Distribution, data) -> torch.Tensor:
    r""":math:`L = \prod_i p(x_i)` over the first axis of ``data``: computed as the
    product on purpose, to show it underflowing. Use :func:`log_likelihood`."""
    return dist.prob(observations(data)).prod(0)


def log_likelihood(dist: Distribution, data) -> torch.Tensor:
    r""":math:`\ell = \sum_i \log p(x_i)` over the first axis of ``data``."""
    return dist.log_prob(observations(data)).sum(0)


def fit_bernoulli(x) -> Bernoulli:
    r"""MLE of a Bernoulli: :math:`\hat p = \frac1N \sum_i x_i`, per column."""
    x = observations(x, "x")
    if not ((x == 0) | (x == 1)).all():
        raise ValueError("x must be binary (0 or 1) to fit a Bernoulli")
    return Bernoulli(_floating(x).mean(0))


def fit_categorical(x, num_classes: int) -> Categorical:
    r"""MLE of a categorical: :math:`\hat\pi_k = N_k / N`, the class frequencies."""
    x = observations(x, "x")
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    if x.is_floating_point() or x.ndim != 1:
        raise ValueError("x must be a 1-D tensor of integer class indices")
    if ((x < 0) | (x >= num_classes)).any():
        raise ValueError(
            f"x must be in 0..{num_classes - 1}; got {x.min().item()} to {x.max().item()}"
        )
    counts = torch.bincount(x.long(), minlength=num_classes)
    return Categorical(counts.to(torch.get_default_dtype()) / len(x))


def fit_normal(x) -> Normal:
    r"""MLE of a Gaussian, per column: :math:`\hat\mu = \frac1N\sum_i x_i`,
    :math:`\hat\sigma^2 = \frac1N \sum_i (x_i - \hat\mu)^2` (divided by :math:`N`,
    not :math:`N - 1`: the MLE is biased)."""
    x = _floating(observations(x, "x"))
    mu = x.mean(0)
    sigma = ((x - mu) ** 2).mean(0).sqrt()
    if (sigma == 0).any():
        raise ValueError("x is constant (in some column): the MLE of sigma is 0, not a density")
    return Normal(mu, sigma)


def fit_multivariate_normal(x, jitter: float = 0.0) -> MultivariateNormal:
    r"""MLE of a multivariate Gaussian from rows of ``x`` (N, D):
    :math:`\hat\mu = \frac1N\sum_i x_i`,
    :math:`\hat\Sigma = \frac1N\sum_i (x_i - \hat\mu)(x_i - \hat\mu)^\top`.

    When some direction of the data has no variance (a pixel that is always
    black, or fewer rows than columns), :math:`\hat\Sigma` is singular and no
    density exists; ``jitter`` adds :math:`\epsilon I` to it, the usual fix.
    """
    x = _floating(observations(x, "x"))
    if x.ndim != 2:
        raise ValueError(f"x must have shape (N, D), got {tuple(x.shape)}")
    if jitter < 0:
        raise ValueError(f"jitter must be >= 0, got {jitter!r}")
    mu = x.mean(0)
    centred = x - mu  # (N, D)
    cov = centred.T @ centred / len(x)  # (D, D)
    cov = (cov + cov.T) / 2 + jitter * torch.eye(x.shape[1], dtype=x.dtype, device=x.device)
    try:
        return MultivariateNormal(mu, cov)
    except ValueError:
        raise ValueError(
            "the covariance of x is singular: some direction of the data has no "
            "variance. Pass jitter > 0, e.g. jitter=1e-3"
        ) from None

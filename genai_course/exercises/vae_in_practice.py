"""The chapter VAEs in practice (notebook ``vae_in_practice``): the log-density of a Gaussian
decoder, and the KL of each latent dimension.

The reference for the first is ``torch.distributions.Normal``; for the second, the book's
:func:`genai_course.vae.latent_usage` (tested against ``gaussian_kl``) applied to the
encoder's outputs directly.
"""

from __future__ import annotations

import torch

from genai_course.exercises.core import Exercise, random_int, random_normal, random_uniform

# -- vae_in_practice.gaussian_log_likelihood ---------------------------------------------------


def _gaussian_log_likelihood(x: torch.Tensor, x_mean: torch.Tensor, sigma: float) -> torch.Tensor:
    r""":math:`\log \mathcal{N}(x; \hat x, \sigma^2 I)` of each row, by ``torch.distributions``."""
    return torch.distributions.Normal(x_mean, sigma).log_prob(x).sum(-1)


def _draw_gaussian_log_likelihood(g: torch.Generator):
    b, d = random_int(g, 1, 5), random_int(g, 1, 12)
    return random_normal(g, b, d), random_normal(g, b, d), random_uniform(g, 0.05, 3.0)


def _fixed_gaussian_log_likelihood():
    g = torch.Generator().manual_seed(0)
    x = random_normal(g, 2, 5)
    return [
        # x = x_mean: only the normalising constant -D/2 log(2 pi sigma^2) is left
        (x, x.clone(), 0.5),
        # sigma = 1: log(2 pi sigma^2) = log(2 pi), and a slip of sigma for sigma^2 shows
        (x, random_normal(g, 2, 5), 1.0),
        # a small sigma, where sigma in place of sigma^2 differs the most
        (x, random_normal(g, 2, 5), 0.1),
    ]


GAUSSIAN_LOG_LIKELIHOOD = Exercise(
    "vae_in_practice.gaussian_log_likelihood",
    "gaussian_log_likelihood(x, x_mean, sigma): x, x_mean (B, D), sigma a float > 0 -> (B,) "
    "the log-density log N(x; x_mean, sigma^2 I) of each row, in nats",
    _gaussian_log_likelihood,
    _draw_gaussian_log_likelihood,
    fixed=_fixed_gaussian_log_likelihood(),
    hint="sum over the D coordinates of -(x - x_mean)^2 / (2 sigma^2) - log(2 pi sigma^2) / 2; "
    "sigma is a standard deviation, so its square is the variance; the constant counts D times.",
)

# -- vae_in_practice.kl_per_dimension ------------------------------------------------------------


def _kl_per_dimension(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    r""":math:`\frac1N \sum_i \mathrm{KL}\big(\mathcal{N}(\mu_{ij}, \sigma_{ij}^2) \,\Vert\,
    \mathcal{N}(0, 1)\big)` for each dimension :math:`j`, by ``torch.distributions``."""
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    prior = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    return torch.distributions.kl_divergence(q, prior).mean(0)


def _draw_kl_per_dimension(g: torch.Generator):
    n, j = random_int(g, 1, 8), random_int(g, 1, 6)
    return random_normal(g, n, j), random_normal(g, n, j)


def _fixed_kl_per_dimension():
    g = torch.Generator().manual_seed(0)
    mu, logvar = random_normal(g, 4, 3), random_normal(g, 4, 3)
    mu[:, 1], logvar[:, 1] = 0.0, 0.0  # a collapsed dimension: q = N(0, 1) for every image
    return [
        (mu, logvar),
        (mu[:1], logvar[:1]),  # one image: still (J,), not a number
        (mu[:, :1], logvar[:, :1]),  # one dimension: (1,)
    ]


KL_PER_DIMENSION = Exercise(
    "vae_in_practice.kl_per_dimension",
    "kl_per_dimension(mu, logvar): (N, J) encoder means and log-variances of N images -> (J,) "
    "the KL(N(mu_j, exp(logvar_j)) || N(0, 1)) of each dimension j, averaged over the N images",
    _kl_per_dimension,
    _draw_kl_per_dimension,
    fixed=_fixed_kl_per_dimension(),
    hint="the Gaussian KL term by term, (mu^2 + exp(logvar) - 1 - logvar) / 2, then the mean "
    "over the images (the first axis), not the sum over the dimensions.",
)

EXERCISES = (GAUSSIAN_LOG_LIKELIHOOD, KL_PER_DIMENSION)

"""The VAE chapter (notebook ``vae``): the KL term of the ELBO against a
standard-normal prior, and the reparameterisation trick.
"""

from __future__ import annotations

import torch

from genai_course.exercises.core import Exercise, random_int, random_normal
from genai_course.information import gaussian_kl

# -- vae.gaussian_kl (the reference: genai_course.information.gaussian_kl) -------------------


def _draw_gaussian_kl(g: torch.Generator):
    b, latent = random_int(g, 1, 8), random_int(g, 1, 6)
    return random_normal(g, b, latent), random_normal(g, b, latent)


GAUSSIAN_KL = Exercise(
    "vae.gaussian_kl",
    "gaussian_kl(mu, logvar): (B, J) -> (B,) KL(N(mu, exp(logvar)) || N(0, I)) in nats",
    gaussian_kl,
    _draw_gaussian_kl,
    # the posterior equal to the prior: KL 0
    fixed=[(torch.zeros(2, 3, dtype=torch.float64), torch.zeros(2, 3, dtype=torch.float64))],
    hint="per dimension (mu^2 + sigma^2 - 1 - log sigma^2) / 2 with sigma^2 = exp(logvar), "
    "not logvar squared; sum over the last axis. It is 0 at mu = 0, logvar = 0.",
)

# -- vae.reparameterize --------------------------------------------------------------------


def _reparameterize(mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    r""":math:`z = \mu + \sigma \odot \epsilon` with :math:`\sigma = \exp(\tfrac12\log\sigma^2)`."""
    return mu + torch.exp(0.5 * logvar) * eps


def _draw_reparameterize(g: torch.Generator):
    shape = (random_int(g, 1, 5), random_int(g, 1, 5))
    return random_normal(g, *shape), random_normal(g, *shape), random_normal(g, *shape)


REPARAMETERIZE = Exercise(
    "vae.reparameterize",
    "reparameterize(mu, logvar, eps): tensors of one shape -> z = mu + sigma * eps, "
    "a draw from N(mu, exp(logvar)) made from standard-normal noise eps",
    _reparameterize,
    _draw_reparameterize,
    hint="sigma is the standard deviation, exp(logvar / 2), not the variance exp(logvar).",
)

EXERCISES = (GAUSSIAN_KL, REPARAMETERIZE)

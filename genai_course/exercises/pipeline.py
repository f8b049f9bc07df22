"""The pipeline chapter (notebook ``pipeline``): the log-likelihood of binary
images under independent Bernoulli pixels, and the unit it is reported in.
"""

from __future__ import annotations

import torch

from genai_course.exercises.core import Exercise, f64, random_int, random_uniform
from genai_course.metrics import bits_per_dim

# -- pipeline.image_log_likelihood ---------------------------------------------------------


def _image_log_likelihood(theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    r""":math:`\log p(x) = \sum_d x_d \log\theta_d + (1 - x_d)\log(1 - \theta_d)`: (N,)."""
    return torch.distributions.Bernoulli(probs=theta).log_prob(x).sum(-1)


def _draw_image_log_likelihood(g: torch.Generator):
    d, n = random_int(g, 2, 12), random_int(g, 1, 5)
    theta = torch.rand(d, generator=g, dtype=torch.float64) * 0.98 + 0.01
    return theta, torch.randint(0, 2, (n, d), generator=g).to(torch.float64)


IMAGE_LOG_LIKELIHOOD = Exercise(
    "pipeline.image_log_likelihood",
    "image_log_likelihood(theta, x): theta (D,) pixel probabilities, x (N, D) binary "
    "images -> (N,) log p(x) in nats under independent Bernoulli pixels",
    _image_log_likelihood,
    _draw_image_log_likelihood,
    fixed=[(f64(1e-12, 1 - 1e-12), f64(0.0, 1.0)[None])],  # probabilities at 0 and 1
    hint="each pixel contributes x log(theta) + (1 - x) log(1 - theta); sum over pixels, "
    "one value per image.",
)

# -- pipeline.bits_per_dim (the reference: genai_course.metrics.bits_per_dim) --------------------


def _draw_bits_per_dim(g: torch.Generator):
    return random_uniform(g, 1.0, 600.0), random_int(g, 1, 3072)


BITS_PER_DIM = Exercise(
    "pipeline.bits_per_dim",
    "bits_per_dim(nll_nats, num_dims): a negative log-likelihood in nats per example "
    "-> bits per dimension (a float)",
    bits_per_dim,
    _draw_bits_per_dim,
    hint="divide by the number of dimensions, and convert nats to bits (one bit is ln 2 nats).",
)

EXERCISES = (IMAGE_LOG_LIKELIHOOD, BITS_PER_DIM)

"""The cross-entropy chapter (notebook ``cross_entropy``): the entropy of a
probability vector and the KL divergence between two, with 0 log 0 = 0.

Both references are the package's own (``genai_course.information``).
"""

from __future__ import annotations

import torch

from genai_course.exercises.core import Exercise, f64, random_int, random_simplex
from genai_course.information import entropy, kl_divergence

# -- cross_entropy.entropy -----------------------------------------------------------------


def _draw_entropy(g: torch.Generator):
    return (random_simplex(g, random_int(g, 2, 10), zeros=True),)


ENTROPY = Exercise(
    "cross_entropy.entropy",
    "entropy(p): p (K,) a probability vector -> its entropy in nats (a 0-dim tensor)",
    entropy,
    _draw_entropy,
    fixed=[(f64(1.0, 0.0, 0.0),)],  # a certain outcome: 0 log 0 twice
    hint="-sum p log p, with 0 log 0 = 0 (the limit), never 0 * log 0 = nan.",
)

# -- cross_entropy.kl_divergence -----------------------------------------------------------


def _draw_kl(g: torch.Generator):
    k = random_int(g, 2, 10)
    return random_simplex(g, k, zeros=True), random_simplex(g, k)


KL_DIVERGENCE = Exercise(
    "cross_entropy.kl_divergence",
    "kl_divergence(p, q): probability vectors (K,), p possibly with zeros (0 log 0 = 0) "
    "-> KL(p || q) in nats (0-dim tensor)",
    kl_divergence,
    _draw_kl,
    fixed=[(f64(0.5, 0.5, 0.0), f64(0.25, 0.25, 0.5))],
    hint="sum over the support of p of p log(p / q); the order of p and q matters.",
)

EXERCISES = (ENTROPY, KL_DIVERGENCE)

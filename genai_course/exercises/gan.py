"""The GAN chapter (notebook ``gan``): the discriminator's loss and the
non-saturating generator loss, from logits, finite for any logits.

Both references are the package's own (``genai_course.gan``).
"""

from __future__ import annotations

import torch

from genai_course.exercises.core import Exercise, f64, random_int, random_normal
from genai_course.gan import discriminator_loss, generator_loss

# -- gan.discriminator_loss ----------------------------------------------------------------


def _draw_logit_pairs(g: torch.Generator):
    b = random_int(g, 1, 12)
    return random_normal(g, b, scale=4), random_normal(g, b, scale=4)


DISCRIMINATOR_LOSS = Exercise(
    "gan.discriminator_loss",
    "discriminator_loss(real_logits, fake_logits): (B,) logits of D on real and fake "
    "examples -> (B,) -log D(real) - log(1 - D(fake)), finite for any logits",
    discriminator_loss,
    _draw_logit_pairs,
    fixed=[(f64(100.0, -100.0), f64(-100.0, 100.0))],  # a sigmoid rounds to 0 or 1
    hint="-log sigmoid(l) is softplus(-l) and -log(1 - sigmoid(l)) is softplus(l); a "
    "sigmoid followed by a log loses everything for large logits.",
)

# -- gan.generator_loss --------------------------------------------------------------------


def _non_saturating_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    r""":math:`-\log D(G(z)) = \operatorname{softplus}(-a)`: (B,)."""
    return generator_loss(fake_logits, non_saturating=True)


def _draw_logits(g: torch.Generator):
    return (random_normal(g, random_int(g, 1, 12), scale=4),)


GENERATOR_LOSS = Exercise(
    "gan.generator_loss",
    "generator_loss(fake_logits): (B,) logits of D on generated examples -> (B,) the "
    "non-saturating loss -log D(G(z)), finite for any logits",
    _non_saturating_loss,
    _draw_logits,
    fixed=[(f64(-100.0, 100.0, 0.0),)],
    hint="the non-saturating loss is -log sigmoid(l), not log(1 - sigmoid(l)) (the "
    "minimax one); write it with softplus.",
)

EXERCISES = (DISCRIMINATOR_LOSS, GENERATOR_LOSS)

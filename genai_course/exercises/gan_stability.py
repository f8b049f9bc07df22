"""The chapter on stabilising GANs (notebook ``gan_stability``): the power iteration for
the largest singular value, and one step of the Dirac-GAN's game.

The references are the package's own (``genai_course.gan_stability.power_iteration``,
and ``genai_course.dirac_gan.step`` applied to each game of a batch), tested against
``torch.linalg.svdvals``, torch's ``spectral_norm`` and the closed-form updates.
"""

from __future__ import annotations

import torch

from genai_course import dirac_gan
from genai_course.exercises.core import Exercise, f64, random_int, random_normal, random_uniform
from genai_course.gan_stability import power_iteration

# -- gan_stability.power_iteration ---------------------------------------------------------


def _draw_power_iteration(g: torch.Generator):
    o, i = random_int(g, 1, 6), random_int(g, 1, 6)
    return random_normal(g, o, i), random_normal(g, i), random_int(g, 1, 4)


def _fixed_power_iteration():
    g = torch.Generator().manual_seed(0)
    return [
        (random_normal(g, 4, 3), random_normal(g, 3), 1),  # one step: s from v, then v from s
        (torch.diag(f64(3.0, -5.0)), f64(1.0, 1.0), 3),  # a negative entry: |W|_2 is 5
        (random_normal(g, 1, 5), random_normal(g, 5), 2),  # one row: s is +-1
    ]


POWER_ITERATION = Exercise(
    "gan_stability.power_iteration",
    "power_iteration(weight, v, steps): weight (O, I), v (I,), an int steps >= 1 -> "
    "(estimate, s, v), after steps rounds of s = W v / |W v|, then v = W^T s / |W^T s|: "
    "the estimate s^T W v of the largest singular value (a 0-d tensor), s (O,) and v (I,)",
    power_iteration,
    _draw_power_iteration,
    fixed=_fixed_power_iteration(),
    hint="each round first makes s from the current v and then v from the new s, both "
    "divided by their Euclidean norms; the estimate uses the s and v of the last round.",
)

# -- gan_stability.dirac_step --------------------------------------------------------------


def _dirac_step(theta, psi, lr, alternating):
    r"""One round of each game of the batch: the package's :func:`dirac_gan.step`."""
    mode = "alternating" if alternating else "simultaneous"
    points = [dirac_gan.step(t, p, lr, mode) for t, p in zip(theta, psi, strict=True)]
    new_theta = torch.stack([t for t, _ in points]) if points else theta.clone()
    new_psi = torch.stack([p for _, p in points]) if points else psi.clone()
    return new_theta.detach(), new_psi.detach()


def _draw_dirac_step(g: torch.Generator):
    b = random_int(g, 1, 8)
    alternating = bool(random_int(g, 0, 1))
    return random_normal(g, b, scale=2), random_normal(g, b, scale=2), random_uniform(
        g, 0.01, 1.0), alternating  # fmt: skip


DIRAC_STEP = Exercise(
    "gan_stability.dirac_step",
    "dirac_step(theta, psi, lr, alternating): theta (B,), psi (B,) the parameters of B "
    "Dirac-GANs, a float lr, a bool -> (new_theta (B,), new_psi (B,)) after one gradient "
    "step of each player on its own loss: the discriminator descends "
    "softplus(psi theta) (its loss, with the real logit psi * 0), the generator descends "
    "softplus(-psi theta) (non-saturating), both at the old point, or, if alternating, "
    "the generator at the discriminator's new psi",
    _dirac_step,
    _draw_dirac_step,
    fixed=[
        (f64(1.0, -2.0), f64(0.5, 1.0), 0.1, True),  # alternating: theta sees the new psi
        (f64(0.0, 3.0), f64(0.0, 0.0), 0.5, False),  # at psi = 0 theta cannot move
    ],
    hint="d/da softplus(a) = sigmoid(a); the chain rule brings out theta for psi's "
    "gradient and psi for theta's; in the alternating update compute the new psi first.",
)

EXERCISES = (POWER_ITERATION, DIRAC_STEP)

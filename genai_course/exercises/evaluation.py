"""The evaluation chapter (notebook ``evaluation``): the Fréchet distance that FID
reports, and the k-th-neighbour radius that precision and recall use.

Both references are the package's own (``genai_course.metrics``).
"""

from __future__ import annotations

import torch

from genai_course.exercises.core import Exercise, random_int, random_normal, random_spd
from genai_course.metrics import frechet_distance, kth_neighbour_distance

# -- evaluation.frechet_distance -----------------------------------------------------------


def _draw_frechet(g: torch.Generator):
    d = random_int(g, 1, 5)
    return random_normal(g, d), random_spd(g, d), random_normal(g, d), random_spd(g, d)


FRECHET_DISTANCE = Exercise(
    "evaluation.frechet_distance",
    "frechet_distance(mu1, cov1, mu2, cov2): means (D,) and covariances (D, D) of two "
    "Gaussians -> their squared Fréchet distance d^2, the number FID reports (a float)",
    frechet_distance,
    _draw_frechet,
    hint="|mu1 - mu2|^2 + tr(cov1 + cov2 - 2 (cov1 cov2)^(1/2)); the matrix square root "
    "is not the elementwise one (scipy.linalg.sqrtm computes it).",
    tolerance=1e-4,
)

# -- evaluation.kth_neighbour_radius -------------------------------------------------------


def _draw_kth_neighbour(g: torch.Generator):
    n = random_int(g, 2, 30)
    return random_normal(g, n, random_int(g, 1, 4)), random_int(g, 1, n - 1)


KTH_NEIGHBOUR_RADIUS = Exercise(
    "evaluation.kth_neighbour_radius",
    "kth_neighbour_radius(points, k): points (N, D), an int k >= 1 -> (N,) the distance "
    "from each point to its k-th nearest other point (k = 1: the nearest)",
    kth_neighbour_distance,  # what the evaluation chapter's precision and recall use
    _draw_kth_neighbour,
    hint="Euclidean distances to every point, sorted; the nearest is the point itself, at "
    "distance 0, and it does not count.",
)

EXERCISES = (FRECHET_DISTANCE, KTH_NEIGHBOUR_RADIUS)

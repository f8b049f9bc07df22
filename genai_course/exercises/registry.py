"""Every chapter's exercises, by id, in the book's order (the table of contents'): the
chapters, then the appendix. Each chapter module lists its own in ``EXERCISES``."""

from __future__ import annotations

from genai_course.exercises import (
    common_mistakes,
    cross_entropy,
    diffusion,
    distributions,
    evaluation,
    flows,
    gan,
    gan_stability,
    gradient_descent,
    likelihood,
    neural_networks,
    pipeline,
    sequences,
    transformers,
    vae,
    vae_in_practice,
)
from genai_course.exercises.core import Exercise

CHAPTERS = (
    pipeline,
    distributions,
    likelihood,
    cross_entropy,
    gradient_descent,
    neural_networks,
    evaluation,
    gan,
    gan_stability,
    vae,
    vae_in_practice,
    sequences,
    transformers,
    flows,
    diffusion,
    common_mistakes,
)

EXERCISES: dict[str, Exercise] = {
    exercise.id: exercise for chapter in CHAPTERS for exercise in chapter.EXERCISES
}

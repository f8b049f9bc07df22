"""Every chapter's exercises, by id, in the book's order: chapters 0 to 8, then
appendix A. Each chapter module lists its own in ``EXERCISES``."""

from __future__ import annotations

from genai_course.exercises import (
    common_mistakes,
    cross_entropy,
    distributions,
    evaluation,
    gan,
    gradient_descent,
    likelihood,
    pipeline,
    sequences,
    vae,
)
from genai_course.exercises.core import Exercise

CHAPTERS = (
    pipeline,  # ch0
    distributions,  # ch1
    likelihood,  # ch2
    cross_entropy,  # ch3
    gradient_descent,  # ch4
    gan,  # ch5
    vae,  # ch6
    sequences,  # ch7
    evaluation,  # ch8
    common_mistakes,  # A
)

EXERCISES: dict[str, Exercise] = {
    exercise.id: exercise for chapter in CHAPTERS for exercise in chapter.EXERCISES
}

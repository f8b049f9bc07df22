"""Training-size profiles and seeding.

A notebook never hard-codes how long it trains or how much it measures: it
asks for the active profile. ``quick`` lets every chapter run in about a minute
on two CPU cores (this is what CI and the committed notebooks use); ``full``
gives the real results on a GPU. ``GENAI_COURSE_PROFILE=quick|full`` chooses;
without it the default is ``full`` on CUDA and ``quick`` elsewhere. How each
model trains under a profile is its recipe's (``genai_course.train.recipes``);
the profile itself holds what the chapters measure with.
"""

from __future__ import annotations

import math
import numbers
import os
import random
from dataclasses import dataclass

import numpy as np
import torch

from genai_course.device import get_device

ENV_VAR = "GENAI_COURSE_PROFILE"


@dataclass(frozen=True)
class Profile:
    """How much a chapter measures; each model's training settings are its recipe's."""

    name: str
    train_size: int | None  # training examples of a closed-form fit; None = the whole split
    eval_size: int | None  # images per set of a sample-based measure (FID, precision and
    # recall): test images, and as many samples; None = all 10,000 test images
    iwae_size: int | None  # test images of the importance-weighted likelihood; None = all
    iwae_k: int  # importance samples per image of that likelihood
    description: str  # one line for the Setup page and the notebooks


PROFILES: dict[str, Profile] = {
    "quick": Profile(
        name="quick",
        train_size=20_000,
        eval_size=2000,
        iwae_size=500,
        iwae_k=100,
        description="about a minute a chapter on a laptop CPU",
    ),
    "full": Profile(
        name="full",
        train_size=None,
        eval_size=None,
        iwae_size=None,
        iwae_k=1000,
        description="the book's real results, on a GPU",
    ),
}


def get_profile(name: str | None = None) -> Profile:
    """Return the active profile.

    ``name`` (or else ``GENAI_COURSE_PROFILE``) chooses one; without either,
    ``full`` on a CUDA device and ``quick`` otherwise. An unknown name raises
    ``ValueError`` listing the valid ones.
    """
    source = "name"
    if name is None:
        name, source = os.environ.get(ENV_VAR) or None, ENV_VAR
    if name is None:
        name = "full" if get_device().type == "cuda" else "quick"
    key = name.strip().lower()
    if key not in PROFILES:
        raise ValueError(f"{source}={name!r} is not a profile; use one of {', '.join(PROFILES)}")
    return PROFILES[key]


def check_positive_int(name: str, value) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is an int >= 1 (not a bool)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def check_non_negative_int(name: str, value) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is an int >= 0 (not a bool)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be a non-negative int, got {value!r}")


def check_real(
    name: str, value, low: float = -math.inf, high: float = math.inf, *,
    low_open: bool = False, high_open: bool = False,
) -> float:  # fmt: skip
    """``value`` as a float, or an error naming ``name``: ``TypeError`` unless it is a real
    number (an int, a float or a NumPy scalar; not a bool, a complex number, a tensor or a
    list), ``ValueError`` unless it is finite and from ``low`` to ``high`` (an end
    excluded with ``low_open``/``high_open``)."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    number = float(value)
    above = number > low if low_open else number >= low
    below = number < high if high_open else number <= high
    if not (math.isfinite(number) and above and below):
        if high == math.inf:
            interval = f"{'>' if low_open else '>='} {low:g}"
        else:
            interval = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ValueError(f"{name} must be {interval} and finite, got {value!r}")
    return number


def check_generator(name: str, value) -> None:
    """Raise ``TypeError`` naming ``name`` unless ``value`` is None or a ``torch.Generator``
    (a seed or a NumPy generator is not one)."""
    if value is not None and not isinstance(value, torch.Generator):
        raise TypeError(
            f"{name} must be a torch.Generator or None, got {type(value).__name__} "
            "(make one with torch.Generator().manual_seed(seed))"
        )


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and CUDA)."""
    check_non_negative_int("seed", seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device


def show_progress() -> bool:
    """Whether progress bars are drawn: yes unless ``GENAI_COURSE_PROGRESS=0``.

    The Makefile turns them off when notebooks run headless (nbval, the book
    build), so no progress-bar debris is stored in a notebook or a page.
    """
    return os.environ.get("GENAI_COURSE_PROGRESS", "1").strip().lower() not in {
        "0",
        "off",
        "false",
        "no",
    }

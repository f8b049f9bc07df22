"""What every exercise is made of: the ``Exercise`` record, and the helpers that draw
its random inputs.

An exercise names the function the reader writes (its ``task``), a ``reference``
implementation to compare with, a ``draw`` that makes one random input from a
``torch.Generator``, and ``fixed`` inputs that catch the usual slips. The chapter
modules build their exercises from the drawing helpers below; ``check`` runs them.
Random inputs are float64, so that a reader's float32 slip is not what fails.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

Inputs = tuple[Any, ...]  # the arguments of one call of the reader's function


@dataclass(frozen=True)
class Exercise:
    """One graded exercise: what to write, and how to test it."""

    id: str  # "vae.gaussian_kl": chapter, then the function's name
    task: str  # the signature and what it returns, as the notebook states it
    reference: Callable[..., Any]
    draw: Callable[[torch.Generator], Inputs]  # one random case
    fixed: Sequence[Inputs] = ()  # cases every check runs: edge cases that catch slips
    hint: str = ""  # where to look when values differ (never the answer)
    tolerance: float = 1e-5  # relative, and absolute for values near zero


# -- drawing inputs ------------------------------------------------------------------


def random_int(gen: torch.Generator, low: int, high: int) -> int:
    """An int from ``low`` to ``high``, both included."""
    return int(torch.randint(low, high + 1, (), generator=gen))


def random_uniform(gen: torch.Generator, low: float, high: float) -> float:
    """A float uniform in [low, high)."""
    return low + (high - low) * float(torch.rand((), generator=gen))


def random_normal(gen: torch.Generator, *shape: int, scale: float = 1.0) -> torch.Tensor:
    """A float64 tensor of the given shape, entries N(0, scale^2)."""
    return scale * torch.randn(*shape, generator=gen, dtype=torch.float64)


def random_simplex(gen: torch.Generator, k: int, zeros: bool = False) -> torch.Tensor:
    """A probability vector (k,), every entry at least about 0.05 / k before
    normalising; with ``zeros``, a third of the entries set to exactly 0."""
    weights = torch.rand(k, generator=gen, dtype=torch.float64) + 0.05
    if zeros:
        weights[torch.randperm(k, generator=gen)[: k // 3]] = 0.0
    return weights / weights.sum()


def random_spd(gen: torch.Generator, d: int) -> torch.Tensor:
    """A symmetric positive-definite (d, d) matrix, A A^T + 0.1 I: a covariance."""
    a = random_normal(gen, d, d)
    return a @ a.T + 0.1 * torch.eye(d, dtype=torch.float64)


def f64(*values: float) -> torch.Tensor:
    """A float64 vector of the given values, for writing fixed cases."""
    return torch.tensor(values, dtype=torch.float64)

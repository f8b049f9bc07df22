"""What ``fit`` measured during a run."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class History:
    """What ``fit`` measured. Every list is in training order."""

    steps: dict[str, list[float]] = field(default_factory=dict)  # one value per step
    epochs: dict[str, list[float]] = field(default_factory=dict)  # step means + evaluate()
    # wall-clock time spent in fit (evaluations included, summed over resumed runs);
    # not compared: two runs that measured the same thing are equal histories
    seconds: float = field(default=0.0, compare=False)

"""Which device the book computes on: CUDA, then Apple MPS, then the CPU.

Set ``GENAI_COURSE_DEVICE=cpu|cuda|mps`` to override the automatic choice
(the Setup page of the book explains when you would).
"""

from __future__ import annotations

import os

import torch

ENV_VAR = "GENAI_COURSE_DEVICE"
KNOWN_DEVICES = ("cuda", "mps", "cpu")


def available_devices() -> list[str]:
    """The device types this machine can compute on, best first."""
    found = []
    if torch.cuda.is_available():
        found.append("cuda")
    if torch.backends.mps.is_available():
        found.append("mps")
    found.append("cpu")
    return found


def get_device(name: str | None = None) -> torch.device:
    """Return the device to compute on.

    ``name`` (or else the ``GENAI_COURSE_DEVICE`` environment variable) picks
    one explicitly; without either, the best available device is used.
    Asking for a device this machine does not have raises ``RuntimeError``
    naming the ones it does have.
    """
    source = "name"
    if name is None:
        name, source = os.environ.get(ENV_VAR) or None, ENV_VAR
    available = available_devices()
    if name is None:
        return torch.device(available[0])
    kind = name.strip().lower() if isinstance(name, str) else None
    if kind not in KNOWN_DEVICES:
        raise ValueError(
            f"{source}={name!r} is not a device type; use one of {', '.join(KNOWN_DEVICES)}"
        )
    if kind not in available:
        raise RuntimeError(
            f"{source}={name!r} asks for a device this machine does not have; "
            f"available here: {', '.join(available)}"
        )
    return torch.device(kind)

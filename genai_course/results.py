"""The rows of the book's Results page: what each chapter's models reached.

A chapter calls :func:`record` once per trained model with its quality
figures. Without ``GENAI_COURSE_RESULTS`` in the environment that only checks
and returns the row; with it (``make bench`` sets it) the row is appended, as
one line of JSON, to the file it names, and ``benchmarks/results.py`` turns
those rows into ``book/results.md``. Each row says which profile, device and
machine produced it, so rows from a laptop and from a GPU sit side by side.
"""

from __future__ import annotations

import json
import math
import os
import platform
from pathlib import Path

import torch

from genai_course.config import get_profile
from genai_course.device import get_device

ENV_VAR = "GENAI_COURSE_RESULTS"

# the quality figures the page shows, in its column order; lower is better except where noted
METRICS = (
    "test -ELBO (nats)",
    "test NLL (nats)",
    "bits/dim",
    "bits/dim (8-bit)",
    "Fréchet distance",
    "precision",  # higher is better
    "recall",  # higher is better
    "modes covered",  # higher is better
    "valid bits/char",
    "test bits/char",
)


def machine(device: torch.device) -> str:
    """A one-line description of what ran: the GPU's name, or the CPU's model and cores."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                 if line.startswith("model name")]  # fmt: skip
        cpu = names[0] if names else cpu
    threads = torch.get_num_threads()
    return f"{cpu}, {threads} thread{'s' * (threads > 1)}" + (
        " (Apple GPU)" if device.type == "mps" else ""
    )


def record(
    model: str, dataset: str, metrics: dict[str, float], seconds: float | None = None
) -> dict:
    """Check one model's results and, if ``GENAI_COURSE_RESULTS`` names a file,
    append them to it. Returns the row.

    Args:
        model: the model as the chapter names it, e.g. ``"conv VAE"``.
        dataset: what it was trained and evaluated on.
        metrics: figures keyed by names from :data:`METRICS`.
        seconds: training time (``History.seconds``), or None where nothing trains.
    """
    for name, value in (("model", model), ("dataset", dataset)):
        if not isinstance(value, str) or not value:
            raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    if not isinstance(metrics, dict) or not metrics:
        raise ValueError(f"metrics must be a non-empty dict keyed by {METRICS}")
    unknown = sorted(set(metrics) - set(METRICS))
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; the Results page shows {METRICS}")
    for name, value in metrics.items():
        if not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError(f"metric {name!r} must be a finite number, got {value!r}")
    if seconds is not None and not (isinstance(seconds, int | float) and seconds >= 0):
        raise ValueError(f"seconds must be a non-negative number or None, got {seconds!r}")
    device = get_device()
    row = {
        "model": model,
        "dataset": dataset,
        "metrics": {name: float(metrics[name]) for name in METRICS if name in metrics},
        "seconds": None if seconds is None else float(seconds),
        "profile": get_profile().name,
        "device": device.type,
        "machine": machine(device),
        "torch": torch.__version__,
    }
    if device.type == "cuda":  # the chapter's peak so far, the model's training included
        row["peak CUDA MiB"] = torch.cuda.max_memory_allocated(device) / 2**20
    path = os.environ.get(ENV_VAR)
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(row) + "\n")
    return row

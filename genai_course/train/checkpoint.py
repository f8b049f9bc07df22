"""What a checkpoint of ``fit`` holds, and how it is written and read back.

One file, one format (a dict saved with ``torch.save``)::

    run         {"n", "seed", "shuffle"}: what a resumed run must match
    step        steps done
    position    {"epoch", "consumed", "start"}: the epoch in progress, the examples of it
                already used (by all processes together) and the step it began at
    model       the module's state_dict
    optimizers  {name: state_dict}
    history     the History so far, as a dict
    rng         one RNG state (Python, NumPy, torch, CUDA) per process

It is written to a temporary file and renamed, so a crash never leaves half a
checkpoint, and read with ``weights_only=True``, so a checkpoint can hold
tensors and plain values but never code.
"""

from __future__ import annotations

import os
import random
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from genai_course import distributed
from genai_course.train.history import History


@dataclass
class Position:
    """Where a run stands; kept in examples, so a run may resume with another
    batch size or number of processes."""

    step: int = 0  # steps done so far (by each process)
    epoch: int = 0  # the epoch in progress
    consumed: int = 0  # examples of that epoch already used, by all processes together
    start: int = 0  # the step that epoch began at

    def next_epoch(self) -> Position:
        return Position(self.step, self.epoch + 1, 0, self.step)


def rng_state() -> dict:
    """This process's random-number states: Python, NumPy, torch (and CUDA if in use)."""
    numpy_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [numpy_state[0], numpy_state[1].tolist(), *numpy_state[2:]],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` returned."""
    random.setstate(state["python"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def write_atomic(obj: dict, path: Path) -> None:
    """torch.save to a temporary file beside ``path``, then rename: a crash
    while writing never leaves a half-written checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            torch.save(obj, out)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def save(
    path: Path,
    *,
    run: dict,
    position: Position,
    module: nn.Module,
    optimizers: dict[str, torch.optim.Optimizer],
    history: History,
) -> None:
    """Write the checkpoint (rank 0 only, with every rank's RNG state); every
    rank waits until the file is there."""
    rng = distributed.gather(rng_state())  # every rank's, to resume each
    if distributed.current().is_main:
        state = {
            "run": run,
            "step": position.step,
            "position": {
                "epoch": position.epoch,
                "consumed": position.consumed,
                "start": position.start,
            },
            "model": module.state_dict(),
            "optimizers": {name: opt.state_dict() for name, opt in optimizers.items()},
            "history": asdict(history),
            "rng": rng,
        }
        write_atomic(state, path)
    distributed.barrier()  # no rank goes on before the file is there


def load(
    path: Path, *, run: dict, module: nn.Module, optimizers: dict[str, torch.optim.Optimizer]
) -> tuple[History, Position, list[dict]]:
    """Read ``path`` into ``module`` and ``optimizers`` after checking it belongs
    to ``run``; return the history, the position and the RNG states (one per
    process that wrote it)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if "position" not in state:
        raise ValueError(
            f"checkpoint {path} was written by an older genai_course, which kept its place "
            "in steps, not examples; delete it (or finish that run with the older version)"
        )
    if state["run"] != run:
        raise ValueError(
            f"checkpoint {path} belongs to a run with {state['run']}, not {run}; "
            "resume with the same data, seed and shuffle, or delete the checkpoint"
        )
    if set(state["optimizers"]) != set(optimizers):
        raise ValueError(
            f"checkpoint {path} has optimizers {sorted(state['optimizers'])}, "
            f"not {sorted(optimizers)}"
        )
    module.load_state_dict(state["model"])
    for name, opt in optimizers.items():
        opt.load_state_dict(state["optimizers"][name])
    place = state["position"]
    position = Position(state["step"], place["epoch"], place["consumed"], place["start"])
    return History(**state["history"]), position, state["rng"]

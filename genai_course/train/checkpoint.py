"""What a checkpoint of ``fit`` holds, and how it is written and read back.

One file, one format (a dict saved with ``torch.save``)::

    run              {"n", "seed", "shuffle"}: what a resumed run must match
    step             steps done
    position         {"epoch", "consumed", "start"}: the epoch in progress, the examples of
                     it already used (by all processes together) and the step it began at
    model            the module's state_dict
    optimizers       {name: state_dict}
    optimizer_types  {name: "torch.optim.adam.Adam"}: the class of each optimizer
    history          the History so far, as a dict
    rng              one RNG state (Python, NumPy, torch, CUDA) per process

Written to a temporary file beside it (``.NAME.*.part``) and renamed, so a
crash never leaves half a checkpoint; a failed write removes its temporary
file, and the next write removes those a killed process left (once
``STALE_SECONDS`` old: a write in progress touches its file all the time).
Read with ``weights_only=True``, so a checkpoint can hold tensors and plain
values but never code. A checkpoint that is damaged (truncated; changed bytes,
caught by the CRC-32 of each part of the zip archive ``torch.save`` writes),
is not one of ``fit``'s, or belongs to another run, model or optimizer type is
refused before anything is loaded, with a ``ValueError`` that names the file.

**What a resumed run takes from where** (the one rule):

- *from the checkpoint*, what was learned and where the run stands: the weights,
  each optimizer's state (Adam's moments, its step count), the position, the
  history and the random-number states;
- *from the call*, how to go on: epochs, batch size, and every hyperparameter
  of each optimizer's param groups (``lr``, ``betas``, ``weight_decay``, ...),
  which replace the saved ones;
- *must match*, else refused: the number of examples, the seed and ``shuffle``;
  the optimizers' names, classes and param-group sizes; the model's parameter
  names and shapes.
"""

from __future__ import annotations

import glob
import os
import pickle
import random
import tempfile
import time
import zipfile
from collections.abc import Callable
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


# a temporary file untouched this long was left by a killed write (seconds)
STALE_SECONDS = 600


def _temporary_files(path: Path) -> list[Path]:
    """The temporary files of writes of ``path``: ``.NAME.*.part`` beside it."""
    return [Path(p) for p in glob.glob(str(path.parent / f".{glob.escape(path.name)}.*.part"))]


def remove_stale_parts(path: Path, older_than: float = STALE_SECONDS) -> None:
    """Remove the temporary files that killed writes of ``path`` left behind:
    those not modified for ``older_than`` seconds (a live write touches its own)."""
    now = time.time()
    for part in _temporary_files(path):
        try:
            if now - part.stat().st_mtime > older_than:
                part.unlink()
        except OSError:
            pass  # gone already, or not ours to remove: the write itself will tell


def check_writable(path: str | Path, name: str) -> Path:
    """``path`` as a Path, once a file can be written there: its folder exists
    (it is created if needed) and takes a new file. Raises ``ValueError`` naming
    ``name`` (the argument or flag) and the path otherwise."""
    path = Path(path)
    fix = "pass a file path in a folder you can write to"
    if path.is_dir():
        raise ValueError(f"{name} {path} is a folder, not a file; {fix}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        file = next((folder for folder in path.parents if folder.is_file()), None)
        why = f"{file} is a file, not a folder" if file else err.strerror or str(err)
        raise ValueError(
            f"{name} {path} cannot be written: its folder {path.parent} cannot be created "
            f"({why}); {fix}"
        ) from None
    try:  # the one sure test: make a file there
        fd, probe = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    except OSError as err:
        raise ValueError(
            f"{name} {path} cannot be written: its folder {path.parent} takes no new file "
            f"({err.strerror or err}); make it writable, or {fix}"
        ) from None
    os.close(fd)
    os.unlink(probe)
    return path


def _new_file_mode() -> int:
    """The permissions ``open()`` gives a new file: 0o666 less the umask."""
    umask = os.umask(0o022)  # the umask can only be read by setting it
    os.umask(umask)
    return 0o666 & ~umask


def write_file_atomic(path: Path, write: Callable, what: str = "file") -> None:
    """Call ``write(out)`` on a temporary file beside ``path``, then rename it
    to ``path``: a crash never leaves a half-written file, a failed write removes
    its temporary file, and stale ones of killed writes are removed first.
    Raises ``OSError`` naming ``what`` and ``path`` if the write fails."""
    path = Path(path)
    remove_stale_parts(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
        with os.fdopen(fd, "wb") as out:
            write(out)
        os.chmod(tmp, _new_file_mode())  # mkstemp's is 0o600: give what open() would
        os.replace(tmp, path)
    except (OSError, RuntimeError) as err:  # torch.save reports a full disk as RuntimeError
        raise OSError(
            f"{what} {path} could not be written ({err}); what was there before is unchanged. "
            "Free some space or pass another path"
        ) from err
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def write_atomic(obj: dict, path: Path, what: str = "checkpoint") -> None:
    """``torch.save(obj)`` to ``path`` through :func:`write_file_atomic`."""
    write_file_atomic(path, lambda out: torch.save(obj, out), what)


def _type_name(optimizer: torch.optim.Optimizer) -> str:
    """The class of ``optimizer``, with its module: ``"torch.optim.adam.Adam"``."""
    cls = type(optimizer)
    return f"{cls.__module__}.{cls.__qualname__}"


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
            "optimizer_types": {name: _type_name(opt) for name, opt in optimizers.items()},
            "history": asdict(history),
            "rng": rng,
        }
        write_atomic(state, path)
    distributed.barrier()  # no rank goes on before the file is there


def _read(path: Path) -> dict:
    """The dict saved in checkpoint ``path``; a ``ValueError`` naming it if it is
    damaged or is not a checkpoint of ``fit``. Never repeats torch's advice to
    load with ``weights_only=False``: a file that needs it is not a checkpoint."""
    state, problem = None, None
    try:
        with zipfile.ZipFile(path) as archive:  # what torch.save writes
            changed = archive.testzip()  # the first part whose CRC-32 disagrees, or None
        if changed is not None:
            problem = f"its part {changed} changed after it was written (a disk or copy error)"
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except OSError as err:
        problem = f"it cannot be opened ({err.strerror or err})"
    except zipfile.BadZipFile:
        problem = "it is truncated, or is not a file torch.save wrote"
    except pickle.UnpicklingError:
        problem = "it holds more than tensors and plain values"
    except Exception as err:  # torch and zipfile raise many kinds on a damaged file
        problem = f"it is damaged ({type(err).__name__})"
    if problem is None and not (isinstance(state, dict) and {"run", "step"} <= state.keys()):
        problem = f"it is not a checkpoint of fit (it holds a {type(state).__name__})"
    if problem is not None:
        raise ValueError(
            f"checkpoint {path} cannot be resumed from: {problem}. Delete it (or move it "
            "away) to start afresh, or pass the path of a good copy"
        )
    return state


def _check_optimizers(path: Path, state: dict, optimizers: dict) -> None:
    """Raise ``ValueError`` unless the saved optimizers have this run's names,
    classes and param-group sizes (the classes of checkpoints that recorded them)."""
    saved, fix = state["optimizers"], "resume with the optimizers that wrote it, or delete it"
    if set(saved) != set(optimizers):
        raise ValueError(
            f"checkpoint {path} has optimizers {sorted(saved)}, not {sorted(optimizers)}; {fix}"
        )
    recorded = state.get("optimizer_types", {})  # absent from checkpoints of older versions
    for name, opt in optimizers.items():
        if name in recorded and recorded[name] != _type_name(opt):
            raise ValueError(
                f"checkpoint {path} was written by optimizer {name!r} of class {recorded[name]}, "
                f"but this run's is a {_type_name(opt)}; its state cannot be loaded into another "
                f"class: {fix}"
            )
        sizes = [len(group["params"]) for group in saved[name]["param_groups"]]
        if sizes != [len(group["params"]) for group in opt.param_groups]:
            raise ValueError(
                f"checkpoint {path} has optimizer {name!r} with param groups of {sizes} "
                f"parameters, this run's has {[len(g['params']) for g in opt.param_groups]}; {fix}"
            )


def _check_model(path: Path, saved: dict, module: nn.Module) -> None:
    """Raise ``ValueError`` unless ``saved`` has ``module``'s parameter names and shapes."""
    current = module.state_dict()
    wrong = {
        "missing": sorted(current.keys() - saved.keys()),
        "unexpected": sorted(saved.keys() - current.keys()),
        "of another shape": sorted(
            k for k in current.keys() & saved.keys()
            if getattr(saved[k], "shape", None) != getattr(current[k], "shape", None)
        ),
    }  # fmt: skip
    if any(wrong.values()):
        found = "; ".join(f"{what}: {', '.join(keys[:5])}" for what, keys in wrong.items() if keys)
        raise ValueError(
            f"checkpoint {path} holds the weights of another model ({found}); resume with the "
            "model that wrote it, or delete the checkpoint"
        )


def _with_hyperparameters(saved: dict, optimizer: torch.optim.Optimizer) -> dict:
    """The optimizer state_dict ``saved`` with every hyperparameter of its param
    groups (``lr``, ``betas``, ...) replaced by ``optimizer``'s: on resume the
    settings passed in win, the checkpoint gives the state (moments, steps)."""
    groups = [
        {**old, **{key: value for key, value in new.items() if key != "params"}}
        for old, new in zip(saved["param_groups"], optimizer.param_groups, strict=True)
    ]
    return {**saved, "param_groups": groups}


def load(
    path: Path, *, run: dict, module: nn.Module, optimizers: dict[str, torch.optim.Optimizer]
) -> tuple[History, Position, list[dict]]:
    """Read ``path`` into ``module`` and ``optimizers`` after checking it belongs
    to ``run``, the model and the optimizers (nothing is loaded otherwise); the
    optimizers keep their own hyperparameters (see the module's rule). Return the
    history, the position and the RNG states (one per process that wrote it)."""
    state = _read(path)
    if "position" not in state:
        raise ValueError(
            f"checkpoint {path} was written by an older genai_course, which kept its place "
            "in steps, not examples; delete it (or finish that run with the older version)"
        )
    missing = [k for k in ("model", "optimizers", "history", "rng") if k not in state]
    if missing:
        raise ValueError(
            f"checkpoint {path} is not a complete checkpoint of fit (no {', '.join(missing)}); "
            "delete it to start afresh"
        )
    if state["run"] != run:
        raise ValueError(
            f"checkpoint {path} belongs to a run with {state['run']}, not {run}; "
            "resume with the same data, seed and shuffle, or delete the checkpoint"
        )
    _check_optimizers(path, state, optimizers)
    _check_model(path, state["model"], module)
    module.load_state_dict(state["model"])
    for name, opt in optimizers.items():
        opt.load_state_dict(_with_hyperparameters(state["optimizers"][name], opt))
    place = state["position"]
    position = Position(state["step"], place["epoch"], place["consumed"], place["start"])
    return History(**state["history"]), position, state["rng"]

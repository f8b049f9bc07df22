r"""Scaling out: the book's training loop on several processes (data parallelism).

``torchrun --nproc_per_node W`` starts W copies of one script, the *ranks*
0, ..., W - 1, and tells each who it is through environment variables
(``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``).
Every rank holds the whole model and takes its own share of each batch.
After ``backward`` PyTorch's ``DistributedDataParallel`` averages the
gradients across the ranks, so every copy takes the same step: the step one
process would take on the combined batch of :math:`WB` examples,

.. math:: g = \frac{1}{W} \sum_{r=0}^{W-1} \frac{1}{B} \sum_{i \in \mathcal{B}_r}
   \nabla_\theta \ell(x_i; \theta)
   = \frac{1}{WB} \sum_{i \in \mathcal{B}_0 \cup \dots \cup \mathcal{B}_{W-1}}
   \nabla_\theta \ell(x_i; \theta),

when the shares :math:`\mathcal{B}_r` have equal sizes :math:`B` (which
``genai_course.train.fit`` makes sure of). This module joins the ranks
(:func:`init`), wraps a model (:func:`wrap`) and holds the few collective
operations ``fit`` needs. In a single process, launched without ``torchrun``,
every function here does nothing, so the same script runs either way.
"""

from __future__ import annotations

import datetime
import inspect
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from genai_course.device import get_device

# the name of DistributedDataParallel's switch of the buffer broadcast before every forward
# pass: forward_sync_buffers from PyTorch 2.13 on, broadcast_buffers (deprecated there) before
_NO_FORWARD_BUFFER_SYNC = (
    "forward_sync_buffers"
    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
    else "broadcast_buffers"
)

# what torchrun sets, and what init reads
ENV_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class Cluster:
    """Where this process stands: rank ``rank`` of ``world_size``; ``local_rank``
    numbers the ranks of one machine (and picks its GPU); ``backend`` is
    ``"nccl"`` (GPUs), ``"gloo"`` (CPU) or None for a single process."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        """Rank 0 draws the progress bar, writes checkpoints and prints."""
        return self.rank == 0


def _env_int(name: str, low: int, high: int | None = None) -> int:
    raw = os.environ.get(name, "")
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or value < low or (high is not None and value > high):
        bound = f"from {low} to {high}" if high is not None else f">= {low}"
        raise ValueError(f"the environment variable {name}={raw!r} must be an integer {bound}")
    return value


def current() -> Cluster:
    """The :class:`Cluster` of the process group this process has joined, or a
    single process (rank 0 of 1) when it has joined none."""
    if not (dist.is_available() and dist.is_initialized()):
        return Cluster()
    return Cluster(
        rank=dist.get_rank(),
        world_size=dist.get_world_size(),
        local_rank=int(os.environ.get("LOCAL_RANK", dist.get_rank())),
        backend=dist.get_backend(),
    )


def init(*, backend: str | None = None, timeout: float = 300.0) -> Cluster:
    """Join the other ranks, from the environment ``torchrun`` sets.

    Without ``WORLD_SIZE`` and ``RANK`` in the environment this is a single
    process: nothing is done and rank 0 of 1 is returned. Otherwise the
    variables are checked (each error names the variable), a GPU rank takes
    the GPU ``LOCAL_RANK`` as its current device, and the process group is
    set up with ``backend``: by default NCCL when the book's device
    (:func:`genai_course.device.get_device`) is CUDA, gloo otherwise.

    ``timeout`` (seconds) bounds the wait for the other ranks: if they never
    arrive (fewer processes started than ``WORLD_SIZE``, a wrong address or
    port), a ``RuntimeError`` says so instead of a hang. It also bounds every
    later collective operation.
    """
    if not (isinstance(timeout, int | float) and timeout > 0):
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    if dist.is_initialized():
        return current()
    if "WORLD_SIZE" not in os.environ and "RANK" not in os.environ:
        return Cluster()
    for name, other in (("WORLD_SIZE", "RANK"), ("RANK", "WORLD_SIZE")):
        if name not in os.environ:
            raise ValueError(
                f"the environment variable {name} is not set but {other} is: set both (torchrun "
                "does) for several processes, or neither for one"
            )
    world_size = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0, world_size - 1)
    local_rank = _env_int("LOCAL_RANK", 0, world_size - 1) if "LOCAL_RANK" in os.environ else rank
    for name in ("MASTER_ADDR", "MASTER_PORT"):
        if not os.environ.get(name):
            raise ValueError(
                f"the environment variable {name} is not set: rank {rank} of {world_size} does "
                "not know where to meet the others. Launch with torchrun, which sets it, or set "
                "MASTER_ADDR (rank 0's host) and MASTER_PORT (a free port) on every rank"
            )
    port = _env_int("MASTER_PORT", 1, 65535)
    if backend is None:
        backend = "nccl" if get_device().type == "cuda" else "gloo"
    if backend not in ("nccl", "gloo"):
        raise ValueError(f"backend must be 'nccl' (GPUs) or 'gloo' (CPU), got {backend!r}")
    if backend == "nccl":
        if local_rank >= torch.cuda.device_count():
            raise RuntimeError(
                f"LOCAL_RANK={local_rank} needs GPU {local_rank}, but this process sees "
                f"{torch.cuda.device_count()}: start at most that many processes per machine "
                "(if a scheduler gives each process its own GPU through CUDA_VISIBLE_DEVICES, "
                "set LOCAL_RANK=0 for each)"
            )
        torch.cuda.set_device(local_rank)  # "cuda" now means this rank's own GPU
    try:
        dist.init_process_group(
            backend,
            rank=rank,
            world_size=world_size,
            timeout=datetime.timedelta(seconds=timeout),
            device_id=torch.device("cuda", local_rank) if backend == "nccl" else None,
        )
    except dist.DistError as error:
        raise RuntimeError(
            f"rank {rank} of {world_size} could not meet the other ranks at "
            f"{os.environ['MASTER_ADDR']}:{port} within {timeout:g} s ({error}). Were "
            f"WORLD_SIZE={world_size} processes started (torchrun --nproc_per_node), all with "
            "the same MASTER_ADDR and MASTER_PORT?"
        ) from error
    return current()


def shutdown() -> None:
    """Leave the process group (at the end of a script); nothing in a single process."""
    if dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: nn.Module) -> nn.Module:
    """``model`` in ``DistributedDataParallel`` when the process group is up,
    else ``model`` itself.

    The wrapper shares the model's parameters and starts every rank from
    rank 0's values. Call the *wrapper* in the loss: its forward pass is what
    makes the backward pass average the gradients across the ranks.

    Buffers are not broadcast from rank 0 at every forward pass: BatchNorm's
    running statistics stay each rank's own (rank 0's are checkpointed), and
    a network may be called twice before one backward pass, as a GAN's
    discriminator is (a broadcast would overwrite, in place, statistics that
    backward still needs).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {model!r}")
    if not dist.is_initialized():
        return model
    first = next(model.parameters(), None)
    if first is None:
        raise ValueError("model has no parameters: there are no gradients to average")
    device = first.device
    return DistributedDataParallel(
        model,
        device_ids=[device.index] if device.type == "cuda" else None,
        **{_NO_FORWARD_BUFFER_SYNC: False},
    )


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a ``DistributedDataParallel`` wrapper (or ``model``)."""
    return model.module if isinstance(model, DistributedDataParallel) else model


# -- what fit needs: the same numbers on every rank --------------------------------


def average(values: torch.Tensor) -> torch.Tensor:
    """The mean of ``values`` over the ranks, on every rank (a float tensor)."""
    if dist.is_initialized() and dist.get_world_size() > 1:
        values = values.clone()
        dist.all_reduce(values)
        values /= dist.get_world_size()
    return values


def agree(value: torch.Tensor) -> bool:
    """Whether a scalar is the same on every rank (the answer is too)."""
    if not (dist.is_initialized() and dist.get_world_size() > 1):
        return True
    extremes = torch.stack([value, -value]).double()  # max of -v is -min
    dist.all_reduce(extremes, op=dist.ReduceOp.MAX)
    return bool(extremes[0] == -extremes[1])


def gather(obj: object) -> list:
    """``obj`` of every rank, in rank order, on every rank."""
    if not dist.is_initialized():
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def barrier() -> None:
    """Wait until every rank gets here."""
    if dist.is_initialized():
        dist.barrier()

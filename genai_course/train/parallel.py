r"""The parallel hooks of ``fit``: what changes when ``torchrun`` started W processes.

``fit`` is the one-process loop plus calls to these functions at a few named
points; in one process each of them does nothing (or the obvious thing).

- :func:`shard`: each rank's share of the rest of an epoch;
- :func:`seed_rank`: each rank its own random numbers (dropout, noise);
- :func:`check_same_settings`: ranks given different settings stop at once
  instead of waiting for each other forever;
- :func:`average_metrics`: an evaluation's metrics, the mean over the ranks
  (the step metrics go through :func:`genai_course.distributed.average`);
- :func:`check_parameters_agree`: the model's copies are still equal (the
  gradients were averaged through :func:`genai_course.distributed.wrap`).

The collectives themselves live in :mod:`genai_course.distributed`.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from genai_course import distributed
from genai_course.config import seed_everything


def shard(order: torch.Tensor, consumed: int, cluster: distributed.Cluster) -> torch.Tensor:
    """This rank's examples for the rest of an epoch, in order.

    The examples not yet seen, ``order[consumed:]``, are cut to a multiple
    of the world size :math:`W` (at most :math:`W - 1` are left out, different
    ones each epoch), and rank :math:`r` takes every :math:`W`-th from the
    :math:`r`-th. Batch :math:`s` of every rank together is then
    ``order[consumed + sWB : consumed + (s + 1)WB]``: the batch one process
    with batch size :math:`WB` would take, in equal shares.
    """
    rest = order[consumed:]
    rest = rest[: len(rest) - len(rest) % cluster.world_size]
    return rest[cluster.rank :: cluster.world_size]


def steps_left(n: int, consumed: int, batch_size: int, cluster: distributed.Cluster) -> int:
    """Steps of each rank to finish an epoch of ``n`` examples from example ``consumed`` on."""
    rest = n - consumed
    return math.ceil((rest - rest % cluster.world_size) // cluster.world_size / batch_size)


def rank_seed(seed: int, rank: int, step: int) -> int:
    """A seed of rank ``rank``'s own random numbers (dropout, noise) from step ``step`` on."""
    return int(np.random.SeedSequence([seed, rank, step]).generate_state(1)[0])


def seed_rank(seed: int, step: int, cluster: distributed.Cluster) -> None:
    """Give this rank fresh random numbers of its own, from (seed, rank, step)."""
    seed_everything(rank_seed(seed, cluster.rank, step))


def check_same_settings(settings: dict, cluster: distributed.Cluster) -> None:
    """Raise ``ValueError`` naming what differs if the ranks called ``fit`` differently."""
    if cluster.world_size == 1:
        return
    every = distributed.gather(settings)
    if all(other == settings for other in every):
        return
    differ = sorted(k for k in settings if len({repr(o[k]) for o in every}) > 1)
    raise ValueError(
        f"the {cluster.world_size} processes were given different {', '.join(differ)}: "
        + "; ".join(f"rank {r}: {[o[k] for k in differ]}" for r, o in enumerate(every))
        + ". Every rank must call fit alike (and see the same checkpoint file)"
    )


def average_metrics(metrics: dict[str, float], device: torch.device) -> dict[str, float]:
    """The mean of each metric over the ranks, in float64 (the metrics themselves in one
    process: no tensor is made, so nothing runs on the device)."""
    if distributed.current().world_size == 1:
        return metrics
    values = torch.tensor(list(metrics.values()), dtype=torch.float64, device=device)
    return dict(zip(metrics, distributed.average(values).tolist(), strict=True))


def check_parameters_agree(module: nn.Module, step: int, cluster: distributed.Cluster) -> None:
    """Raise ``RuntimeError`` if the ranks' copies of the parameters differ after ``step``."""
    if cluster.world_size == 1:
        return
    device = next(module.parameters()).device
    checksum = sum(
        (p.detach().double().square().sum() for p in module.parameters()),
        torch.zeros((), dtype=torch.float64, device=device),
    )
    if not distributed.agree(checksum):
        raise RuntimeError(
            f"after step {step} the parameters differ between the {cluster.world_size} "
            "processes: their gradients were not averaged. The loss (or step) must call "
            "the model through genai_course.distributed.wrap(model), not the model itself"
        )

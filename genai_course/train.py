r"""The one training loop every model in the book uses.

``fit`` runs minibatch optimisation over tensors that live on the model's
device: each epoch it draws a permutation of the example indices, slices
batches with it and calls a *step function* on each batch. The default step
is plain gradient descent on a loss,

.. math:: \theta \leftarrow \mathrm{update}\big(\theta, \nabla_\theta
   \tfrac{1}{B}\textstyle\sum_{i \in \text{batch}} \ell(x_i; \theta)\big),

and a model that needs more than one update per batch (a GAN: first the
discriminator, then the generator) passes its own ``step``. The loop keeps a
history, shows a progress bar, writes checkpoints atomically, resumes to the
bit-identical result, and stops at the first non-finite metric.
"""

from __future__ import annotations

import math
import os
import random
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from genai_course import distributed
from genai_course.config import check_positive_int, seed_everything, show_progress

StepFn = Callable[..., Mapping[str, "torch.Tensor | float"]]


@dataclass
class History:
    """What ``fit`` measured. Every list is in training order."""

    steps: dict[str, list[float]] = field(default_factory=dict)  # one value per step
    epochs: dict[str, list[float]] = field(default_factory=dict)  # step means + evaluate()
    # wall-clock time spent in fit (evaluations included, summed over resumed runs);
    # not compared: two runs that measured the same thing are equal histories
    seconds: float = field(default=0.0, compare=False)


def gradient_step(loss_fn: Callable[..., torch.Tensor], optimizer: torch.optim.Optimizer) -> StepFn:
    """The default step: one gradient update on the batch mean of ``loss_fn(*batch)``.

    ``loss_fn`` may return one loss per example (the book's convention) or
    their mean; the step averages either way and reports it as ``"loss"``.
    """

    def step(*batch: torch.Tensor) -> dict[str, torch.Tensor]:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(*batch).mean()
        loss.backward()
        optimizer.step()
        return {"loss": loss}

    return step


def _epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The permutation of epoch ``epoch``: a function of (seed, epoch) only,
    so a resumed run sees exactly the batches the uninterrupted run saw."""
    mixed = int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])
    return torch.randperm(n, generator=torch.Generator().manual_seed(mixed))


def _rng_state() -> dict:
    numpy_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [numpy_state[0], numpy_state[1].tolist(), *numpy_state[2:]],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _save_atomic(obj: dict, path: Path) -> None:
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


def _shard(order: torch.Tensor, consumed: int, cluster: distributed.Cluster) -> torch.Tensor:
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


def _rank_seed(seed: int, rank: int, step: int) -> int:
    """A seed of rank ``rank``'s own random numbers (dropout, noise) from step ``step`` on."""
    return int(np.random.SeedSequence([seed, rank, step]).generate_state(1)[0])


def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer | Mapping[str, torch.optim.Optimizer],
    data: torch.Tensor | Sequence[torch.Tensor],
    loss_fn: Callable[..., torch.Tensor] | None = None,
    *,
    step: StepFn | None = None,
    epochs: int,
    batch_size: int,
    seed: int = 0,
    shuffle: bool = True,
    evaluate: Callable[[], Mapping[str, float]] | None = None,
    checkpoint: str | Path | None = None,
    checkpoint_every: int | None = None,
    resume: bool = False,
    log_every: int = 20,
    desc: str | None = None,
) -> History:
    """Train ``model`` on ``data`` for ``epochs`` passes; return the :class:`History`.

    Args:
        model: the module being trained (a GAN passes one module holding both
            networks); it is put in training mode, and ``data`` is moved once
            to the device of its parameters.
        optimizer: one optimizer, or a dict of them for a custom ``step``.
        data: a tensor, or tensors sharing their first dimension (e.g. images
            and labels); a batch is the same rows of each.
        loss_fn: ``loss_fn(*batch)`` gives the loss per example (or its mean);
            the default step descends its batch mean. Give this or ``step``.
        step: ``step(*batch)`` does one whole update itself and returns its
            metrics as scalars, e.g. ``{"loss_d": ..., "loss_g": ...}``.
        epochs, batch_size: passes over the data; examples per step (the
            last batch of an epoch may be smaller).
        seed: fixes the order of the examples in every epoch. The order is
            drawn on the CPU and moved to the device once an epoch, so it is
            the same on every device.
        shuffle: False keeps the data in its order in every epoch (a
            recurrent model trained with truncated backpropagation through
            time reads consecutive chunks of text, see ``lstm.tbptt_step``).
        evaluate: called in eval mode after each epoch; its metrics (floats)
            go to ``history.epochs``.
        checkpoint: file to write model, optimizers, history, RNG states and
            position to, at the end and every ``checkpoint_every`` steps.
        resume: continue from ``checkpoint`` if it exists (same data, ``seed``
            and ``shuffle``); the result is bit-identical to an uninterrupted
            run on the CPU. The position is kept as examples seen, so a run
            may resume with another ``batch_size`` or number of processes.
        log_every: steps between reading metrics back from the device (and
            checking they are finite).
        desc: label of the progress bar.

    Under ``torchrun`` (after :func:`genai_course.distributed.init`) each of
    the :math:`W` processes takes ``batch_size`` examples of every combined
    batch of :math:`W \\times` ``batch_size`` (see ``_shard``) and draws its own
    random numbers (seeded from ``seed`` and its rank). The loss or step
    must call the model through :func:`genai_course.distributed.wrap`, which
    averages the gradients; ``fit`` checks that the ranks' parameters agree.
    Metrics and evaluations are averaged over the ranks, and only rank 0
    draws the progress bar and writes the checkpoint.

    Raises:
        FloatingPointError: a metric became NaN or infinite; names the step.
    """
    # -- check the arguments -------------------------------------------------
    if (loss_fn is None) == (step is None):
        raise ValueError("pass exactly one of loss_fn (a loss to descend) and step (an update)")
    optimizers = dict(optimizer) if isinstance(optimizer, Mapping) else {"optimizer": optimizer}
    for name, opt in optimizers.items():
        if not isinstance(opt, torch.optim.Optimizer):
            raise TypeError(f"optimizer {name!r} must be a torch.optim.Optimizer, got {opt!r}")
    for name, fn in (("loss_fn", loss_fn), ("step", step), ("evaluate", evaluate)):
        if fn is not None and not callable(fn):
            raise TypeError(f"{name} must be a function, got {fn!r}")
    if not isinstance(shuffle, bool):
        raise TypeError(f"shuffle must be True or False, got {shuffle!r}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    if loss_fn is not None:
        if len(optimizers) != 1:
            raise ValueError("loss_fn trains with one optimizer; pass step= to use several")
        step = gradient_step(loss_fn, next(iter(optimizers.values())))
    for name, value in (("epochs", epochs), ("batch_size", batch_size), ("log_every", log_every)):
        check_positive_int(name, value)
    if checkpoint_every is not None:
        check_positive_int("checkpoint_every", checkpoint_every)
    if (checkpoint_every is not None or resume) and checkpoint is None:
        raise ValueError("checkpoint_every and resume need a checkpoint= path")
    tensors = (data,) if isinstance(data, torch.Tensor) else tuple(data)
    if not tensors or not all(isinstance(t, torch.Tensor) for t in tensors):
        raise TypeError("data must be a tensor or a sequence of tensors")
    n = len(tensors[0])
    if n == 0 or any(len(t) != n for t in tensors):
        raise ValueError(
            f"data tensors must be non-empty and share their first dimension, "
            f"got lengths {[len(t) for t in tensors]}"
        )
    cluster = distributed.current()
    if n < cluster.world_size:
        raise ValueError(
            f"data has {n} examples but there are {cluster.world_size} processes (WORLD_SIZE); "
            "each needs at least one"
        )

    # -- put the data where the model is ------------------------------------
    module = distributed.unwrap(model)  # what is checkpointed: the same on 1 or W processes
    first_param = next(module.parameters(), None)
    device = first_param.device if first_param is not None else tensors[0].device
    tensors = tuple(t.to(device) for t in tensors)
    # what a resume must match
    run = {"n": n, "seed": seed, "shuffle": shuffle}

    def steps_left(consumed: int) -> int:
        """Steps of each rank to finish an epoch from example ``consumed`` on."""
        rest = n - consumed
        return math.ceil((rest - rest % cluster.world_size) // cluster.world_size / batch_size)

    # -- resume --------------------------------------------------------------
    history, done = History(), 0  # done = steps completed so far
    epoch, consumed, epoch_start = 0, 0, 0  # where in which epoch; its first step
    path = Path(checkpoint) if checkpoint is not None else None
    if resume and path.is_file():
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
        history, done = History(**state["history"]), state["step"]
        position = state["position"]
        epoch, consumed, epoch_start = position["epoch"], position["consumed"], position["start"]
        if len(state["rng"]) == cluster.world_size:  # each rank carries on its own stream
            _set_rng_state(state["rng"][cluster.rank])
        else:  # another number of processes: fresh streams, from the seed and the step
            seed_everything(_rank_seed(seed, cluster.rank, done))
    elif cluster.world_size > 1:
        seed_everything(_rank_seed(seed, cluster.rank, 0))

    if cluster.world_size > 1:  # ranks that disagree would wait for each other forever
        settings = {
            "examples": n,
            "batch_size": batch_size,
            "epochs": epochs,
            "seed": seed,
            "shuffle": shuffle,
            "log_every": log_every,
            "checkpoint_every": checkpoint_every,
            "checkpoint": checkpoint is not None,
            "resumed at step": done,
        }
        every = distributed.gather(settings)
        if any(other != settings for other in every):
            differ = sorted(k for k in settings if len({repr(o[k]) for o in every}) > 1)
            raise ValueError(
                f"the {cluster.world_size} processes were given different {', '.join(differ)}: "
                + "; ".join(f"rank {r}: {[o[k] for k in differ]}" for r, o in enumerate(every))
                + ". Every rank must call fit alike (and see the same checkpoint file)"
            )

    started, seconds_before = time.perf_counter(), history.seconds

    def save() -> None:
        history.seconds = seconds_before + time.perf_counter() - started
        rng = distributed.gather(_rng_state())  # every rank's, to resume each
        if cluster.is_main:
            _save_atomic(
                {
                    "run": run,
                    "step": done,
                    "position": {"epoch": epoch, "consumed": consumed, "start": epoch_start},
                    "model": module.state_dict(),
                    "optimizers": {name: opt.state_dict() for name, opt in optimizers.items()},
                    "history": asdict(history),
                    "rng": rng,
                },
                path,
            )
        distributed.barrier()  # no rank goes on before the file is there

    def checkpoint_due() -> bool:
        return checkpoint_every is not None and done % checkpoint_every == 0

    pending: list[Mapping[str, torch.Tensor | float]] = []  # metrics not yet read back

    def record() -> None:
        """Read pending metrics back from the device (one sync), averaged over
        the ranks, and check them; check the ranks' parameters agree."""
        keys, first = list(pending[0]), done - len(pending) + 1
        values = torch.stack(
            [torch.as_tensor(m[k], device=device).detach().float() for k in keys for m in pending]
        )  # (keys * steps,)
        values = distributed.average(values).view(len(keys), len(pending)).tolist()
        for key, key_values in zip(keys, values, strict=True):
            for offset, value in enumerate(key_values):
                if not math.isfinite(value):
                    raise FloatingPointError(
                        f"{key} became {value} at step {first + offset} (epoch "
                        f"{epoch + 1} of {epochs}); training stopped. "
                        "Usual causes: a learning rate too high, log(0), division by zero."
                    )
            history.steps.setdefault(key, []).extend(key_values)
        if cluster.world_size > 1:
            checksum = sum(
                (p.detach().double().square().sum() for p in module.parameters()),
                torch.zeros((), dtype=torch.float64, device=device),
            )
            if not distributed.agree(checksum):
                raise RuntimeError(
                    f"after step {done} the parameters differ between the {cluster.world_size} "
                    "processes: their gradients were not averaged. The loss (or step) must call "
                    "the model through genai_course.distributed.wrap(model), not the model itself"
                )
        bar.set_postfix({key: f"{history.steps[key][-1]:.4g}" for key in keys})
        pending.clear()

    # -- the loop --------------------------------------------------------------
    total_steps = done + steps_left(consumed) + (epochs - epoch - 1) * steps_left(0)
    model.train()
    show = show_progress() and cluster.is_main
    with tqdm(total=max(total_steps, done), initial=done, desc=desc, disable=not show) as bar:
        while epoch < epochs:
            order = _epoch_order(n, seed, epoch) if shuffle else torch.arange(n)
            mine = _shard(order, consumed, cluster).to(device)  # this rank's examples
            steps = math.ceil(len(mine) / batch_size)
            for i in range(steps):
                index = mine[i * batch_size : (i + 1) * batch_size]  # (B,)
                pending.append(step(*(t[index] for t in tensors)))
                done += 1
                consumed += len(index) * cluster.world_size
                bar.update(1)
                last_of_epoch = i == steps - 1
                if done % log_every == 0 or checkpoint_due() or last_of_epoch:
                    record()
                if checkpoint_due() and not last_of_epoch:
                    save()  # at the end of an epoch: after its summary, below
            # end of epoch: the mean of each step metric, then the evaluation
            for key, values in history.steps.items():
                epoch_values = values[epoch_start:]
                history.epochs.setdefault(key, []).append(sum(epoch_values) / len(epoch_values))
            if evaluate is not None:
                model.eval()
                with torch.no_grad():
                    metrics = {key: float(value) for key, value in evaluate().items()}
                model.train()
                if cluster.world_size > 1:  # the mean over the ranks, in float64
                    values = torch.tensor(
                        list(metrics.values()), dtype=torch.float64, device=device
                    )
                    metrics = dict(zip(metrics, distributed.average(values).tolist(), strict=True))
                for key, value in metrics.items():
                    history.epochs.setdefault(key, []).append(value)
            epoch, consumed, epoch_start = epoch + 1, 0, done
            if checkpoint_due():
                save()
    if path is not None:
        save()
    history.seconds = seconds_before + time.perf_counter() - started
    return history


if __name__ == "__main__":  # python -m genai_course.train MODEL ...; what torchrun launches
    from genai_course.recipes import main

    main()

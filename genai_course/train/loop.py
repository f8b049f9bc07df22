r"""The one training loop every model in the book uses.

``fit`` runs minibatch optimisation over tensors that live on the model's
device: each epoch it draws a permutation of the example indices, slices
batches with it and calls a *step function* on each batch. The default step
is plain gradient descent on a loss,

.. math:: \theta \leftarrow \mathrm{update}\big(\theta, \nabla_\theta
   \tfrac{1}{B}\textstyle\sum_{i \in \text{batch}} \ell(x_i; \theta)\big),

and a model that needs more than one update per batch (a GAN: first the
discriminator, then the generator) passes its own ``step``. The loop keeps a
history, shows a progress bar, writes checkpoints atomically
(:mod:`~genai_course.train.checkpoint`), resumes to the bit-identical result,
stops at the first non-finite metric, and under ``torchrun`` calls the
parallel hooks (:mod:`~genai_course.train.parallel`) at a few named points.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from genai_course import distributed
from genai_course.config import check_positive_int, show_progress
from genai_course.train import checkpoint as ckpt
from genai_course.train import parallel
from genai_course.train.checkpoint import Position
from genai_course.train.history import History

StepFn = Callable[..., Mapping[str, "torch.Tensor | float"]]


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


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The permutation of epoch ``epoch``: a function of (seed, epoch) only,
    so a resumed run sees exactly the batches the uninterrupted run saw."""
    mixed = int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])
    return torch.randperm(n, generator=torch.Generator().manual_seed(mixed))


def _check_arguments(
    optimizer, data, loss_fn, step, evaluate, *, seed, shuffle, checkpoint, checkpoint_every,
    resume, **counts,
):
    """Validate ``fit``'s arguments; return its step, its optimizers (a dict), its tensors
    and its checkpoint's path (None if none), checked writable."""
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
    for name, value in counts.items():  # epochs, batch_size, log_every
        check_positive_int(name, value)
    if checkpoint_every is not None:
        check_positive_int("checkpoint_every", checkpoint_every)
    if (checkpoint_every is not None or resume) and checkpoint is None:
        raise ValueError("checkpoint_every and resume need a checkpoint= path")
    # a checkpoint that cannot be written is found out now, not after the training
    path = ckpt.check_writable(checkpoint, "checkpoint") if checkpoint is not None else None
    tensors = (data,) if isinstance(data, torch.Tensor) else tuple(data)
    if not tensors or not all(isinstance(t, torch.Tensor) for t in tensors):
        raise TypeError("data must be a tensor or a sequence of tensors")
    n = len(tensors[0])
    if n == 0 or any(len(t) != n for t in tensors):
        raise ValueError(
            f"data tensors must be non-empty and share their first dimension, "
            f"got lengths {[len(t) for t in tensors]}"
        )
    world_size = distributed.current().world_size
    if n < world_size:
        raise ValueError(
            f"data has {n} examples but there are {world_size} processes (WORLD_SIZE); "
            "each needs at least one"
        )
    return step, optimizers, tensors, path


def _start(path, resume, run, module, optimizers, seed, cluster) -> tuple[History, Position]:
    """A fresh run, or the run of ``path`` resumed; each rank gets its own random numbers."""
    if not (resume and path.is_file()):
        if cluster.world_size > 1:
            parallel.seed_rank(seed, 0, cluster)
        return History(), Position()
    history, position, rng = ckpt.load(path, run=run, module=module, optimizers=optimizers)
    if len(rng) == cluster.world_size:  # each rank carries on its own stream
        ckpt.set_rng_state(rng[cluster.rank])
    else:  # another number of processes: fresh streams, from the seed and the step
        parallel.seed_rank(seed, position.step, cluster)
    return history, position


def _read_back(pending: list, history: History, position: Position, epochs: int, device) -> None:
    """Read the pending metrics back from the device (one sync), averaged over
    the ranks; stop at a non-finite one; append them to the history."""
    keys, first = list(pending[0]), position.step - len(pending) + 1
    values = torch.stack(
        [torch.as_tensor(m[k], device=device).detach().float() for k in keys for m in pending]
    )  # (keys * steps,)
    values = distributed.average(values).view(len(keys), len(pending)).tolist()
    for key, key_values in zip(keys, values, strict=True):
        for offset, value in enumerate(key_values):
            if not math.isfinite(value):
                raise FloatingPointError(
                    f"{key} became {value} at step {first + offset} (epoch "
                    f"{position.epoch + 1} of {epochs}); training stopped. "
                    "Usual causes: a learning rate too high, log(0), division by zero."
                )
        history.steps.setdefault(key, []).extend(key_values)
    pending.clear()


def _end_epoch(model: nn.Module, history: History, position: Position, evaluate, device) -> None:
    """The epoch's mean of each step metric, then ``evaluate()`` in eval mode
    (averaged over the ranks, in float64)."""
    for key, values in history.steps.items():
        epoch_values = values[position.start :]
        history.epochs.setdefault(key, []).append(sum(epoch_values) / len(epoch_values))
    if evaluate is None:
        return
    model.eval()
    with torch.no_grad():
        metrics = {key: float(value) for key, value in evaluate().items()}
    model.train()
    for key, value in parallel.average_metrics(metrics, device).items():
        history.epochs.setdefault(key, []).append(value)


def _progress_bar(at: Position, n: int, epochs: int, batch_size: int, desc, cluster) -> tqdm:
    """The progress bar of the whole run, in steps (drawn by rank 0 only)."""
    total = at.step + parallel.steps_left(n, at.consumed, batch_size, cluster)
    total += (epochs - at.epoch - 1) * parallel.steps_left(n, 0, batch_size, cluster)
    return tqdm(total=max(total, at.step), initial=at.step, desc=desc,
                disable=not (show_progress() and cluster.is_main))  # fmt: skip


def _save(path: Path, position: Position, history: History, started: float, **state) -> None:
    """Write the checkpoint, the seconds so far included in the history."""
    history.seconds = time.perf_counter() - started
    ckpt.save(path, position=position, history=history, **state)


def fit(
    model: nn.Module, optimizer: torch.optim.Optimizer | Mapping[str, torch.optim.Optimizer],
    data: torch.Tensor | Sequence[torch.Tensor], loss_fn: Callable | None = None, *,
    step: StepFn | None = None, epochs: int, batch_size: int, seed: int = 0, shuffle: bool = True,
    evaluate: Callable[[], Mapping[str, float]] | None = None, checkpoint: str | Path | None = None,
    checkpoint_every: int | None = None, resume: bool = False, log_every: int = 20,
    desc: str | None = None,
) -> History:  # fmt: skip
    """Train ``model`` on ``data`` for ``epochs`` passes; return the :class:`History`.

    ``data`` is a tensor, or tensors sharing their first dimension (a batch is the same rows of
    each), moved once to the device of ``model``'s parameters. Each step descends the batch mean
    of ``loss_fn(*batch)`` (a loss per example) with ``optimizer``, or calls ``step(*batch)``,
    which makes the whole update itself (a GAN's two, with a dict of optimizers) and returns its
    metrics. Batches of ``batch_size`` follow a permutation drawn on the CPU from (``seed``,
    epoch), or the data's own order if ``shuffle`` is False (text read in order, see
    ``lstm.tbptt_step``). ``evaluate()`` runs in eval mode after each epoch; its metrics go to
    ``history.epochs``. ``checkpoint`` (checked writable before the first step) is written at
    the end and every ``checkpoint_every`` steps; ``resume`` continues from it, with any batch
    size or number of processes (with the same ones, on the CPU, bit-identical to an
    uninterrupted run): the weights, optimizer state and place from the checkpoint, the epochs,
    batch size and optimizer hyperparameters from this call (a new ``lr`` is the one used); the
    rest must match (the rule: :mod:`~genai_course.train.checkpoint`). Metrics are read back
    from the device every ``log_every`` steps; ``desc`` labels the progress bar.

    Under ``torchrun`` each process takes its share of every batch and only rank 0 draws
    and writes (:mod:`~genai_course.train.parallel`); the loss must call the model through
    :func:`genai_course.distributed.wrap`.

    Raises:
        FloatingPointError: a metric became NaN or infinite; names the step.
        ValueError, OSError: ``checkpoint`` cannot be written, or is another run's; names it.
    """
    step, optimizers, tensors, path = _check_arguments(
        optimizer, data, loss_fn, step, evaluate, seed=seed, shuffle=shuffle,
        checkpoint=checkpoint, checkpoint_every=checkpoint_every, resume=resume,
        epochs=epochs, batch_size=batch_size, log_every=log_every,
    )  # fmt: skip
    # -- put the data where the model is; resume ---------------------------------
    cluster, module = distributed.current(), distributed.unwrap(model)  # module: checkpointed
    device = next(module.parameters(), tensors[0]).device
    tensors, n = tuple(t.to(device) for t in tensors), len(tensors[0])
    run = {"n": n, "seed": seed, "shuffle": shuffle}  # what a resume must match
    history, at = _start(path, resume, run, module, optimizers, seed, cluster)
    parallel.check_same_settings({
        "examples": n, "batch_size": batch_size, "epochs": epochs, "seed": seed, "shuffle": shuffle,
        "log_every": log_every, "checkpoint_every": checkpoint_every,
        "checkpoint": checkpoint is not None, "resumed at step": at.step}, cluster)  # fmt: skip
    started = time.perf_counter() - history.seconds  # seconds of earlier runs included
    state = {"run": run, "module": module, "optimizers": optimizers}  # what is checkpointed

    # -- the loop ------------------------------------------------------------------
    pending: list[Mapping[str, torch.Tensor | float]] = []  # metrics not yet read back
    model.train()
    with _progress_bar(at, n, epochs, batch_size, desc, cluster) as bar:
        while at.epoch < epochs:
            order = epoch_order(n, seed, at.epoch) if shuffle else torch.arange(n)
            mine = parallel.shard(order, at.consumed, cluster).to(device)  # this rank's
            steps = math.ceil(len(mine) / batch_size)
            for i in range(steps):
                index = mine[i * batch_size : (i + 1) * batch_size]  # (B,)
                pending.append(step(*(t[index] for t in tensors)))
                at.step, at.consumed = at.step + 1, at.consumed + len(index) * cluster.world_size
                bar.update(1)
                due = checkpoint_every is not None and at.step % checkpoint_every == 0
                if at.step % log_every == 0 or due or i == steps - 1:
                    _read_back(pending, history, at, epochs, device)
                    parallel.check_parameters_agree(module, at.step, cluster)
                    bar.set_postfix({key: f"{v[-1]:.4g}" for key, v in history.steps.items()})
                if due and i < steps - 1:  # at the end of an epoch: after its summary, below
                    _save(path, at, history, started, **state)
            # -- end of the epoch: step means, evaluation, maybe a checkpoint
            _end_epoch(model, history, at, evaluate, device)
            at = at.next_epoch()
            if checkpoint_every is not None and at.step % checkpoint_every == 0:
                _save(path, at, history, started, **state)
    if path is not None:
        _save(path, at, history, started, **state)
    history.seconds = time.perf_counter() - started
    return history

"""Train a recipe's model from the command line: the script ``torchrun`` launches.

::

    python -m genai_course.train --help
    python -m genai_course.train vae --profile full
    torchrun --standalone --nproc_per_node 4 -m genai_course.train vae --profile full

One process or several, the script is the same: :func:`genai_course.distributed.init`
joins the other processes when ``torchrun`` started it, the recipe's loss calls
the model through :func:`genai_course.distributed.wrap`, and ``fit`` gives each
process its share of every batch. Rank 0 draws the progress bar, writes the
checkpoint, prints a summary, (``--summary``) writes it as JSON and (``--save``)
writes the trained weights. The book's page "Scaling out" explains each step.

Every output file is checked before training starts (its folder is created
and must take a new file), so a typo in a path costs no training; each is
written to a temporary file and renamed. On ``--resume`` this command's
settings (the recipe's, with the flags' changes) win over the checkpoint's
(``fit``'s rule), so the summary's learning rate is the one the optimizer used.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from dataclasses import replace
from pathlib import Path

import torch

from genai_course import distributed
from genai_course.config import PROFILES, get_profile
from genai_course.device import get_device
from genai_course.train import checkpoint as ckpt
from genai_course.train.recipes import RECIPES, Recipe, Settings

POSITIVE = ("epochs", "batch_size", "train_size", "checkpoint_every")  # flags that must be >= 1


def parser() -> argparse.ArgumentParser:
    """The command line of ``python -m genai_course.train``."""
    p = argparse.ArgumentParser(
        prog="python -m genai_course.train",
        description="Train one of the book's models; under torchrun, on several processes.",
        epilog="models:\n"
        + "".join(f"  {name:<11} {r.description}\n" for name, r in RECIPES.items())
        + "\nexample: torchrun --standalone --nproc_per_node 2 -m genai_course.train vae",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "model",
        choices=RECIPES,
        type=lambda name: name.replace("-", "_"),  # char-gpt is char_gpt
        metavar="MODEL",
        help="the model to train: one of the recipes listed below (- or _ alike)",
    )
    p.add_argument("--profile", choices=PROFILES,
                   help="the recipe's settings (default: $GENAI_COURSE_PROFILE, else full on "
                   "CUDA, quick elsewhere)")  # fmt: skip
    p.add_argument("--epochs", type=int, help="passes over the data (default: the recipe's)")
    p.add_argument("--batch-size", type=int,
                   help="examples per process per step; the combined batch is this times the "
                   "number of processes (default: the recipe's)")  # fmt: skip
    p.add_argument("--lr", type=float, help="learning rate (default: the recipe's, scaled by "
                   "--scale-lr)")  # fmt: skip
    p.add_argument("--scale-lr", choices=("none", "sqrt", "linear"), default="none",
                   help="scale the recipe's learning rate with the combined batch over the "
                   "recipe's batch: by its square root (Adam) or linearly (SGD) "
                   "(default: none)")  # fmt: skip
    p.add_argument("--train-size", type=int,
                   help="training examples; char_lstm: characters of text "
                   "(default: the recipe's)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="seed of the weights and the data order")
    p.add_argument("--checkpoint", type=Path, help="file rank 0 writes the run to")
    p.add_argument("--checkpoint-every", type=int, help="steps between checkpoints")
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    p.add_argument("--summary", type=Path, help="JSON file rank 0 writes the results to")
    p.add_argument("--save", type=Path, help="file rank 0 writes the trained weights to")
    p.add_argument("--timeout", type=float, default=300.0,
                   help="seconds to wait for the other processes (default: 300)")  # fmt: skip
    return p


def _check(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Stop with a usage error naming the flag at the first bad value."""
    for flag in POSITIVE:
        value = getattr(args, flag)
        if value is not None and value < 1:
            p.error(f"--{flag.replace('_', '-')} must be a positive integer, got {value}")
    if args.lr is not None and not args.lr > 0:
        p.error(f"--lr must be positive, got {args.lr}")
    if args.seed < 0:
        p.error(f"--seed must be a non-negative integer, got {args.seed}")
    if not args.timeout > 0:
        p.error(f"--timeout must be a positive number of seconds, got {args.timeout}")
    if (args.resume or args.checkpoint_every) and args.checkpoint is None:
        p.error("--resume and --checkpoint-every need --checkpoint")


def _check_outputs(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Stop with a usage error naming the flag and path if an output file cannot be
    written: before any training. Every process reads the checkpoint on --resume,
    so each checks it; --summary and --save only the process that writes them."""
    writes_reports = os.environ.get("RANK", "0") == "0"  # rank 0, before init tells
    for flag in ("checkpoint", "summary", "save"):
        path = getattr(args, flag)
        if path is not None and (flag == "checkpoint" or writes_reports):
            try:
                ckpt.check_writable(path, f"--{flag}")
            except ValueError as err:
                p.error(str(err))


def settings_of(args: argparse.Namespace, recipe: Recipe, world_size: int) -> Settings:
    """The recipe's settings under ``--profile``, with the flags' changes; the
    learning rate scaled (``--scale-lr``) by the combined batch over the recipe's."""
    base = recipe.settings(args.profile)
    changes = {k: getattr(args, k) for k in ("epochs", "batch_size", "train_size")}
    settings = replace(base, **{k: v for k, v in changes.items() if v is not None})
    if args.lr is not None:
        return replace(settings, lr=args.lr)
    ratio = settings.batch_size * world_size / base.batch_size  # combined batch / recipe's
    power = {"none": 0.0, "sqrt": 0.5, "linear": 1.0}[args.scale_lr]
    return replace(settings, lr=base.lr * ratio**power)


def _summary(args, settings: Settings, trained, cluster: distributed.Cluster) -> dict:
    n, seconds = trained.examples, trained.history.seconds
    last = {key: values[-1] for key, values in trained.history.epochs.items()}
    return {
        "model": args.model,
        "profile": get_profile(args.profile).name,
        "device": get_device().type,
        "processes": cluster.world_size,
        "backend": cluster.backend,
        "threads per process": torch.get_num_threads(),
        "batch size per process": settings.batch_size,
        "combined batch": settings.batch_size * cluster.world_size,
        "lr": settings.lr,  # the one used, on --resume too: fit's settings win
        "epochs": settings.epochs,
        "training examples": n,
        "seconds training": seconds,
        # each epoch, every process together: n less what the shares leave out
        "examples/s": settings.epochs * (n - n % cluster.world_size) / seconds,
        **{key: value for key, value in last.items() if math.isfinite(value)},
    }


def _report(args, summary: dict, trained) -> None:
    """Rank 0: print the summary; write it (--summary) and the weights (--save)."""
    last = {key: values[-1] for key, values in trained.history.epochs.items()}
    print(
        f"{args.model}: {summary['processes']} process(es) x {summary['batch size per process']} "
        f"examples (combined batch {summary['combined batch']}, lr {summary['lr']:.3g}), "
        f"{summary['epochs']} epochs of {summary['training examples']:,} examples in "
        f"{summary['seconds training']:.1f} s: {summary['examples/s']:,.0f} examples/s; "
        + ", ".join(f"{key} {value:.4g}" for key, value in last.items())
    )
    if args.summary is not None:
        text = json.dumps(summary, indent=1) + "\n"
        ckpt.write_file_atomic(args.summary, lambda out: out.write(text.encode()), "--summary")
    if args.save is not None:
        weights = {k: v.cpu() for k, v in trained.model.state_dict().items()}
        ckpt.write_atomic(weights, args.save, "--save")


def main(argv: list[str] | None = None) -> dict:
    """Parse ``argv``, train, and return (on rank 0 also print) the summary."""
    p = parser()
    args = p.parse_args(argv)
    _check(p, args)
    _check_outputs(p, args)
    recipe = RECIPES[args.model]
    if not recipe.parallel and os.environ.get("WORLD_SIZE", "1") != "1":
        p.error(f"{args.model} trains on one process only; run it without torchrun")
    cluster = distributed.init(timeout=args.timeout)
    try:
        settings = settings_of(args, recipe, cluster.world_size)
        started = time.perf_counter()
        trained = recipe.train(
            settings, seed=args.seed, checkpoint=args.checkpoint,
            checkpoint_every=args.checkpoint_every, resume=args.resume,
        )  # fmt: skip
        summary = _summary(args, settings, trained, cluster)
        summary["seconds in all"] = time.perf_counter() - started
    finally:
        distributed.shutdown()
    if cluster.is_main:
        _report(args, summary, trained)
    return summary


if __name__ == "__main__":
    main()

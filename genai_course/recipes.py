"""Train a chapter's model from the command line: the script ``torchrun`` launches.

::

    python -m genai_course.train vae --profile full
    torchrun --standalone --nproc_per_node 4 -m genai_course.train vae --profile full

One process or several, the script is the same: :func:`genai_course.distributed.init`
joins the other processes when ``torchrun`` started it, the loss calls the
model through :func:`genai_course.distributed.wrap`, and ``fit`` gives each
process its share of every batch. Rank 0 draws the progress bar, writes the
checkpoint, prints a summary and (``--summary``) writes it as JSON. The
book's page "Scaling out" explains each step.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

from genai_course import distributed
from genai_course.config import PROFILES, Profile, get_profile, seed_everything
from genai_course.data import binarize, load_fashion_mnist
from genai_course.device import get_device
from genai_course.gan import GAN, DCGANDiscriminator, DCGANGenerator, to_gan_range, train_gan
from genai_course.train import History, fit
from genai_course.vae import VAE, elbo, negative_elbo

# model -> (what it is, the chapter's learning rate, its batch size or None: the profile's)
MODELS = {
    "vae": ("chapter 6's MLP VAE (784-400-20) on dynamically binarised Fashion-MNIST", 1e-3, None),
    "dcgan": ("chapter 5's DCGAN (width 32, 64 latent dimensions) on Fashion-MNIST", 2e-4, 64),
}


def _train_vae(args: argparse.Namespace, images: torch.Tensor, device) -> tuple[History, dict]:
    torch.manual_seed(args.seed)
    model = VAE(input_dim=784, hidden_dim=400, latent_dim=20).to(device)
    net = distributed.wrap(model)  # the loss calls this: it averages the gradients
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, fused=True)
    history = fit(
        model,
        optimizer,
        images,  # uint8 (N, 28, 28), binarised afresh in every batch
        lambda batch: negative_elbo(net, binarize(batch)),
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        checkpoint=args.checkpoint,
        checkpoint_every=args.checkpoint_every,
        resume=args.resume,
        desc="VAE",
    )
    test = load_fashion_mnist("test").images
    x_test = binarize(test, generator=torch.Generator().manual_seed(0)).to(device)
    model.eval()
    with torch.no_grad():
        bound = elbo(x_test, *model(x_test))
    return history, {"test -ELBO": -bound.elbo.mean().item()}


def _train_dcgan(args: argparse.Namespace, images: torch.Tensor, device) -> tuple[History, dict]:
    torch.manual_seed(args.seed)
    gan = GAN(DCGANGenerator(64, width=32), DCGANDiscriminator(width=32)).to(device)
    run = train_gan(  # gan_step wraps each network itself
        gan,
        to_gan_range(images),
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        checkpoint=args.checkpoint,
        checkpoint_every=args.checkpoint_every,
        resume=args.resume,
        desc="DCGAN",
    )
    last = {key: values[-1] for key, values in run.history.epochs.items()}
    return run.history, last


TRAINERS = {"vae": _train_vae, "dcgan": _train_dcgan}


def parser() -> argparse.ArgumentParser:
    """The command line of ``python -m genai_course.train``."""
    p = argparse.ArgumentParser(
        prog="python -m genai_course.train",
        description="Train one of the book's models; under torchrun, on several processes.",
        epilog="Example: torchrun --standalone --nproc_per_node 2 -m genai_course.train vae",
    )
    p.add_argument(
        "model", choices=MODELS, help="; ".join(f"{k}: {v[0]}" for k, v in MODELS.items())
    )
    p.add_argument(
        "--profile",
        choices=PROFILES,
        help="training size (default: $GENAI_COURSE_PROFILE, else full on CUDA, quick elsewhere)",
    )
    p.add_argument("--epochs", type=int, help="passes over the data (default: the profile's)")
    p.add_argument(
        "--batch-size",
        type=int,
        help="examples per process per step; the combined batch is this times the number of "
        "processes (default: the chapter's)",
    )
    p.add_argument(
        "--lr",
        type=float,
        help="learning rate (default: the chapter's, scaled by --scale-lr)",
    )
    p.add_argument(
        "--scale-lr",
        choices=("none", "sqrt", "linear"),
        default="none",
        help="scale the chapter's learning rate with the combined batch over the chapter's "
        "batch: by its square root (Adam) or linearly (SGD) (default: none)",
    )
    p.add_argument("--train-size", type=int, help="training images (default: the profile's)")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights and the data order")
    p.add_argument("--checkpoint", type=Path, help="file rank 0 writes the run to")
    p.add_argument("--checkpoint-every", type=int, help="steps between checkpoints")
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    p.add_argument("--summary", type=Path, help="JSON file rank 0 writes the results to")
    p.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        help="seconds to wait for the other processes (default: 300)",
    )
    return p


def _settings(args: argparse.Namespace, profile: Profile, world_size: int) -> None:
    """Fill in the defaults of ``args`` from the profile and the chapter."""
    _, chapter_lr, chapter_batch = MODELS[args.model]
    chapter_batch = chapter_batch or profile.batch_size
    args.epochs = args.epochs or profile.epochs
    args.batch_size = args.batch_size or chapter_batch
    if args.lr is None:
        ratio = args.batch_size * world_size / chapter_batch  # combined batch / chapter's
        power = {"none": 0.0, "sqrt": 0.5, "linear": 1.0}[args.scale_lr]
        args.lr = chapter_lr * ratio**power


def main(argv: list[str] | None = None) -> dict:
    """Parse ``argv``, train, and return (on rank 0 also print) the summary."""
    p = parser()
    args = p.parse_args(argv)
    for flag in ("epochs", "batch_size", "train_size", "checkpoint_every"):
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
    cluster = distributed.init(timeout=args.timeout)
    try:
        profile = get_profile(args.profile)
        _settings(args, profile, cluster.world_size)
        seed_everything(args.seed)
        device = get_device()
        train_size = args.train_size or profile.train_size
        images = load_fashion_mnist("train").images[:train_size]  # (N, 28, 28) uint8
        started = time.perf_counter()
        history, metrics = TRAINERS[args.model](args, images, device)
        seconds = time.perf_counter() - started
        n = len(images)
        examples = args.epochs * (n - n % cluster.world_size)  # each epoch, every process
        summary = {
            "model": args.model,
            "profile": profile.name,
            "device": device.type,
            "processes": cluster.world_size,
            "backend": cluster.backend,
            "threads per process": torch.get_num_threads(),
            "batch size per process": args.batch_size,
            "combined batch": args.batch_size * cluster.world_size,
            "lr": args.lr,
            "epochs": args.epochs,
            "training images": n,
            "seconds training": history.seconds,
            "examples/s": examples / history.seconds,
            "seconds in all": seconds,
            **{key: value for key, value in metrics.items() if math.isfinite(value)},
        }
    finally:
        distributed.shutdown()
    if cluster.is_main:
        print(
            f"{args.model}: {cluster.world_size} process(es) x {args.batch_size} examples "
            f"(combined batch {summary['combined batch']}, lr {args.lr:.3g}), {args.epochs} "
            f"epochs of {n:,} images in {history.seconds:.1f} s: "
            f"{summary['examples/s']:,.0f} examples/s; "
            + ", ".join(f"{key} {value:.4g}" for key, value in metrics.items())
        )
        if args.summary is not None:
            args.summary.parent.mkdir(parents=True, exist_ok=True)
            args.summary.write_text(json.dumps(summary, indent=1) + "\n")
    return summary

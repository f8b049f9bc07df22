"""One rank of the two-process tests in test_distributed.py, launched by torchrun.

Trains a small regression model with ``fit`` and saves what this rank ended
with (parameters, history) to ``OUT/rank{RANK}.pt``.
"""

import argparse
from pathlib import Path

import torch
from test_train import regression_data  # this folder is the script's: on sys.path
from torch import nn

from genai_course import distributed
from genai_course.train import checkpoint, fit

write_atomic = checkpoint.write_atomic


def model(dropout):
    torch.manual_seed(0)  # the same weights as the single-process reference
    return nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Dropout(dropout), nn.Linear(16, 1))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out", type=Path)
    p.add_argument("--examples", type=int, default=96)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--crash-at", type=int, help="raise at this step, on every rank")
    p.add_argument("--checkpoint", type=Path)
    p.add_argument("--checkpoint-every", type=int)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--bare", action="store_true", help="the loss calls the unwrapped model")
    p.add_argument("--rank1-batch-size", type=int, help="rank 1's batch size, if not --batch-size")
    args = p.parse_args()

    cluster = distributed.init(timeout=60)
    if cluster.rank == 1 and args.rank1_batch_size:
        args.batch_size = args.rank1_batch_size
    writes = []  # the checkpoints this rank wrote

    def save_and_count(obj, path):
        writes.append(obj["step"])
        write_atomic(obj, path)

    checkpoint.write_atomic = save_and_count
    net = model(args.dropout)
    wrapped = net if args.bare else distributed.wrap(net)
    steps = []

    def loss(xb, yb):
        steps.append(1)
        if len(steps) == args.crash_at:
            raise KeyboardInterrupt
        return (wrapped(xb).squeeze(-1) - yb) ** 2

    history = fit(
        net,
        torch.optim.Adam(net.parameters(), lr=0.01),
        regression_data(args.examples),
        loss,
        epochs=args.epochs,
        batch_size=args.batch_size,
        checkpoint=args.checkpoint,
        checkpoint_every=args.checkpoint_every,
        resume=args.resume,
    )
    torch.save(
        {
            "parameters": [p.detach() for p in net.parameters()],
            "history": {"steps": history.steps, "epochs": history.epochs},
            "checkpoints written": writes,
        },
        args.out / f"rank{cluster.rank}.pt",
    )
    distributed.shutdown()


if __name__ == "__main__":
    main()

"""VAE training throughput: the conventional DataLoader loop against the book's ``fit``.

Both train the same 784-400-20 VAE (``genai_course.vae.VAE``) with Adam (lr 1e-3), batches of
128 and the same data: Fashion-MNIST training images, binarised afresh every time an image is
used. Only the loop differs:

- *conventional*, as in the VAE example most code copies: a ``Dataset`` whose ``__getitem__``
  turns one uint8 image into a float tensor (and binarises it), a shuffling ``DataLoader`` with
  default collation, and the loop ``zero_grad / forward / summed loss / backward / step`` (the
  KL term is the package's ``gaussian_kl``, so that the loops differ only in how data arrives);
- *book*: ``genai_course.train.fit``, which keeps the uint8 images on the device, slices a batch
  with a permutation and binarises the whole batch at once, with the package's loss (one fused
  binary cross-entropy kernel, one read-back for its input check) and PyTorch's fused Adam (the
  same update as the default one, in one kernel).

The two run in this process, alternating (``harness.alternate``), ``--repeats`` times, each
from the same initial weights. Reported: examples per second (median, min and max over the
repeats), the ratio, the test negative ELBO each run reaches (so that speed is not bought with
worse results), and the share of this machine's measured fp32 matrix-multiply rate that the
model's arithmetic reaches.

    python benchmarks/vae_throughput.py [--epochs 1] [--repeats 5] [--device cpu]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from harness import alternate, report, synchronize
from torch.utils.data import DataLoader, Dataset

from genai_course.data import binarize, load_fashion_mnist
from genai_course.device import get_device
from genai_course.information import gaussian_kl
from genai_course.train import fit
from genai_course.vae import VAE, elbo, negative_elbo

BATCH, LR = 128, 1e-3
# multiply-adds of one forward pass: 784-400, 400-20 twice (mu, logvar), 20-400, 400-784
MACS = 784 * 400 + 2 * 400 * 20 + 20 * 400 + 400 * 784
FLOPS_PER_EXAMPLE = 3 * 2 * MACS  # forward, and backward at about twice the forward


class BinarisedImages(Dataset):
    """One image at a time, converted on access: the conventional pipeline."""

    def __init__(self, images: torch.Tensor):
        self.images = images.numpy()  # (N, 28, 28) uint8

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        grey = torch.from_numpy(self.images[i]).float().div(255)  # (28, 28) in [0, 1]
        return torch.bernoulli(grey)


def train_conventional(model, images, epochs, device) -> None:
    loader = DataLoader(BinarisedImages(images), batch_size=BATCH, shuffle=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    model.train()
    for _ in range(epochs):
        for data in loader:
            data = data.to(device)
            optimizer.zero_grad()
            logits, mu, logvar = model(data)
            bce = F.binary_cross_entropy_with_logits(logits, data.view(-1, 784), reduction="sum")
            (bce + gaussian_kl(mu, logvar).sum()).backward()
            optimizer.step()


def train_book(model, images, epochs, device) -> None:
    optimizer = torch.optim.Adam(model.parameters(), lr=LR, fused=True)
    fit(model, optimizer, images, lambda x: negative_elbo(model, binarize(x)), epochs=epochs,
        batch_size=BATCH)  # fmt: skip


def matmul_rate(device: torch.device, n: int = 2048, repeats: int = 5) -> float:
    """Measured fp32 matrix-multiply rate of this machine, in FLOP/s (best of ``repeats``)."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    best = float("inf")
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        a @ b
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def measure(epochs: int = 1, repeats: int = 5, device: str | None = None) -> dict:
    """Train with both loops, alternating; print the table and return its summary."""
    device = get_device(device)
    images = load_fashion_mnist("train").images  # (60000, 28, 28) uint8
    x_test = binarize(
        load_fashion_mnist("test").images, generator=torch.Generator().manual_seed(0)
    ).to(device)
    torch.manual_seed(0)
    initial = VAE().state_dict()

    def loop(train):
        def run(repeat: int) -> float:
            torch.manual_seed(repeat)
            model = VAE().to(device)
            model.load_state_dict(initial)
            train(model, images, epochs, device)
            model.eval()
            with torch.no_grad():
                return -elbo(x_test, *model(x_test)).elbo.mean().item()

        return run

    loops = {"conventional DataLoader": loop(train_conventional), "book (fit)": loop(train_book)}
    result = alternate(loops, len(images) * epochs, repeats, device)
    title = f"VAE 784-400-20 on Fashion-MNIST, {epochs} epoch(s), {repeats} repeats, {device}"
    summary = report(title, "examples", "test -ELBO (nats)", result)
    peak = matmul_rate(device)
    summary["matmul GFLOP/s"] = peak / 1e9
    for name, row in summary["loops"].items():
        row["share of matmul rate"] = row["median"] * FLOPS_PER_EXAMPLE / peak
        print(f"{name}: {row['share of matmul rate']:.1%} of the measured fp32 matmul rate "
              f"({peak / 1e9:.0f} GFLOP/s)")  # fmt: skip
    return summary


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default=None, help="cpu, cuda or mps (default: the best)")
    args = parser.parse_args()
    measure(args.epochs, args.repeats, args.device)

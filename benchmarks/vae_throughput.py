"""VAE training throughput: the conventional DataLoader loop against the book's recipe.

Both train the model of the VAE recipe (``RECIPES["vae"]``: the 784-400-20
``genai_course.vae.VAE``) with Adam (lr 1e-3) and batches of 128 on the same data, all 60,000
Fashion-MNIST training images, binarised afresh every time an image is used, from the same
initial weights; after every epoch both score the test negative ELBO on the book's
binarisation of the 10,000 test images. Only the loop differs:

- *conventional*, as in the VAE example most code copies: a ``Dataset`` whose ``__getitem__``
  turns one uint8 image into a float tensor and binarises it, a shuffling ``DataLoader`` with
  default collation, and the loop ``zero_grad / forward / summed loss / backward / step`` (the
  KL term is the package's ``gaussian_kl``, so that the loops differ only in how data arrives);
- *book*: the recipe's trainer ``train_vae`` (``genai_course.train.fit``), which keeps the uint8
  images on the device, slices a batch with a permutation and binarises the whole batch at
  once, with the package's loss (one fused binary cross-entropy kernel, one read-back for its
  input check) and PyTorch's fused Adam (the same update as the default one, in one kernel).

The two run in this process, alternating (``benchmarks.harness``), ``--repeats`` times.
Reported: examples per second (median, min and max over the repeats), the ratio, the test
negative ELBO each run reaches (so that speed is not bought with worse results), and the share
of this machine's fp32 matrix-multiply rate that the run's arithmetic (the training steps and
the evaluations after every epoch) reaches, each repeat against the rate measured right after it.

    python -m benchmarks.vae_throughput [--epochs 1] [--repeats 5] [--device cpu]
"""

from __future__ import annotations

import statistics
import time
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from benchmarks.harness import Benchmark, ImagesOnAccess, compare, main, synchronize
from genai_course.config import seed_everything
from genai_course.data import binarized_fashion_mnist, load_fashion_mnist
from genai_course.device import get_device
from genai_course.information import gaussian_kl
from genai_course.train.recipes import RECIPES, VAESettings, build_vae
from genai_course.vae import elbo

RECIPE = RECIPES["vae"]
# multiply-adds of one forward pass: 784-400, 400-20 twice (mu, logvar), 20-400, 400-784
MACS = 784 * 400 + 2 * 400 * 20 + 20 * 400 + 400 * 784
TRAIN_FLOPS = 3 * 2 * MACS  # a training example: forward, and backward at about twice the forward
TEST_FLOPS = 2 * MACS  # a test image scored after an epoch: forward only


def load(settings: VAESettings, device: torch.device) -> torch.Tensor:
    """The training images (N, 28, 28) uint8, what the recipe takes."""
    return load_fashion_mnist("train").images[: settings.train_size]


def conventional(
    images: torch.Tensor, settings: VAESettings, seed: int, device: torch.device
) -> float:
    """The DataLoader loop; returns the test -ELBO after the last epoch."""
    seed_everything(seed)
    # the test images the recipe scores, loaded as the recipe loads them: in the timed run
    x_test = binarized_fashion_mnist("test")[: settings.eval_size].to(device)  # (N, 28, 28)
    model = build_vae(settings).to(device)  # the recipe's initial weights under this seed
    dataset = ImagesOnAccess(images, torch.bernoulli)  # (28, 28) zeros and ones
    loader = DataLoader(dataset, batch_size=settings.batch_size, shuffle=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    for _ in range(settings.epochs):
        model.train()
        for x in loader:
            x = x.to(device)  # (B, 28, 28)
            optimizer.zero_grad()
            logits, mu, logvar = model(x)
            bce = F.binary_cross_entropy_with_logits(logits, x.view(-1, 784), reduction="sum")
            (bce + gaussian_kl(mu, logvar).sum()).backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():  # what the recipe evaluates after every epoch
            test_elbo = -elbo(x_test, *model(x_test)).elbo.mean().item()
    return test_elbo


def book(images: torch.Tensor, settings: VAESettings, seed: int, device: torch.device) -> float:
    """The recipe; returns the test -ELBO its evaluation measured after the last epoch."""
    trained = RECIPE.train(settings, data=images, seed=seed, device=device.type)
    return trained.history.epochs["test -ELBO"][-1]


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
    """Train with both loops, alternating; print the table and return its summary, with each
    loop's share of the matrix-multiply rate: the median over the repeats of its rate against
    the rate measured right after it, so that a slow spell of the machine slows both."""
    # every training image, every test image scored after every epoch
    settings = replace(RECIPE.quick, train_size=None, epochs=epochs, eval_size=None)
    on = get_device(device)
    summary = compare(Benchmark(
        "VAE 784-400-20 on Fashion-MNIST", "examples", "test -ELBO (nats)", RECIPE, settings,
        load, units=len, conventional=conventional, book=book,
    ), repeats, device, between=lambda: matmul_rate(on))  # fmt: skip
    peaks = summary["between"]
    summary["matmul GFLOP/s"] = statistics.median(peaks) / 1e9
    # the timed run's arithmetic, per training example: its step, and its share of the
    # evaluation of every test image after each epoch
    n_train = len(load(settings, on))
    n_test = len(load_fashion_mnist("test").images[: settings.eval_size])
    flops = TRAIN_FLOPS + TEST_FLOPS * n_test / n_train
    for name, row in summary["loops"].items():
        shares = [rate * flops / rate_peak
                  for rate, rate_peak in zip(row["rates"], peaks, strict=True)]  # fmt: skip
        row["share of matmul rate"] = statistics.median(shares)
        print(f"{name}: {row['share of matmul rate']:.1%} of the measured fp32 matmul rate "
              f"(median over repeats; {summary['matmul GFLOP/s']:.0f} GFLOP/s)")  # fmt: skip
    return summary


if __name__ == "__main__":
    main(measure, __doc__)

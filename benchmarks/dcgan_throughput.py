"""DCGAN training throughput: the conventional DataLoader loop against the book's ``train_gan``.

Both train the book's DCGAN (``genai_course.gan``: generator and discriminator of width 32,
latent 64) on Fashion-MNIST images in [-1, 1] with Adam (lr 2e-4, betas (0.5, 0.999)) and
batches of 64, from the same initial weights. Only the loop differs:

- *conventional*, as in the DCGAN example most code copies: a ``Dataset`` whose ``__getitem__``
  turns one uint8 image into a float tensor and normalises it to [-1, 1], a shuffling
  ``DataLoader``, and the loop "discriminator on real, then on fake; generator on the same
  fakes" with ``BCEWithLogitsLoss`` against label tensors;
- *book*: ``genai_course.gan.train_gan`` (``fit`` and ``gan_step``, which also scores the same
  fakes in the generator's step): the images on the device, batches sliced with a permutation,
  fused Adam.

Reported: images per second (median, min and max over ``--repeats`` alternating runs), the
ratio, and the Fréchet distance of 2,000 samples to 2,000 test images (the book's classifier
features, ``genai_course.metrics.fid``) that each run reaches.

    python benchmarks/dcgan_throughput.py [--train-size 10000] [--epochs 1] [--repeats 3]
"""

from __future__ import annotations

import argparse

import torch
from harness import alternate, report
from torch import nn
from torch.utils.data import DataLoader, Dataset

from genai_course.data import load_fashion_mnist
from genai_course.device import get_device
from genai_course.gan import (
    GAN,
    DCGANDiscriminator,
    DCGANGenerator,
    sample,
    to_gan_range,
    train_gan,
)
from genai_course.metrics import fid

BATCH, LR, BETAS = 64, 2e-4, (0.5, 0.999)


class NormalisedImages(Dataset):
    """One image at a time, converted on access: the conventional pipeline."""

    def __init__(self, images: torch.Tensor):
        self.images = images.numpy()  # (N, 28, 28) uint8

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        x = torch.from_numpy(self.images[i]).float().div(255)[None]  # (1, 28, 28) in [0, 1]
        return (x - 0.5) / 0.5  # in [-1, 1]


def train_conventional(gan: GAN, images: torch.Tensor, epochs: int, device) -> None:
    generator, discriminator = gan.generator, gan.discriminator
    loader = DataLoader(NormalisedImages(images), batch_size=BATCH, shuffle=True)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=LR, betas=BETAS)
    opt_g = torch.optim.Adam(generator.parameters(), lr=LR, betas=BETAS)
    criterion = nn.BCEWithLogitsLoss()
    gan.train()
    for _ in range(epochs):
        for real in loader:
            real = real.to(device)
            discriminator.zero_grad()
            label = torch.full((len(real),), 1.0, device=device)
            criterion(discriminator(real), label).backward()
            fake = generator(torch.randn(len(real), generator.latent_dim, device=device))
            label.fill_(0.0)
            criterion(discriminator(fake.detach()), label).backward()
            opt_d.step()
            generator.zero_grad()
            label.fill_(1.0)
            criterion(discriminator(fake), label).backward()
            opt_g.step()


def train_book(gan: GAN, images: torch.Tensor, epochs: int, device) -> None:
    train_gan(gan, to_gan_range(images), epochs=epochs, batch_size=BATCH, lr=LR, betas=BETAS)


def measure(
    train_size: int = 10_000, epochs: int = 1, repeats: int = 3, device: str | None = None
) -> dict:
    """Train with both loops, alternating; print the table and return its summary."""
    device = get_device(device)
    images = load_fashion_mnist("train").images[:train_size]  # (N, 28, 28) uint8
    test = load_fashion_mnist("test").images[:2000].float() / 255
    torch.manual_seed(0)
    initial = GAN(DCGANGenerator(), DCGANDiscriminator()).state_dict()

    def loop(train):
        def run(repeat: int) -> float:
            torch.manual_seed(repeat)
            gan = GAN(DCGANGenerator(), DCGANDiscriminator()).to(device)
            gan.load_state_dict(initial)
            train(gan, images, epochs, device)
            rng = torch.Generator().manual_seed(0)
            return fid(test, sample(gan.generator, 2000, rng).cpu())

        return run

    loops = {
        "conventional DataLoader": loop(train_conventional),
        "book (train_gan)": loop(train_book),
    }
    result = alternate(loops, len(images) * epochs, repeats, device)
    title = (
        f"DCGAN on {len(images):,} Fashion-MNIST images, {epochs} epoch(s), {repeats} repeats, "
        f"{device}"
    )
    return report(title, "images", "Fréchet distance", result)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-size", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default=None, help="cpu, cuda or mps (default: the best)")
    args = parser.parse_args()
    measure(args.train_size, args.epochs, args.repeats, args.device)

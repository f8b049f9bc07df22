"""DCGAN training throughput: the conventional DataLoader loop against the book's recipe.

Both train the networks of the DCGAN recipe (``RECIPES["dcgan"]``: generator and discriminator
of width 32, latent 64) on Fashion-MNIST images in [-1, 1] with Adam (lr 2e-4, betas
(0.5, 0.999)) and batches of 64, from the same initial weights, and keep the samples of the
fixed noise after every epoch. Only the loop differs:

- *conventional*, as in the DCGAN example most code copies: a ``Dataset`` whose ``__getitem__``
  turns one uint8 image into a float tensor and normalises it to [-1, 1], a shuffling
  ``DataLoader``, and the loop "discriminator on real, then on fake; generator on the same
  fakes" with ``BCEWithLogitsLoss`` against label tensors;
- *book*: the recipe's trainer ``train_gan`` (``genai_course.train.fit`` and ``gan_step``, which
  also scores the same fakes in the generator's step): the images on the device, batches sliced
  with a permutation, fused Adam, and the convolution weights laid out channels-last, where
  oneDNN and cuDNN run them fastest (``recipes._place``).

Reported: images per second (median, min and max over ``--repeats`` alternating runs), the
ratio, and the Fréchet distance of 2,000 samples to 2,000 test images (the book's classifier
features, ``genai_course.metrics.fid``) that each run reaches.

    python -m benchmarks.dcgan_throughput [--train-size 10000] [--epochs 1] [--repeats 3]
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn
from torch.utils.data import DataLoader

from benchmarks.harness import Benchmark, ImagesOnAccess, compare, main
from genai_course.config import seed_everything
from genai_course.data import load_fashion_mnist
from genai_course.gan import GAN, sample
from genai_course.metrics import fid
from genai_course.train.recipes import RECIPES, GANSettings, build_gan, gan_data

RECIPE = RECIPES["dcgan"]
BETAS = (0.5, 0.999)  # DCGAN's, as the recipe's Adam
SAMPLES = 2000  # images on each side of the Fréchet distance


@dataclass(frozen=True)
class Data:
    images: torch.Tensor  # (N, 28, 28) uint8: what the conventional Dataset converts on access
    scaled: torch.Tensor  # (N, 1, 28, 28) in [-1, 1]: the recipe's data, gan_data(settings)
    test: torch.Tensor  # (SAMPLES, 28, 28) in [0, 1]: what the samples are compared with


def load(settings: GANSettings, device: torch.device) -> Data:
    images = load_fashion_mnist("train").images[: settings.train_size]
    test = load_fashion_mnist("test").images[:SAMPLES].float() / 255
    return Data(images, gan_data(settings), test)


def frechet_distance(gan: GAN, test: torch.Tensor) -> float:
    """The Fréchet distance of ``SAMPLES`` samples of the fixed seed 0 to the test images."""
    return fid(test, sample(gan.G, SAMPLES, generator=torch.Generator().manual_seed(0)).cpu())


def conventional(data: Data, settings: GANSettings, seed: int, device: torch.device) -> float:
    """The DataLoader loop; returns the Fréchet distance its generator reaches."""
    seed_everything(seed)
    gan = build_gan(settings).to(device)  # the recipe's initial weights under this seed
    G, D = gan.G, gan.D
    dataset = ImagesOnAccess(data.images, lambda x: ((x - 0.5) / 0.5)[None])  # (1, 28, 28)
    loader = DataLoader(dataset, batch_size=settings.batch_size, shuffle=True)
    opt_d = torch.optim.Adam(D.parameters(), lr=settings.lr, betas=BETAS)
    opt_g = torch.optim.Adam(G.parameters(), lr=settings.lr, betas=BETAS)
    criterion, snapshots = nn.BCEWithLogitsLoss(), []
    for _ in range(settings.epochs):
        gan.train()
        for real in loader:
            real = real.to(device)  # (B, 1, 28, 28)
            D.zero_grad()
            label = torch.full((len(real),), 1.0, device=device)
            criterion(D(real), label).backward()
            fake = G(torch.randn(len(real), G.latent_dim, device=device))
            label.fill_(0.0)
            criterion(D(fake.detach()), label).backward()
            opt_d.step()
            G.zero_grad()
            label.fill_(1.0)
            criterion(D(fake), label).backward()
            opt_g.step()
        gan.eval()  # what the recipe keeps after every epoch
        snapshots.append(gan.snapshot())
    return frechet_distance(gan, data.test)


def book(data: Data, settings: GANSettings, seed: int, device: torch.device) -> float:
    """The recipe; returns the Fréchet distance its generator reaches."""
    trained = RECIPE.train(settings, data=data.scaled, seed=seed, device=device.type)
    return frechet_distance(trained.model, data.test)


def measure(
    train_size: int = 10_000, epochs: int = 1, repeats: int = 3, device: str | None = None
) -> dict:
    """Train with both loops, alternating; print the table and return its summary."""
    settings = replace(RECIPE.quick, train_size=train_size, epochs=epochs)
    return compare(Benchmark(
        f"DCGAN on {train_size:,} Fashion-MNIST images", "images", "Fréchet distance", RECIPE,
        settings, load, units=lambda data: len(data.images), conventional=conventional,
        book=book,
    ), repeats, device)  # fmt: skip


if __name__ == "__main__":
    main(measure, __doc__)

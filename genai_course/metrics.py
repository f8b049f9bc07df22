r"""Measuring generative models (the evaluation chapter).

* **Likelihood.** Negative log-likelihoods are in nats per example. Dividing
  by the number of dimensions :math:`D` and by :math:`\ln 2` gives *bits per
  dimension*, which compares models across data sizes (Theis et al., 2016).
* **Fréchet distance** between Gaussians fitted to features of real and
  generated images, the features coming from :class:`FashionClassifier`, a
  small CNN trained here on Fashion-MNIST (Inception features, the usual
  choice for photographs, mean little on 28 x 28 grey images).
* **Precision and recall** with k-nearest-neighbour manifolds
  (Kynkäänniemi et al., 2019): quality and diversity as two numbers.
* **Mode coverage** on 2-D mixtures, and a **memorisation** check.

Retrain the classifier from scratch with its recipe,
``GENAI_COURSE_DEVICE=cpu python -m genai_course.train classifier --profile full
--save FILE`` (about five minutes on two CPU cores, seeded: the procedure that
made the shipped weights), and load that file with
``load_classifier(FILE)``. To replace the shipped weights, save to
``genai_course/weights/fashion_classifier.pt`` and update ``WEIGHTS_SHA256`` below.
"""

from __future__ import annotations

import hashlib
import math
import numbers
import operator
import os
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from torch import nn

from genai_course.config import check_positive_int
from genai_course.device import get_device

# -- likelihood units ------------------------------------------------------------


def bits_per_dim(nll_nats: float | torch.Tensor, num_dims: int) -> float | torch.Tensor:
    r"""Bits per dimension of an NLL in nats: :math:`\mathrm{NLL} / (D \ln 2)`.

    (Nats to bits: divide by :math:`\ln 2`. Per example to per dimension:
    divide by :math:`D`, e.g. 784 for a 28 x 28 image.) ``nll_nats``: a number, a tensor or
    a NumPy array, real and never NaN (an infinite NLL, a probability of 0, is allowed).
    """
    if isinstance(nll_nats, torch.Tensor | np.ndarray):
        values = torch.as_tensor(nll_nats)
        if values.is_complex():
            raise TypeError("nll_nats must be real, got a complex tensor or array")
        if values.is_floating_point() and torch.isnan(values).any():
            raise ValueError("nll_nats contains NaN")
    elif isinstance(nll_nats, numbers.Real):
        if math.isnan(nll_nats):
            raise ValueError("nll_nats is NaN")
    else:
        raise TypeError(
            f"nll_nats must be a number, a tensor or an array, got {type(nll_nats).__name__}"
        )
    try:
        dims = operator.index(num_dims)  # an int or a NumPy integer
    except TypeError:
        dims = 0
    if isinstance(num_dims, bool) or dims < 1:
        raise ValueError(f"num_dims must be a positive int, got {num_dims!r}")
    return nll_nats / (dims * math.log(2))


# -- the feature extractor -------------------------------------------------------

WEIGHTS = "fashion_classifier.pt"
WEIGHTS_SHA256 = "3d3791e21e6877701b50814deaba55036d7b7d16deb5bbce4172dfcf55457744"
PIXEL_MEAN, PIXEL_STD = 0.2860, 0.3530  # of the Fashion-MNIST training images in [0, 1]


def as_images(images, name: str = "images") -> torch.Tensor:
    """Images as floats in [0, 1] of shape (N, 1, 28, 28).

    Takes (N, 28, 28), (N, 784) or (N, 1, 28, 28); uint8 (0..255) or floats in [0, 1].
    """
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(images).__name__}")
    shape = tuple(images.shape)
    if images.ndim == 2 and shape[1] == 784:
        images = images.reshape(-1, 1, 28, 28)
    elif images.ndim == 3 and shape[1:] == (28, 28):
        images = images[:, None]
    elif not (images.ndim == 4 and shape[1:] == (1, 28, 28)):
        raise ValueError(
            f"{name} must have shape (N, 28, 28), (N, 784) or (N, 1, 28, 28); got {shape}"
        )
    if images.dtype == torch.uint8:
        return images.float() / 255
    if not images.is_floating_point():
        raise TypeError(f"{name} must be uint8 or floating point, got {images.dtype}")
    if torch.isnan(images).any():
        raise ValueError(f"{name} contains NaN")
    if images.numel() and (images.min() < 0 or images.max() > 1):
        raise ValueError(
            f"{name} must be in [0, 1] (or uint8); got values from {images.min().item():.3g} "
            f"to {images.max().item():.3g}. Images in [-1, 1] map back with (x + 1) / 2"
        )
    return images.float()


class FashionClassifier(nn.Module):
    """A small CNN for Fashion-MNIST: three conv-ReLU-maxpool blocks
    (16, 32, 64 channels; 28 -> 14 -> 7 -> 3 pixels), a 128-unit hidden layer
    (the *features*), and the 10 class logits."""

    def __init__(self):
        super().__init__()

        def block(c_in: int, c_out: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))

        self.conv = nn.Sequential(block(1, 16), block(16, 32), block(32, 64), nn.Flatten())
        self.hidden = nn.Sequential(nn.Linear(64 * 3 * 3, 128), nn.ReLU())
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(128, 10))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Class logits, (N, 10), of images in any form :func:`as_images` takes."""
        return self.head(self._features(images))

    def _features(self, images: torch.Tensor) -> torch.Tensor:
        x = as_images(images).to(self.head[1].weight.device)  # (N, 1, 28, 28)
        x = (x - PIXEL_MEAN) / PIXEL_STD
        return self.hidden(self.conv(x))  # (N, 128)

    @torch.no_grad()
    def features(self, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        """The 128 penultimate activations of each image: (N, 128), in eval mode."""
        check_positive_int("batch_size", batch_size)
        x = as_images(images)  # (N, 1, 28, 28)
        if not len(x):
            return self.head[1].weight.new_zeros(0, 128)  # no images: no features
        was_training = self.training
        self.eval()
        out = torch.cat([self._features(b) for b in x.split(batch_size)])
        self.train(was_training)
        return out

    @torch.no_grad()
    def predict(self, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        """The most probable class of each image: (N,) int64."""
        logits = self.head[1](self.features(images, batch_size))  # the linear layer: no dropout
        return logits.argmax(-1)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_classifier(path: str | Path | None = None, device=None) -> FashionClassifier:
    """The shipped, trained :class:`FashionClassifier`, checked by SHA-256 and in eval mode.

    ``path`` loads another weights file (e.g. one you retrained); its
    checksum is then not checked against the shipped one.
    """
    if path is not None and not isinstance(path, str | os.PathLike):
        raise TypeError(f"path must be a str or a Path, got {type(path).__name__}")
    shipped = path is None
    path = (
        Path(path)
        if path is not None
        else Path(resources.files("genai_course") / "weights" / WEIGHTS)
    )
    if shipped and _sha256(path) != WEIGHTS_SHA256:
        raise ValueError(
            f"{path} does not have the SHA-256 of the shipped classifier weights: the file is "
            "corrupt or was changed. Reinstall the package, or retrain with "
            "`python -m genai_course.train classifier --profile full --save FILE` and pass "
            "path=FILE"
        )
    model = FashionClassifier()
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.to(device or get_device()).eval()


# -- Fréchet distance -------------------------------------------------------------


def feature_statistics(
    features: torch.Tensor, name: str = "features"
) -> tuple[torch.Tensor, torch.Tensor]:
    """The Gaussian fitted to rows of ``features`` (N, D): mean (D,) and
    (N - 1)-normalised covariance (D, D), in float64. Compute it once for a
    reference set and reuse it with :func:`frechet_distance`."""
    if not isinstance(features, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(features).__name__}")
    if features.ndim != 2:
        raise ValueError(f"{name} must have shape (N, D), got {tuple(features.shape)}")
    if len(features) < 2:
        raise ValueError(f"{name} has {len(features)} rows; a covariance needs at least 2")
    if features.is_complex():
        raise TypeError(f"{name} must be real, got a complex tensor")
    if not torch.isfinite(features).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    x = features.double()
    return x.mean(0), torch.cov(x.T).reshape(x.shape[1], x.shape[1])


def _finite_double(value, name: str) -> torch.Tensor:
    """``value`` as a finite float64 tensor, or an error naming ``name``."""
    tensor = torch.as_tensor(value)
    if tensor.is_complex():
        raise TypeError(f"{name} must be real, got a complex tensor")
    tensor = tensor.double()
    if not torch.isfinite(tensor).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return tensor


def _sqrt_psd(matrix: torch.Tensor) -> torch.Tensor:
    """Symmetric square root of a symmetric positive semi-definite matrix."""
    eigenvalues, vectors = torch.linalg.eigh(matrix)
    return (vectors * eigenvalues.clamp(min=0).sqrt()) @ vectors.T


def frechet_distance(mu1, cov1, mu2, cov2) -> float:
    r"""Fréchet (2-Wasserstein) distance between :math:`\mathcal{N}(\mu_1, \Sigma_1)`
    and :math:`\mathcal{N}(\mu_2, \Sigma_2)`, squared:

    .. math:: d^2 = \lVert \mu_1 - \mu_2 \rVert^2
       + \operatorname{tr}\big(\Sigma_1 + \Sigma_2 - 2 (\Sigma_1 \Sigma_2)^{1/2}\big).

    :math:`\operatorname{tr}(\Sigma_1\Sigma_2)^{1/2}` is computed as
    :math:`\sum_i \sqrt{\lambda_i}` over the eigenvalues of the symmetric
    :math:`\Sigma_1^{1/2} \Sigma_2 \Sigma_1^{1/2}` (same eigenvalues, and no
    complex round-off as with a general matrix square root).
    """
    mu1, cov1 = _finite_double(mu1, "mu1"), _finite_double(cov1, "cov1")
    mu2, cov2 = _finite_double(mu2, "mu2"), _finite_double(cov2, "cov2")
    dim = mu1.shape[-1] if mu1.ndim == 1 else -1
    for name, cov in (("cov1", cov1), ("cov2", cov2)):
        if cov.shape != (dim, dim) or mu2.shape != mu1.shape:
            raise ValueError(
                f"mu1 and mu2 must be vectors of one length D and cov1, cov2 (D, D) matrices; "
                f"got {tuple(mu1.shape)}, {tuple(cov1.shape)}, {tuple(mu2.shape)}, "
                f"{tuple(cov2.shape)}"
            )
        if not torch.allclose(cov, cov.T, rtol=1e-6, atol=1e-10):
            raise ValueError(f"{name} must be symmetric")
        smallest = torch.linalg.eigvalsh(cov).min().item() if dim > 0 else 0.0
        if not smallest >= -1e-8 * max(cov.abs().max().item(), 1.0):  # also catches NaN
            raise ValueError(
                f"{name} must be a covariance (positive semi-definite); "
                f"its smallest eigenvalue is {smallest:.3g}"
            )
    root1 = _sqrt_psd(cov1)
    middle = root1 @ cov2 @ root1
    trace_root = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp(min=0).sqrt().sum()
    distance = ((mu1 - mu2) ** 2).sum() + cov1.trace() + cov2.trace() - 2 * trace_root
    return max(distance.item(), 0.0)


def fid(real_images, fake_images, classifier: FashionClassifier | None = None) -> float:
    """Fréchet distance between the classifier features of two sets of images.

    The estimate is biased: it depends on the number of images (smaller sets
    give larger values). Compare models only at equal numbers of images,
    and say how many.
    """
    if classifier is None:
        classifier = load_classifier()
    elif not callable(getattr(classifier, "features", None)):
        raise TypeError(f"classifier must be a FashionClassifier (or have its features method), "
                        f"got {type(classifier).__name__}")  # fmt: skip
    real = classifier.features(as_images(real_images, "real_images"))
    fake = classifier.features(as_images(fake_images, "fake_images"))
    return frechet_distance(
        *feature_statistics(real, "real_images"), *feature_statistics(fake, "fake_images")
    )


# -- precision and recall --------------------------------------------------------


def _check_points(
    points, name: str, like: torch.Tensor | None = None, like_name: str = "", *,
    dtype: torch.dtype | None = torch.float32,
):  # fmt: skip
    """Rows of points (N, D) as ``dtype`` (None: a floating dtype kept, others float32),
    finite; as wide as ``like`` if given."""
    if not isinstance(points, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(points).__name__}")
    if points.is_complex():
        raise TypeError(f"{name} must be real, got a complex tensor")
    if points.ndim != 2 or len(points) == 0:
        raise ValueError(f"{name} must be a non-empty tensor of shape (N, D)")
    if not torch.isfinite(points).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    if like is not None and points.shape[1] != like.shape[1]:
        raise ValueError(
            f"{name} has {points.shape[1]} columns but {like_name} has {like.shape[1]}"
        )
    if dtype is None:
        dtype = points.dtype if points.is_floating_point() else torch.float32
    return points.to(dtype) if like is None else points.to(like.device, dtype)


def _check_k(k, most: int) -> None:
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= most:
        raise ValueError(f"k must be an int from 1 to {most}, got {k!r}")


def kth_neighbour_distance(points: torch.Tensor, k: int, chunk: int = 2048) -> torch.Tensor:
    """Distance from each point of ``points`` (N, D) to its k-th nearest other point: (N,).
    The distances are computed ``chunk`` points at a time."""
    points = _check_points(points, "points", dtype=None)  # float64 stays float64
    _check_k(k, len(points) - 1)  # k-th neighbour other than itself
    check_positive_int("chunk", chunk)
    radii = [
        torch.cdist(block, points).kthvalue(k + 1, dim=1).values  # k + 1: itself is at 0
        for block in points.split(chunk)
    ]
    return torch.cat(radii)


def _inside_any_ball(queries, centres, radii, chunk: int = 2048) -> torch.Tensor:
    """Whether each query lies within radius of at least one centre: (M,) bool."""
    return torch.cat(
        [(torch.cdist(block, centres) <= radii).any(dim=1) for block in queries.split(chunk)]
    )


def precision_recall(real_features, fake_features, k: int = 3) -> tuple[float, float]:
    """k-NN precision and recall (Kynkäänniemi et al., 2019).

    Around each real point draw a ball reaching its k-th nearest real
    neighbour; their union estimates the manifold of real data. *Precision*
    is the fraction of generated points inside it (quality); *recall* is the
    fraction of real points inside the same construction built on the
    generated points (diversity).
    """
    real = _check_points(real_features, "real_features")
    fake = _check_points(fake_features, "fake_features", real, "real_features")
    _check_k(k, min(len(real), len(fake)) - 1)  # k-th neighbour other than itself
    precision = _inside_any_ball(fake, real, kth_neighbour_distance(real, k)).float().mean()
    recall = _inside_any_ball(real, fake, kth_neighbour_distance(fake, k)).float().mean()
    return precision.item(), recall.item()


# -- mode coverage and memorisation ------------------------------------------------


def mode_coverage(samples, centres, scale: float) -> dict[str, float | int]:
    """For samples of a 2-D mixture with modes at ``centres`` (K, 2) and
    standard deviation ``scale``: a sample is *good* if it lies within
    3 x scale of its nearest centre; a mode is *covered* if some good sample
    is nearest to it. Returns ``modes`` (covered), ``total``, ``good_fraction``.
    """
    samples = _check_points(samples, "samples")
    if samples.shape[1] != 2:
        raise ValueError(f"samples must be 2-D points (N, 2), got {tuple(samples.shape)}")
    centres = _check_points(centres, "centres", samples, "samples")
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real) or not 0 < scale < math.inf:
        raise ValueError(f"scale must be a positive finite number, got {scale!r}")
    distance, nearest = torch.cdist(samples, centres).min(dim=1)  # (N,), (N,)
    good = distance <= 3 * scale
    covered = torch.unique(nearest[good]).numel()
    return {"modes": covered, "total": len(centres), "good_fraction": good.float().mean().item()}


def memorisation(fake, train, k: int = 1, *, held_out=None) -> dict[str, float]:
    """Distances from generated points to their k-th nearest training point.

    A model that copies its training data puts its samples much closer to
    training points than new data from the same distribution lies. Pass
    ``held_out`` (real points not used for training) to get that baseline,
    ``ratio`` = median fake distance / median held-out distance (well below 1
    means copying) and ``copied_fraction``, the fraction of generated points
    closer to the training set than 99 % of held-out points are (about 0.01
    for a model that does not copy; it catches a model that copies only
    sometimes, which the median hides). Points are rows (N, D); flatten
    images first.
    """
    fake = _check_points(fake, "fake")
    train = _check_points(train, "train", fake, "fake")
    _check_k(k, len(train))

    def distances(points: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [torch.cdist(b, train).kthvalue(k, dim=1).values for b in points.split(2048)]
        )

    fake_distances = distances(fake)
    result = {"fake_median": fake_distances.median().item()}
    if held_out is not None:
        held_distances = distances(_check_points(held_out, "held_out", fake, "fake"))
        result["held_out_median"] = held_distances.median().item()
        if result["held_out_median"] == 0:
            raise ValueError(
                "held_out lies on the training points (its median distance to them is 0): "
                "held-out points must not be training points"
            )
        result["ratio"] = result["fake_median"] / result["held_out_median"]
        close = fake_distances < held_distances.quantile(0.01)
        result["copied_fraction"] = close.float().mean().item()
    return result

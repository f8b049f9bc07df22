import json
import math

import numpy as np
import pytest
import scipy.linalg
import torch

from genai_course import metrics
from genai_course.metrics import (
    FashionClassifier,
    bits_per_dim,
    frechet_distance,
    memorisation,
    mode_coverage,
    precision_recall,
)


def test_bits_per_dim():
    assert bits_per_dim(784 * math.log(2), 784) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="num_dims must be a positive int"):
        bits_per_dim(1.0, 0)
    with pytest.raises(ValueError, match="num_dims must be a positive int, got True"):
        bits_per_dim(1.0, True)
    assert bits_per_dim(784 * math.log(2), np.int64(784)) == pytest.approx(1.0)


# -- Fréchet distance ------------------------------------------------------------------


def random_gaussian(dim, seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(dim, dim))
    return rng.normal(size=dim), a @ a.T / dim + 0.1 * np.eye(dim)


def reference_distance(mu1, cov1, mu2, cov2):
    """The textbook formula with scipy's general matrix square root."""
    root = scipy.linalg.sqrtm(cov1 @ cov2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(cov1 + cov2 - 2 * root))


@pytest.mark.parametrize("dim", [1, 2, 10, 64])
def test_frechet_distance_matches_scipy_sqrtm(dim):
    mu1, cov1 = random_gaussian(dim, 1)
    mu2, cov2 = random_gaussian(dim, 2)
    ours = frechet_distance(*map(torch.from_numpy, (mu1, cov1, mu2, cov2)))
    assert ours == pytest.approx(reference_distance(mu1, cov1, mu2, cov2), rel=1e-8)
    assert ours == pytest.approx(
        frechet_distance(*map(torch.from_numpy, (mu2, cov2, mu1, cov1))), rel=1e-10
    )  # symmetric


def test_frechet_distance_of_diagonal_gaussians_is_the_sum_over_coordinates():
    # for diagonal covariances: sum_d (m1 - m2)^2 + (s1 - s2)^2
    m1, m2 = torch.tensor([0.0, 1.0, 2.0]), torch.tensor([1.0, 1.0, -1.0])
    s1, s2 = torch.tensor([1.0, 2.0, 0.5]), torch.tensor([3.0, 2.0, 0.5])
    expected = ((m1 - m2) ** 2 + (s1 - s2) ** 2).sum().item()
    assert frechet_distance(m1, torch.diag(s1**2), m2, torch.diag(s2**2)) == pytest.approx(expected)


def test_frechet_distance_is_zero_for_equal_inputs_even_when_singular():
    mu, cov = random_gaussian(20, 3)
    assert frechet_distance(
        torch.from_numpy(mu), torch.from_numpy(cov), torch.from_numpy(mu), torch.from_numpy(cov)
    ) == pytest.approx(0, abs=1e-8)
    x = torch.randn(5, 20, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    singular = torch.cov(x.T)  # rank 4 in 20 dimensions
    assert frechet_distance(x.mean(0), singular, x.mean(0), singular) == pytest.approx(0, abs=1e-8)


def test_frechet_distance_names_bad_shapes():
    with pytest.raises(ValueError, match=r"cov1, cov2 \(D, D\) matrices"):
        frechet_distance(torch.zeros(3), torch.eye(2), torch.zeros(3), torch.eye(3))
    with pytest.raises(ValueError, match="cov2 must be symmetric"):
        frechet_distance(
            torch.zeros(2), torch.eye(2), torch.zeros(2), torch.tensor([[1.0, 1.0], [0.0, 1.0]])
        )
    with pytest.raises(ValueError, match="cov1 must be a covariance .* eigenvalue is -1"):
        frechet_distance(torch.zeros(2), -torch.eye(2), torch.zeros(2), torch.eye(2))


# -- precision and recall ------------------------------------------------------------


def grid_points(offset=0.0, n=10):
    """An n x n grid of unit spacing: the k-th neighbour distances are known."""
    g = torch.stack(torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij"), -1)
    return g.reshape(-1, 2).float() + offset


def test_precision_recall_of_known_point_clouds():
    real = grid_points()
    assert precision_recall(real, real.clone(), k=3) == (1.0, 1.0)
    far = grid_points(offset=100.0)
    assert precision_recall(real, far, k=3) == (0.0, 0.0)
    # "sharp but one corner": all samples are real-looking, few real points are covered
    corner = real[(real[:, 0] < 3) & (real[:, 1] < 3)]
    precision, recall = precision_recall(real, corner, k=3)
    assert precision == 1.0 and recall < 0.25
    # "diverse but sloppy": a wider grid covers every real point, most of it lies off the data
    wide = grid_points(offset=-5.0, n=20)
    precision, recall = precision_recall(real, wide, k=3)
    assert precision < 0.5 and recall == 1.0


def test_precision_recall_names_bad_arguments():
    with pytest.raises(ValueError, match="k must be an int from 1"):
        precision_recall(torch.zeros(3, 2), torch.zeros(3, 2), k=3)
    with pytest.raises(ValueError, match="fake_features has 3 columns but real_features has 2"):
        precision_recall(torch.zeros(5, 2), torch.zeros(5, 3))
    with pytest.raises(
        ValueError, match=r"fake_features must be a non-empty tensor of shape \(N, D\)"
    ):
        precision_recall(torch.zeros(5, 2), torch.zeros(0, 2))
    with pytest.raises(ValueError, match="real_features contains NaN"):
        precision_recall(torch.full((5, 2), math.nan), torch.zeros(5, 2))
    with pytest.raises(TypeError, match="fake_features must be a torch.Tensor, got ndarray"):
        precision_recall(torch.zeros(5, 2), np.zeros((5, 2)))
    with pytest.raises(ValueError, match="k must be an int from 1 to 4, got True"):
        precision_recall(torch.zeros(5, 2), torch.zeros(5, 2), k=True)


# -- mode coverage and memorisation ----------------------------------------------------


def test_mode_coverage_on_hand_made_samples():
    angles = torch.arange(8) * (2 * math.pi / 8)
    centres = torch.stack([2 * angles.cos(), 2 * angles.sin()], 1)  # 8 modes on a ring
    near_three = centres[[0, 0, 1, 5]] + 0.01
    stray = torch.tensor([[0.0, 0.0], [10.0, 10.0]])
    result = mode_coverage(torch.cat([near_three, stray]), centres, scale=0.05)
    assert result == {"modes": 3, "total": 8, "good_fraction": pytest.approx(4 / 6)}
    with pytest.raises(ValueError, match="scale must be a positive finite number"):
        mode_coverage(near_three, centres, scale=0)
    with pytest.raises(ValueError, match=r"samples must be 2-D points \(N, 2\), got \(4, 3\)"):
        mode_coverage(torch.zeros(4, 3), torch.zeros(8, 3), scale=0.1)
    with pytest.raises(ValueError, match="centres has 3 columns but samples has 2"):
        mode_coverage(near_three, torch.zeros(8, 3), scale=0.1)


def test_memorisation_flags_copies():
    g = torch.Generator().manual_seed(0)
    train, held_out = torch.randn(500, 10, generator=g), torch.randn(200, 10, generator=g)
    honest = memorisation(torch.randn(200, 10, generator=g), train, held_out=held_out)
    copies = memorisation(train[:200] + 1e-3, train, held_out=held_out)
    assert 0.8 < honest["ratio"] < 1.2 and honest["copied_fraction"] < 0.05
    assert copies["ratio"] < 0.01 and copies["copied_fraction"] == 1.0
    with pytest.raises(ValueError, match="held_out has 9 columns but fake has 10"):
        memorisation(train[:5], train, held_out=held_out[:, :9])
    # a model that copies one sample in five: the median misses it, the fraction does not
    some = memorisation(torch.cat([train[:40] + 1e-3, held_out[40:]]), train, held_out=held_out)
    assert some["ratio"] > 0.8 and some["copied_fraction"] >= 0.2
    assert set(memorisation(held_out, train)) == {"fake_median"}


# -- the shipped classifier --------------------------------------------------------------


def test_shipped_classifier_is_accurate_on_the_test_split():
    from genai_course.data import load_fashion_mnist

    test = load_fashion_mnist("test")
    classifier = metrics.load_classifier(device="cpu")
    accuracy = (classifier.predict(test.images) == test.labels).float().mean()
    assert accuracy >= 0.91  # recorded in genai_course/weights/fashion_classifier.json
    features = classifier.features(test.images[:5])
    assert features.shape == (5, 128) and (features >= 0).all()


def test_tampered_weights_are_refused(tmp_path, monkeypatch):
    shipped = metrics.resources.files("genai_course") / "weights" / metrics.WEIGHTS
    tampered = tmp_path / "genai_course" / "weights"
    tampered.mkdir(parents=True)
    data = bytearray(shipped.read_bytes())
    data[-1] ^= 0xFF
    (tampered / metrics.WEIGHTS).write_bytes(bytes(data))
    monkeypatch.setattr(metrics.resources, "files", lambda package: tmp_path / package)
    with pytest.raises(ValueError, match="does not have the SHA-256 of the shipped classifier"):
        metrics.load_classifier()


def test_classifier_inputs_are_checked():
    model = FashionClassifier()
    with pytest.raises(ValueError, match=r"images must have shape \(N, 28, 28\)"):
        model.predict(torch.zeros(2, 32, 32))
    with pytest.raises(ValueError, match=r"\(x \+ 1\) / 2"):
        model.features(torch.full((2, 28, 28), -1.0))
    with pytest.raises(ValueError, match="images contains NaN"):
        model.features(torch.full((2, 28, 28), math.nan))
    assert model.predict(torch.zeros(3, 784)).shape == (3,)


def test_fid_needs_two_images():
    with pytest.raises(ValueError, match="real_images has 1 rows; a covariance needs at least 2"):
        metrics.fid(torch.zeros(1, 28, 28), torch.zeros(5, 28, 28), classifier=FashionClassifier())


def test_shipped_record_matches_the_shipped_weights():
    folder = metrics.resources.files("genai_course") / "weights"
    record = json.loads((folder / "fashion_classifier.json").read_text())
    assert record["sha256"] == metrics.WEIGHTS_SHA256
    assert record["test_accuracy"] >= 0.91


def test_fid_is_the_frechet_distance_of_the_feature_statistics():
    classifier = FashionClassifier()  # untrained is enough: fid is a composition
    g = torch.Generator().manual_seed(0)
    real, fake = torch.rand(50, 28, 28, generator=g), torch.rand(60, 28, 28, generator=g) ** 2
    by_hand = frechet_distance(
        *metrics.feature_statistics(classifier.features(real)),
        *metrics.feature_statistics(classifier.features(fake)),
    )
    assert metrics.fid(real, fake, classifier) == pytest.approx(by_hand)
    mu, cov = metrics.feature_statistics(torch.tensor([[1.0, 2.0], [3.0, 6.0]]))
    torch.testing.assert_close(mu, torch.tensor([2.0, 4.0], dtype=torch.float64))
    torch.testing.assert_close(cov, torch.tensor([[2.0, 4.0], [4.0, 8.0]], dtype=torch.float64))

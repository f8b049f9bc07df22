import math

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from genai_course.metrics import bits_per_dim
from genai_course.pixels import IndependentBernoulli, categorical_bits_per_dim
from genai_course.train import fit


# |eta| <= 15: beyond, scipy's log(1 - theta) loses digits that ours keeps
@settings(max_examples=50, deadline=None)
@given(
    eta=hnp.arrays(np.float64, (2, 3), elements=st.floats(-15, 15)),
    x=hnp.arrays(np.int8, (4, 2, 3), elements=st.integers(0, 1)),
)
def test_log_prob_equals_scipy(eta, x):
    model = IndependentBernoulli((2, 3)).double()
    with torch.no_grad():
        model.eta.copy_(torch.from_numpy(eta))
    ours = model.log_prob(torch.from_numpy(x).double())
    theta = 1 / (1 + np.exp(-eta))
    reference = stats.bernoulli.logpmf(x, theta).sum(axis=(1, 2))
    np.testing.assert_allclose(ours.detach().numpy(), reference, rtol=1e-9, atol=1e-9)


def test_mle_is_the_pixel_mean_and_gradient_descent_finds_it():
    g = torch.Generator().manual_seed(0)
    theta = torch.rand(4, 4, generator=g) * 0.8 + 0.1
    x = (torch.rand(5000, 4, 4, generator=g) < theta).float()
    mle = IndependentBernoulli.from_data(x)
    torch.testing.assert_close(mle.probs, x.mean(0))

    torch.manual_seed(0)
    model = IndependentBernoulli((4, 4))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    fit(model, optimizer, x, lambda xb: -model.log_prob(xb), epochs=20, batch_size=500)
    torch.testing.assert_close(model.probs, mle.probs, atol=0.01, rtol=0)
    gap = (model.log_prob(x).mean() - mle.log_prob(x).mean()).item()
    assert -1e-3 < gap <= 1e-6  # the MLE is the maximum


def test_smoothing_keeps_unseen_pixels_possible():
    train = torch.zeros(10, 2, 2)
    train[:, 0, 0] = 1
    test = torch.ones(1, 2, 2)
    assert IndependentBernoulli.from_data(train).log_prob(test).item() == -math.inf
    smoothed = IndependentBernoulli.from_data(train, smoothing=1.0)
    assert smoothed.probs[1, 1].item() == pytest.approx(1 / 12)
    assert math.isfinite(smoothed.log_prob(test).item())
    assert IndependentBernoulli.from_data(train).log_prob(train[:1]).item() == 0.0  # certain


def test_sample_frequencies_match_probs():
    model = IndependentBernoulli((3,))
    with torch.no_grad():
        model.eta.copy_(torch.logit(torch.tensor([0.1, 0.5, 0.9])))
    x = model.sample(20_000, generator=torch.Generator().manual_seed(0))
    assert x.shape == (20_000, 3)
    torch.testing.assert_close(x.mean(0), torch.tensor([0.1, 0.5, 0.9]), atol=0.01, rtol=0)


def test_log_prob_refuses_grey_or_misshapen_input():
    model = IndependentBernoulli()
    with pytest.raises(ValueError, match="x must be binary"):
        model.log_prob(torch.full((1, 28, 28), 0.5))
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 28, 28\), got \(1, 784\)"):
        model.log_prob(torch.zeros(1, 784))
    with pytest.raises(ValueError, match="smoothing must be >= 0"):
        IndependentBernoulli.from_data(torch.zeros(2, 28, 28), smoothing=-1)


def test_bits_per_dim():
    assert bits_per_dim(784 * math.log(2), 784) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="dims must be a positive int"):
        bits_per_dim(1.0, 0)


def test_the_categorical_baseline_counts_each_pixels_grey_levels():
    train = torch.tensor([[[0, 7]], [[0, 7]], [[0, 9]]], dtype=torch.uint8)  # 3 images of 1 x 2
    test = torch.tensor([[[0, 9]]], dtype=torch.uint8)
    a = 0.5
    # pixel 1: level 0 seen 3 times of 3; pixel 2: level 9 once of 3
    expected = -(math.log2((3 + a) / (3 + 256 * a)) + math.log2((1 + a) / (3 + 256 * a))) / 2
    assert categorical_bits_per_dim(train, test, pseudocount=a) == pytest.approx(expected)
    # with no data to speak of, the baseline is the uniform distribution: 8 bits
    assert categorical_bits_per_dim(train, test, pseudocount=1e9) == pytest.approx(8.0)


def test_the_categorical_baseline_names_bad_input():
    images = torch.zeros(2, 3, 3, dtype=torch.uint8)
    with pytest.raises(TypeError, match="train must be a non-empty uint8 tensor"):
        categorical_bits_per_dim(images.float(), images)
    with pytest.raises(ValueError, match="images of one shape"):
        categorical_bits_per_dim(images, images[:, :2])
    with pytest.raises(ValueError, match="pseudocount must be a positive number"):
        categorical_bits_per_dim(images, images, pseudocount=0)

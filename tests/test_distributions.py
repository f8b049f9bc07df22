import math

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy import stats

from genai_course import distributions
from genai_course.distributions import (
    Bernoulli,
    Binomial,
    Categorical,
    Multinomial,
    MultivariateNormal,
    Normal,
)

TOL = dict(rtol=1e-10, atol=1e-10)
probability = st.one_of(
    st.sampled_from([0.0, 1.0, 1e-300, 1 - 1e-16]), st.floats(0, 1, allow_subnormal=False)
)


def simplex(k_min=2, k_max=6):
    """Probability vectors, some with zeros."""
    return (
        hnp.arrays(
            np.float64,
            st.integers(k_min, k_max),
            elements=st.one_of(st.just(0.0), st.floats(1e-3, 1)),
        )
        .filter(lambda w: w.sum() > 0)
        .map(lambda w: w / w.sum())
    )


def close(ours: torch.Tensor, reference) -> None:
    np.testing.assert_allclose(ours.numpy(), np.asarray(reference, dtype=np.float64), **TOL)


# -- agreement with scipy.stats --------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(p=probability, x=st.sampled_from([0.0, 1.0, -1.0, 0.5, 2.0]))
def test_bernoulli_matches_scipy(p, x):
    dist = Bernoulli(torch.tensor(p, dtype=torch.float64))
    close(dist.log_prob(x), stats.bernoulli.logpmf(x, p))
    close(dist.entropy(), stats.bernoulli.entropy(p))
    close(dist.prob(x), stats.bernoulli.pmf(x, p))


@settings(max_examples=150, deadline=None)
@given(n=st.integers(0, 300), p=probability, k=st.integers(-2, 305), fractional=st.booleans())
def test_binomial_matches_scipy(n, p, k, fractional):
    k = k + 0.5 if fractional else float(k)
    dist = Binomial(n, torch.tensor(p, dtype=torch.float64))
    close(dist.log_prob(k), stats.binom.logpmf(k, n, p))


@settings(max_examples=30, deadline=None)
# scipy's own binomial pmf overflows for p below about 1e-300, so stay above it
@given(n=st.integers(0, 60), p=st.one_of(st.sampled_from([0.0, 1.0]), st.floats(1e-12, 1)))
def test_binomial_entropy_matches_scipy(n, p):
    close(Binomial(n, torch.tensor(p, dtype=torch.float64)).entropy(), stats.binom.entropy(n, p))


@settings(max_examples=100, deadline=None)
@given(probs=simplex(), x=st.integers(-1, 7))
def test_categorical_matches_scipy(probs, x):
    dist = Categorical(torch.from_numpy(probs))
    one_hot = np.eye(len(probs))[x] if 0 <= x < len(probs) else np.zeros(len(probs))
    close(dist.log_prob(float(x)), stats.multinomial.logpmf(one_hot, 1, probs))
    close(dist.entropy(), stats.entropy(probs))


@settings(max_examples=100, deadline=None)
@given(probs=simplex(), n=st.integers(0, 30), data=st.data())
def test_multinomial_matches_scipy(probs, n, data):
    counts = data.draw(hnp.arrays(np.int64, len(probs), elements=st.integers(0, n)))
    if data.draw(st.booleans()):  # make the counts sum to n half of the time
        counts = np.random.default_rng(n).multinomial(n, probs)
    dist = Multinomial(n, torch.from_numpy(probs))
    close(
        dist.log_prob(torch.from_numpy(counts).double()), stats.multinomial.logpmf(counts, n, probs)
    )


@settings(max_examples=20, deadline=None)
@given(probs=simplex(2, 4), n=st.integers(0, 12))
def test_multinomial_entropy_matches_scipy(probs, n):
    close(Multinomial(n, torch.from_numpy(probs)).entropy(), stats.multinomial.entropy(n, probs))


@settings(max_examples=100, deadline=None)
@given(
    loc=st.floats(-1e3, 1e3),
    scale=st.floats(1e-3, 1e3),
    x=st.one_of(st.floats(-1e4, 1e4), st.sampled_from([-1e150, 1e150])),
)
def test_normal_matches_scipy_far_into_the_tails(loc, scale, x):
    dist = Normal(torch.tensor(loc, dtype=torch.float64), torch.tensor(scale, dtype=torch.float64))
    ours = dist.log_prob(x)
    assert math.isfinite(ours.item())
    np.testing.assert_allclose(ours.numpy(), stats.norm.logpdf(x, loc, scale), rtol=1e-10)
    close(dist.entropy(), stats.norm.entropy(loc, scale))


@settings(max_examples=40, deadline=None)
@given(dim=st.integers(1, 5), seed=st.integers(0, 10_000))
def test_multivariate_normal_matches_scipy(dim, seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(dim, dim))
    cov = a @ a.T + 0.1 * np.eye(dim)
    loc = rng.normal(size=dim)
    x = rng.normal(size=(7, dim)) * 3
    dist = MultivariateNormal(torch.from_numpy(loc), torch.from_numpy(cov))
    reference = stats.multivariate_normal(loc, cov)
    close(dist.log_prob(torch.from_numpy(x)), reference.logpdf(x).reshape(7))
    close(dist.entropy(), reference.entropy())


# -- exact in the default dtype (float32) at large n -----------------------------------
# the book's users write Binomial(10**6, 0.5), in float32; lgamma(n + 1) ~ 1.3e7 there,
# so log n! - log k! - log (n - k)! in float32 kept no digit of a log-pmf near -7

large_n = st.one_of(st.integers(0, 2000), st.integers(10**5, 10**6), st.just(10**6))


def held(dist_p: torch.Tensor) -> float:
    """The probability a float32 distribution holds: the reference must use it too."""
    return float(dist_p.double().item())


@settings(max_examples=80, deadline=None)
@given(n=large_n, p=st.floats(0, 1), data=st.data())
def test_binomial_log_prob_is_exact_in_float32_at_large_n(n, p, data):
    dist = Binomial(n, p)
    assert dist.p.dtype == torch.float32
    p = held(dist.p)
    sd = math.sqrt(n * p * (1 - p))
    near_the_mean = st.integers(max(0, int(n * p - 5 * sd)), min(n, int(n * p + 5 * sd) + 1))
    k = data.draw(st.one_of(st.integers(0, n), near_the_mean), label="k")
    ours = dist.log_prob(float(k))
    assert ours.dtype == torch.float32
    reference = stats.binom.logpmf(k, n, p)
    if reference == -math.inf:
        assert ours.item() == -math.inf
    else:
        np.testing.assert_allclose(ours.item(), reference, rtol=1e-5)


@settings(max_examples=12, deadline=None)
@given(n=large_n, p=st.floats(0, 1))
@example(n=10**6, p=0.5)
@example(n=10**6, p=1e-4)
def test_binomial_entropy_is_exact_in_float32_at_large_n(n, p):
    dist = Binomial(n, p)
    reference = stats.binom.entropy(n, held(dist.p))  # a sum over the whole support
    ours = dist.entropy()
    assert ours.dtype == torch.float32
    np.testing.assert_allclose(ours.item(), reference, rtol=1e-5, atol=1e-12)


def renormalised(probs: torch.Tensor) -> np.ndarray:
    """The probabilities a float32 multinomial computes with."""
    pi = probs.double().numpy()
    return pi / pi.sum(-1, keepdims=True)


@settings(max_examples=8, deadline=None)
@given(probs=simplex(2, 3), n=large_n)
def test_multinomial_entropy_is_exact_in_float32_at_large_n(probs, n):
    dist = Multinomial(n, torch.tensor(probs, dtype=torch.float32))
    ours = dist.entropy()
    assert ours.dtype == torch.float32 and ours.item() >= 0
    reference = stats.multinomial.entropy(n, renormalised(dist.probs))
    np.testing.assert_allclose(ours.item(), reference, rtol=1e-5, atol=1e-12)


def test_multinomial_entropy_of_the_report():
    # float32 gave 5.17 here (scipy: 4.18), and a negative entropy at n = 10**6
    np.testing.assert_allclose(
        Multinomial(1000, [0.5, 0.5]).entropy().item(), 4.179668908635904, rtol=1e-6
    )
    np.testing.assert_allclose(
        Multinomial(10**6, [0.5, 0.5]).entropy().item(), stats.binom.entropy(10**6, 0.5), rtol=1e-6
    )


@settings(max_examples=30, deadline=None)
@given(probs=simplex(2, 4), n=large_n, seed=st.integers(0, 2**32 - 1))
def test_multinomial_log_prob_is_exact_in_float32_at_large_n(probs, n, seed):
    dist = Multinomial(n, torch.tensor(probs, dtype=torch.float32))
    pi = renormalised(dist.probs)
    x = np.random.default_rng(seed).multinomial(n, pi)
    ours = dist.log_prob(torch.tensor(x, dtype=torch.float32))
    assert ours.dtype == torch.float32
    np.testing.assert_allclose(ours.item(), stats.multinomial.logpmf(x, n, pi), rtol=1e-5)


@pytest.mark.parametrize("variance", [1e2, 1e3, 1e4, 1e5])
@pytest.mark.parametrize("p", [0.5, 0.1, 1e-3, 0.97])
def test_entropy_series_error_is_below_its_bound(variance, p, monkeypatch):
    """Above a variance of 1e5 the entropy is a series with error < 0.1 / variance**2;
    checked here against the exact sum below that, where the error is larger."""
    n = torch.tensor(float(round(variance / (p * (1 - p)))), dtype=torch.float64)
    dist = Binomial(n, torch.tensor(p, dtype=torch.float64))
    variance = dist.variance.item()
    monkeypatch.setattr(distributions, "SERIES_VARIANCE", math.inf)
    exact = dist.entropy().item()
    monkeypatch.setattr(distributions, "SERIES_VARIANCE", 0.0)
    series = dist.entropy().item()
    assert abs(series - exact) <= 0.1 / variance**2 + 1e-13
    # and the leading term is the normal approximation 1/2 log(2 pi e n p (1 - p))
    assert abs(series - 0.5 * math.log(2 * math.pi * math.e * variance)) < 1 / variance


def test_entropy_at_huge_n_is_the_normal_approximation():
    f64 = torch.float64
    n, p = 10**15, 0.3
    variance = n * p * (1 - p)
    normal = 0.5 * math.log(2 * math.pi * math.e * variance)
    ours = Binomial(torch.tensor(float(n), dtype=f64), torch.tensor(p, dtype=f64)).entropy()
    assert abs(ours.item() - normal) < 1e-12
    # a multinomial: 1/2 log((2 pi e n)^(K - 1) prod_k pi_k), up to O(1/n)
    pi = [0.2, 0.3, 0.5]
    normal = 0.5 * (2 * math.log(2 * math.pi * math.e * n) + sum(map(math.log, pi)))
    ours = Multinomial(n, torch.tensor(pi, dtype=f64)).entropy()
    assert abs(ours.item() - normal) < 1e-12
    # float32 holds n = 10**9 exactly
    ours = Binomial(10**9, 0.5).entropy()
    np.testing.assert_allclose(ours.item(), 0.5 * math.log(2 * math.pi * math.e * 2.5e8), rtol=1e-6)


def test_a_count_that_float32_would_round_is_refused():
    with pytest.raises(ValueError, match=r"n = 16777217 rounds to 16777216\.0 in torch\.float32"):
        Binomial(2**24 + 1, 0.5)
    exact = Binomial(2**24 + 1, torch.tensor(0.5, dtype=torch.float64))  # float64 holds it
    assert exact.n.item() == 2**24 + 1
    with pytest.raises(ValueError, match=r"n must be at most 2\*\*53"):
        Multinomial(2**53 + 1, [0.5, 0.5])


def test_binomial_log_prob_gradient_is_the_score():
    # d/dp log p(k) = k / p - (n - k) / (1 - p), summed over k; torch.distributions agrees
    p = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    k = torch.tensor([0.0, 5.0, 20.0], dtype=torch.float64)
    Binomial(20, p).log_prob(k).sum().backward()
    expected = (k / 0.3 - (20 - k) / 0.7).sum()
    torch.testing.assert_close(p.grad, expected)
    theirs = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    torch.distributions.Binomial(20, probs=theirs).log_prob(k).sum().backward()
    torch.testing.assert_close(p.grad, theirs.grad)


def test_categorical_sample_defaults_to_one_draw_per_distribution():
    probs = torch.tensor([[0.2, 0.8], [0.5, 0.5], [1.0, 0.0]])
    one = Categorical(probs[0]).sample()
    assert one.shape == () and one.item() in (0.0, 1.0)
    draws = Categorical(probs).sample(generator=torch.Generator().manual_seed(0))
    expected = torch.multinomial(probs, 1, generator=torch.Generator().manual_seed(0))[:, 0]
    assert draws.shape == (3,) and torch.equal(draws, expected.float())
    assert draws[2] == 0  # category 1 has probability 0
    assert Categorical(probs).sample(4).shape == (4, 3)  # an int is one dimension


# -- dtype, broadcasting, moments ------------------------------------------------


def test_float64_in_float64_out_and_broadcasting():
    dist = Normal(torch.zeros(3, dtype=torch.float64), torch.ones(2, 1, dtype=torch.float64))
    assert dist.log_prob(0.5).shape == (2, 3) and dist.log_prob(0.5).dtype == torch.float64
    assert Bernoulli(0.3).p.dtype == torch.float32
    assert Binomial(torch.tensor([5, 10]), torch.tensor([[0.1], [0.9]])).log_prob(3).shape == (2, 2)
    probs = torch.tensor([[0.2, 0.8], [0.5, 0.5]], dtype=torch.float64)
    assert Categorical(probs).log_prob(torch.tensor([1.0, 0.0])).dtype == torch.float64


def test_mixed_parameters_take_the_wider_dtype():
    f64 = torch.float64
    assert Normal(0.0, torch.tensor(2.0, dtype=f64)).log_prob(0.5).dtype == f64
    assert Binomial(torch.tensor(5.0, dtype=f64), 0.3).log_prob(2).dtype == f64
    assert MultivariateNormal([0.0, 0.0], torch.eye(2, dtype=f64)).log_prob([0, 0]).dtype == f64


def test_float32_covariance_with_round_off_asymmetry_is_accepted():
    a = torch.randn(10, 10, generator=torch.Generator().manual_seed(0))
    cov = a @ a.T + torch.eye(10)  # float32: symmetric only up to round-off
    reference = stats.multivariate_normal(np.zeros(10), cov.double().numpy())
    x = torch.ones(10)
    ours = MultivariateNormal(torch.zeros(10), cov).log_prob(x)
    assert abs(ours.item() - reference.logpdf(x.numpy())) < 1e-4


def test_batched_binomial_entropy_and_integer_types_of_n():
    n = torch.tensor([3.0, 10.0], dtype=torch.float64)
    expected = [stats.binom(3, 0.2).entropy(), stats.binom(10, 0.2).entropy()]
    close(Binomial(n, 0.2).entropy(), expected)
    for count in (np.int64(3), torch.tensor(3)):
        assert Multinomial(count, [0.5, 0.5]).n == 3


SAMPLE = 200_000


@pytest.mark.parametrize(
    "dist",
    [
        Bernoulli(torch.tensor(0.3, dtype=torch.float64)),
        Binomial(20, torch.tensor(0.35, dtype=torch.float64)),
        Normal(torch.tensor(-2.0, dtype=torch.float64), torch.tensor(3.0, dtype=torch.float64)),
        Categorical(torch.tensor([0.1, 0.6, 0.3], dtype=torch.float64)),
        Multinomial(7, torch.tensor([0.1, 0.6, 0.3], dtype=torch.float64)),
    ],
    ids=lambda d: type(d).__name__,
)
def test_sample_moments_match_the_formulas(dist):
    """Fixed seed, tolerance five standard errors: cannot fail by chance."""
    x = dist.sample((SAMPLE,), generator=torch.Generator().manual_seed(0))
    if isinstance(dist, Categorical):
        x = torch.nn.functional.one_hot(x.long(), 3).double()  # moments of the one-hot vector
    standard_error = (dist.variance / SAMPLE).sqrt()
    assert (x.mean(0) - dist.mean).abs().le(5 * standard_error).all()
    # the variance of a sample variance is about (mu_4 - sigma^4) / N; 5 SE of it, bounded by 0.02
    assert torch.allclose(x.var(0), dist.variance, rtol=0.02, atol=1e-3)


def test_multivariate_normal_sampler_has_the_covariance():
    cov = torch.tensor([[2.0, 1.2], [1.2, 1.0]], dtype=torch.float64)
    dist = MultivariateNormal(torch.tensor([1.0, -1.0], dtype=torch.float64), cov)
    x = dist.sample((SAMPLE,), generator=torch.Generator().manual_seed(0))  # (N, 2)
    assert x.shape == (SAMPLE, 2)
    torch.testing.assert_close(x.mean(0), dist.mean, atol=0.02, rtol=0)
    torch.testing.assert_close(torch.cov(x.T), cov, atol=0.03, rtol=0)
    assert torch.equal(dist.variance, torch.diagonal(cov))


def test_sampling_is_reproducible_with_a_generator():
    dist = Normal(0.0, 1.0)
    a = dist.sample((5,), generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, dist.sample((5,), generator=torch.Generator().manual_seed(3)))


# -- bad parameters ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Bernoulli(1.2), r"p must be a probability in \[0, 1\]"),
        (lambda: Bernoulli(float("nan")), "p contains NaN"),
        (lambda: Binomial(-1, 0.5), "n must be a non-negative integer"),
        (lambda: Binomial(2.5, 0.5), "n must be a non-negative integer"),
        (lambda: Binomial(torch.tensor([1, 2, 3]), torch.tensor([0.1, 0.2])), "must broadcast"),
        (lambda: Categorical([0.5, 0.6]), "probs must sum to 1"),
        (lambda: Categorical([-0.5, 1.5]), "probs must be non-negative"),
        (lambda: Categorical(1.0), "probs must be a vector"),
        (lambda: Multinomial(3.0, [0.5, 0.5]), "n must be a non-negative int"),
        (lambda: Normal(0.0, 0.0), "scale must be finite and > 0"),
        (lambda: Normal(0.0, -1.0), "scale must be finite and > 0"),
        (lambda: Normal(0.0, math.inf), "scale must be finite and > 0"),
        (lambda: Normal(math.inf, 1.0), "loc must be finite"),
        (lambda: Bernoulli(-0.1), r"p must be a probability in \[0, 1\]"),
        (lambda: Multinomial(-2, [0.5, 0.5]), "n must be a non-negative int"),
        (lambda: Multinomial(True, [0.5, 0.5]), "n must be a non-negative int"),
        (
            lambda: MultivariateNormal(torch.zeros(4, 2), torch.eye(2).expand(5, 2, 2)),
            r"batch shapes of loc \(4, 2\) and cov \(5, 2, 2\) must broadcast",
        ),
        (lambda: Normal(torch.zeros(3), torch.ones(2)), "loc and scale must broadcast"),
        (
            lambda: MultivariateNormal(torch.zeros(2), torch.eye(3)),
            r"cov must have shape \(\.\.\., 2, 2\)",
        ),
        (
            lambda: MultivariateNormal(torch.zeros(2), torch.tensor([[1.0, 0.5], [0.0, 1.0]])),
            "symmetric",
        ),
        (
            lambda: MultivariateNormal(torch.zeros(2), torch.tensor([[1.0, 2.0], [2.0, 1.0]])),
            "positive definite",
        ),
        (
            lambda: Multinomial(2, [0.5, 0.5]).log_prob(torch.tensor([1.0, 1.0, 0.0])),
            "counts for the 2",
        ),
    ],
)
def test_bad_parameters_are_named(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_multivariate_normal_batched_covariances_and_many_points():
    rng = np.random.default_rng(1)
    covs = np.stack([a @ a.T + np.eye(3) for a in rng.normal(size=(4, 3, 3))])  # (4, 3, 3)
    loc = rng.normal(size=(4, 3))
    x = rng.normal(size=(2, 1, 3))  # broadcasts against the batch of 4
    ours = MultivariateNormal(torch.from_numpy(loc), torch.from_numpy(covs)).log_prob(
        torch.from_numpy(x)
    )
    reference = np.stack(
        [
            [stats.multivariate_normal(loc[b], covs[b]).logpdf(x[i, 0]) for b in range(4)]
            for i in range(2)
        ]
    )
    close(ours, reference)
    # one covariance, many points: solved at once, no copy of Sigma per point
    dist = MultivariateNormal(
        torch.zeros(784, dtype=torch.float64), torch.eye(784, dtype=torch.float64)
    )
    points = torch.zeros(10_000, 784, dtype=torch.float64)
    expected = -0.5 * 784 * math.log(2 * math.pi)
    torch.testing.assert_close(
        dist.log_prob(points), torch.full((10_000,), expected, dtype=torch.float64)
    )

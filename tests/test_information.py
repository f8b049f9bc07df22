import math

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from genai_course.distributions import Normal
from genai_course.information import (
    binary_cross_entropy_with_logits,
    cross_entropy,
    entropy,
    gaussian_kl,
    kl_divergence,
    softmax_cross_entropy,
)

TOL = dict(rtol=1e-10, atol=1e-12)


def simplex_pair():
    """Two probability vectors of the same length, with zeros in places."""
    weights = st.one_of(st.just(0.0), st.floats(1e-4, 1))
    return st.integers(2, 6).flatmap(
        lambda k: st.tuples(
            hnp.arrays(np.float64, k, elements=weights).filter(lambda w: w.sum() > 0),
            hnp.arrays(np.float64, k, elements=weights).filter(lambda w: w.sum() > 0),
        ).map(lambda pair: (pair[0] / pair[0].sum(), pair[1] / pair[1].sum()))
    )


@settings(max_examples=200, deadline=None)
@given(pq=simplex_pair(), base=st.sampled_from([None, 2.0]))
def test_discrete_measures_match_scipy(pq, base):
    p, q = pq
    pt, qt = torch.from_numpy(p), torch.from_numpy(q)
    np.testing.assert_allclose(entropy(pt, base=base), stats.entropy(p, base=base), **TOL)
    np.testing.assert_allclose(
        kl_divergence(pt, qt, base=base), stats.entropy(p, q, base=base), **TOL
    )
    # H(p, q) = H(p) + KL(p || q), infinite exactly where the KL is
    expected = stats.entropy(p, base=base) + stats.entropy(p, q, base=base)
    np.testing.assert_allclose(cross_entropy(pt, qt, base=base), expected, **TOL)
    assert kl_divergence(pt, qt) >= -1e-12
    assert kl_divergence(pt, pt) == pytest.approx(0.0, abs=1e-12)


def test_zero_conventions():
    p = torch.tensor([0.5, 0.5, 0.0], dtype=torch.float64)
    q = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    assert entropy(p, base=2).item() == pytest.approx(1.0)  # 0 log 0 = 0
    assert kl_divergence(p, q).item() == math.inf  # q = 0 < p
    assert kl_divergence(q, p).item() == pytest.approx(math.log(2))
    assert cross_entropy(p, q).item() == math.inf


def test_batched_over_the_last_axis():
    p = torch.tensor([[0.2, 0.8], [0.5, 0.5]], dtype=torch.float64)
    assert entropy(p).shape == (2,)
    with pytest.raises(ValueError, match="q must sum to 1"):
        kl_divergence(p, torch.tensor([0.5, 0.6]))
    with pytest.raises(ValueError, match="base must be > 0 and not 1"):
        entropy(p, base=1)


@settings(max_examples=100, deadline=None)
@given(
    params=hnp.arrays(np.float64, (4, 3), elements=st.floats(-5, 5)),
)
def test_gaussian_kl_matches_torch_distributions(params):
    mu_q, logvar_q, mu_p, logvar_p = torch.from_numpy(params)
    q = torch.distributions.Normal(mu_q, (0.5 * logvar_q).exp())
    p = torch.distributions.Normal(mu_p, (0.5 * logvar_p).exp())
    reference = torch.distributions.kl_divergence(q, p).sum(-1)
    torch.testing.assert_close(
        gaussian_kl(mu_q, logvar_q, mu_p, logvar_p), reference, rtol=1e-10, atol=1e-10
    )


def test_gaussian_kl_default_prior_is_the_vae_term_and_matches_monte_carlo():
    mu = torch.tensor([0.5, -1.0], dtype=torch.float64)
    logvar = torch.tensor([0.2, -0.7], dtype=torch.float64)
    vae_term = -0.5 * (1 + logvar - mu**2 - logvar.exp()).sum()
    torch.testing.assert_close(gaussian_kl(mu, logvar), vae_term)
    assert gaussian_kl(torch.zeros(3), torch.zeros(3)).item() == 0.0
    # Monte Carlo: E_q[log q(z) - log p(z)], fixed seed, within 5 standard errors
    q, p = Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0)
    z = q.sample((200_000,), generator=torch.Generator().manual_seed(0))
    terms = (q.log_prob(z) - p.log_prob(z.float()).double()).sum(-1)
    error = terms.std() / math.sqrt(len(terms))
    assert abs(terms.mean() - gaussian_kl(mu, logvar)) < 5 * error


@settings(max_examples=100, deadline=None)
@given(
    logits=hnp.arrays(
        np.float64, 8, elements=st.one_of(st.floats(-50, 50), st.sampled_from([-1e4, 1e4]))
    ),
    targets=hnp.arrays(np.float64, 8, elements=st.floats(0, 1)),
)
def test_bce_matches_torch_and_stays_finite(logits, targets):
    ours = binary_cross_entropy_with_logits(torch.from_numpy(logits), torch.from_numpy(targets))
    reference = F.binary_cross_entropy_with_logits(
        torch.from_numpy(logits), torch.from_numpy(targets), reduction="none"
    )
    assert torch.isfinite(ours).all()
    torch.testing.assert_close(ours, reference, rtol=1e-10, atol=1e-10)


def test_bce_refuses_targets_outside_0_1():
    with pytest.raises(ValueError, match=r"targets must be in \[0, 1\].*\(x \+ 1\) / 2"):
        binary_cross_entropy_with_logits(torch.zeros(3), torch.tensor([-1.0, 0.0, 1.0]))


@settings(max_examples=100, deadline=None)
@given(
    logits=hnp.arrays(
        np.float64, (5, 4), elements=st.one_of(st.floats(-50, 50), st.sampled_from([-1e4, 1e4]))
    ),
    labels=hnp.arrays(np.int64, 5, elements=st.integers(0, 3)),
)
def test_softmax_cross_entropy_matches_torch_and_stays_finite(logits, labels):
    logits, labels = torch.from_numpy(logits), torch.from_numpy(labels)
    ours = softmax_cross_entropy(logits, labels)
    assert torch.isfinite(ours).all()
    torch.testing.assert_close(
        ours, F.cross_entropy(logits, labels, reduction="none"), rtol=1e-10, atol=1e-10
    )


@pytest.mark.parametrize(
    ("labels", "error", "message"),
    [
        (torch.tensor([0, 3]), ValueError, r"labels must be in 0\.\.2"),
        (torch.tensor([0.0, 1.0]), TypeError, "integer class indices"),
        (torch.tensor([0, 1, 2]), ValueError, r"labels must have shape \(2,\)"),
    ],
)
def test_softmax_cross_entropy_names_bad_labels(labels, error, message):
    with pytest.raises(error, match=message):
        softmax_cross_entropy(torch.zeros(2, 3), labels)


def test_gaussian_kl_names_mismatched_shapes():
    with pytest.raises(ValueError, match=r"must broadcast; got shapes \[\(3,\), \(2,\)"):
        gaussian_kl(torch.zeros(3), torch.zeros(2))

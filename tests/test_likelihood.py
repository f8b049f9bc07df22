import math

import numpy as np
import pytest
import torch

from genai_course.distributions import Bernoulli, Normal
from genai_course.likelihood import (
    fit_bernoulli,
    fit_categorical,
    fit_multivariate_normal,
    fit_normal,
    likelihood,
    log_likelihood,
)
from genai_course.train.mle import fit_by_gradient


def normal_data(n=500, dim=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    shape = (n,) if dim is None else (n, dim)
    return 2.0 + 3.0 * torch.randn(shape, generator=g, dtype=torch.float64)


def test_the_product_underflows_and_the_sum_does_not():
    dist = Normal(torch.tensor(0.0, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64))
    few, many = normal_data(10), normal_data(2000)
    assert likelihood(dist, few).item() > 0
    torch.testing.assert_close(likelihood(dist, few).log(), log_likelihood(dist, few))
    assert likelihood(dist, many).item() == 0.0  # underflow
    assert math.isfinite(log_likelihood(dist, many).item())
    torch.testing.assert_close(log_likelihood(dist, many), dist.log_prob(many).sum())


def test_closed_form_fits_are_the_sample_statistics():
    x = normal_data()
    fitted = fit_normal(x)
    np.testing.assert_allclose(fitted.loc.item(), x.numpy().mean(), rtol=1e-12)
    np.testing.assert_allclose(fitted.scale.item(), x.numpy().std(ddof=0), rtol=1e-12)

    x2 = normal_data(300, dim=3)
    mvn = fit_multivariate_normal(x2)
    np.testing.assert_allclose(mvn.covariance.numpy(), np.cov(x2.numpy().T, bias=True), rtol=1e-10)

    coins = torch.tensor([1, 0, 1, 1, 0, 1, 1, 1])
    assert fit_bernoulli(coins).p.item() == pytest.approx(6 / 8)
    cat = fit_categorical(torch.tensor([0, 2, 2, 3, 2]), num_classes=4)
    torch.testing.assert_close(cat.probs, torch.tensor([0.2, 0.0, 0.6, 0.2]))


def test_the_mle_maximises_the_log_likelihood():
    x = normal_data()
    best = log_likelihood(fit_normal(x), x)
    for dloc, dscale in [(0.05, 0), (-0.05, 0), (0, 0.05), (0, -0.05)]:
        other = Normal(fit_normal(x).loc + dloc, fit_normal(x).scale + dscale)
        assert log_likelihood(other, x) < best


def test_fit_by_gradient_finds_the_closed_form():
    x = normal_data()
    dist, history = fit_by_gradient(
        lambda loc, log_scale: Normal(loc, log_scale.exp()),
        {"loc": 0.0, "log_scale": 0.0},
        x,
        lr=0.05,
        steps=600,
    )
    closed = fit_normal(x)
    assert dist.loc.item() == pytest.approx(closed.loc.item(), abs=1e-3)
    assert dist.scale.item() == pytest.approx(closed.scale.item(), abs=1e-3)
    assert history.steps["loss"][-1] < history.steps["loss"][0]
    bern, _ = fit_by_gradient(
        lambda logit: Bernoulli(torch.sigmoid(logit)), {"logit": 0.0}, torch.tensor([1.0, 1, 0, 1])
    )
    assert bern.p.item() == pytest.approx(0.75, abs=1e-3)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: fit_normal(torch.tensor([])), "x is empty"),
        (lambda: log_likelihood(Normal(0.0, 1.0), []), "data is empty"),
        (lambda: fit_normal(torch.tensor([1.0, float("nan")])), "NaN or infinite"),
        (lambda: fit_normal(torch.ones(5)), "constant"),
        (lambda: fit_bernoulli(torch.tensor([0.0, 0.5])), "binary"),
        (lambda: fit_categorical(torch.tensor([0, 4]), num_classes=4), r"in 0\.\.3"),
        (lambda: fit_categorical(torch.tensor([0.0, 1.0]), num_classes=2), "integer class"),
        (lambda: fit_multivariate_normal(torch.zeros(5, 2)), "Pass jitter > 0"),
        (lambda: fit_multivariate_normal(normal_data(5), jitter=1e-3), r"shape \(N, D\)"),
    ],
)
def test_bad_data_is_refused(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_jitter_makes_a_degenerate_fit_a_density():
    x = torch.cat([normal_data(50, dim=2), torch.zeros(50, 1, dtype=torch.float64)], dim=1)
    dist = fit_multivariate_normal(x, jitter=1e-3)
    assert torch.isfinite(dist.log_prob(x)).all()

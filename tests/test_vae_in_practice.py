"""The chapter VAEs in practice: the beta-weighted loss, the Gaussian decoder, the per-image
Gaussian of the amortisation gap, and the VAE recipe's beta, warm-up and Gaussian decoder."""

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from genai_course.data import binarized_fashion_mnist, load_fashion_mnist
from genai_course.information import gaussian_kl
from genai_course.train.recipes import RECIPES
from genai_course.vae import (
    VAE,
    ConvVAE,
    elbo,
    elbo_estimate,
    gaussian_elbo,
    gaussian_log_likelihood,
    gaussian_negative_elbo,
    latent_usage,
    negative_elbo,
    optimize_posterior,
)

# -- the beta-weighted loss --------------------------------------------------------------------


def _model_and_images(input_dim=12, latent_dim=3):
    torch.manual_seed(0)
    model = VAE(input_dim=input_dim, hidden_dim=8, latent_dim=latent_dim).double()
    x = (torch.rand(5, input_dim, generator=torch.Generator().manual_seed(1)) > 0.5).double()
    return model, x


@pytest.mark.parametrize("beta", [0.0, 0.5, 2.0, 8.0])
def test_the_beta_loss_weights_the_kl_term_and_nothing_else(beta):
    model, x = _model_and_images()
    loss = negative_elbo(model, x, torch.Generator().manual_seed(3), beta=beta)
    logits, mu, logvar = model(x, torch.Generator().manual_seed(3))  # the same code
    reconstruction = -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)
    torch.testing.assert_close(loss, -(reconstruction - beta * gaussian_kl(mu, logvar)))


def test_beta_one_is_the_negative_elbo_bit_for_bit_and_a_tensor_beta_is_its_number():
    model, x = _model_and_images()
    default = negative_elbo(model, x, torch.Generator().manual_seed(3))
    bound = elbo(x, *model(x, torch.Generator().manual_seed(3)))
    assert torch.equal(default, -bound.elbo)
    assert torch.equal(negative_elbo(model, x, torch.Generator().manual_seed(3), beta=1), default)
    as_tensor = negative_elbo(model, x, torch.Generator().manual_seed(3),
                              beta=torch.tensor(0.25, dtype=torch.float64))  # fmt: skip
    as_float = negative_elbo(model, x, torch.Generator().manual_seed(3), beta=0.25)
    torch.testing.assert_close(as_tensor, as_float)


@pytest.mark.parametrize(
    ("beta", "error"),
    [(-0.5, ValueError), (math.nan, ValueError), (math.inf, ValueError), ("1", TypeError),
     ([1.0], TypeError), (True, TypeError), (torch.ones(2), ValueError)],
)  # fmt: skip
def test_a_bad_beta_is_named(beta, error):
    model, x = _model_and_images()
    for loss in (lambda: negative_elbo(model, x, beta=beta),
                 lambda: gaussian_negative_elbo(model, x / 2, 0.1, beta=beta)):  # fmt: skip
        with pytest.raises(error, match="beta"):
            loss()


# -- the Gaussian decoder ------------------------------------------------------------------------


@given(
    st.integers(1, 4),
    st.integers(1, 30),
    st.floats(0.01, 5.0),
    st.integers(0, 2**16),
    st.sampled_from([torch.float32, torch.float64]),
)
def test_the_gaussian_log_likelihood_is_a_normal_density(b, d, sigma, seed, dtype):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(b, d, generator=gen, dtype=dtype)
    x_mean = torch.rand(b, d, generator=gen, dtype=dtype)
    ours = gaussian_log_likelihood(x, x_mean, sigma)
    assert ours.shape == (b,) and ours.dtype == dtype
    by_torch = torch.distributions.Normal(x_mean, sigma).log_prob(x).sum(-1)
    by_scipy = stats.norm.logpdf(x.double().numpy(), x_mean.double().numpy(), sigma).sum(-1)
    tolerance = dict(rtol=1e-5, atol=1e-3) if dtype == torch.float32 else {}
    torch.testing.assert_close(ours, by_torch, **tolerance)
    np.testing.assert_allclose(ours.double().numpy(), by_scipy, rtol=1e-4 if tolerance else 1e-10)


def test_the_squared_error_is_the_gaussian_log_likelihood_up_to_a_factor_and_a_constant():
    gen = torch.Generator().manual_seed(0)
    x, x_mean = torch.rand(3, 784, generator=gen, dtype=torch.float64), torch.rand(
        3, 784, generator=gen, dtype=torch.float64)  # fmt: skip
    for sigma in (0.05, 0.3, 2.0):
        squared = ((x - x_mean) ** 2).sum(-1)
        constant = 784 / 2 * math.log(2 * math.pi * sigma**2)
        torch.testing.assert_close(-gaussian_log_likelihood(x, x_mean, sigma),
                                   squared / (2 * sigma**2) + constant)  # fmt: skip


@pytest.mark.parametrize("cls", [VAE, ConvVAE])
def test_the_gaussian_elbo_and_its_loss(cls):
    torch.manual_seed(0)
    model = (VAE(784, 16, 3) if cls is VAE else ConvVAE(3, width=2)).double()
    x = torch.rand(4, 28, 28, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    sigma = 0.2
    logits, mu, logvar = model(x, torch.Generator().manual_seed(3))
    bound = gaussian_elbo(x, logits, mu, logvar, sigma=sigma)
    x_hat = torch.sigmoid(logits).reshape(4, -1)  # the decoder's mean
    reference = torch.distributions.Normal(x_hat, sigma).log_prob(x.reshape(4, -1)).sum(-1)
    torch.testing.assert_close(bound.reconstruction, reference)
    torch.testing.assert_close(bound.kl, gaussian_kl(mu, logvar))
    torch.testing.assert_close(bound.elbo, reference - gaussian_kl(mu, logvar))
    # the loss with the same code, and a fixed sigma as a beta: 2 sigma^2 (-ELBO) is the squared
    # error plus 2 sigma^2 KL plus a constant
    loss = gaussian_negative_elbo(model, x, sigma, torch.Generator().manual_seed(3))
    torch.testing.assert_close(loss, -bound.elbo)
    squared = ((x.reshape(4, -1) - x_hat) ** 2).sum(-1)
    constant = sigma**2 * 784 * math.log(2 * math.pi * sigma**2)
    torch.testing.assert_close(2 * sigma**2 * loss,
                               squared + 2 * sigma**2 * bound.kl + constant)  # fmt: skip
    weighted = gaussian_negative_elbo(model, x, sigma, torch.Generator().manual_seed(3), beta=3.0)
    torch.testing.assert_close(weighted, -(bound.reconstruction - 3.0 * bound.kl))


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda x, m: gaussian_log_likelihood(x, x, 0.0), ValueError, "sigma"),
        (lambda x, m: gaussian_log_likelihood(x, x, -1.0), ValueError, "sigma"),
        (lambda x, m: gaussian_log_likelihood(x, x, math.nan), ValueError, "sigma"),
        (lambda x, m: gaussian_log_likelihood(x, x, torch.tensor(0.1)), TypeError, "sigma"),
        (lambda x, m: gaussian_log_likelihood(x, x[:, :5], 0.1), ValueError, "x_mean"),
        (lambda x, m: gaussian_log_likelihood(x, x[:1], 0.1), ValueError, "x_mean"),
        (lambda x, m: gaussian_log_likelihood(x.long(), x, 0.1), TypeError, "x must"),
        (lambda x, m: gaussian_log_likelihood(x, x.tolist(), 0.1), TypeError, "x_mean"),
        (lambda x, m: gaussian_log_likelihood(x[:0], x[:0], 0.1), ValueError, "non-empty"),
        (lambda x, m: gaussian_negative_elbo(m, x, 0.0), ValueError, "sigma"),
        (lambda x, m: gaussian_negative_elbo(m, x * 3, 0.1), ValueError, r"\[0, 1\]"),
        (lambda x, m: gaussian_negative_elbo("vae", x, 0.1), TypeError, "model"),
        (lambda x, m: gaussian_elbo(x, x, x[:2], x[:2], sigma=0.1), ValueError, "mu"),
    ],
)
def test_bad_input_to_the_gaussian_decoder_is_named(call, error, match):
    model, x = _model_and_images()
    with pytest.raises(error, match=match):
        call(x / 2, model)


# -- the per-image Gaussian --------------------------------------------------------------------


@pytest.fixture
def tiny():
    """A VAE with one latent dimension (so the ELBO of any q can be integrated on a grid) and a
    poor encoder: q too far right and too wide."""
    torch.manual_seed(0)
    model = VAE(input_dim=5, hidden_dim=8, latent_dim=1).double()
    with torch.no_grad():
        model.to_mu.bias += 1.0
        model.to_logvar.bias += 1.0
    x = torch.tensor([[1, 0, 1, 1, 0], [0, 0, 0, 1, 1], [1, 1, 1, 1, 1]], dtype=torch.float64)
    return model, x


def quadrature(model, x, mu, logvar, points=24_001):
    """log p(x) and the ELBO of q = N(mu, exp(logvar)), by quadrature over z: (B,) each."""
    z = torch.linspace(-12, 12, points, dtype=torch.float64)  # (G,)
    dz = (z[1] - z[0]).item()
    with torch.no_grad():
        logits = model.decode(z[:, None])  # (G, D)
        log_px_z = -F.binary_cross_entropy_with_logits(
            logits[None].expand(len(x), -1, -1), x[:, None].expand(-1, len(z), -1),
            reduction="none").sum(-1)  # (B, G)  # fmt: skip
        log_prior = stats.norm.logpdf(z.numpy())
        log_px = torch.logsumexp(log_px_z + torch.from_numpy(log_prior), 1) + math.log(dz)
        q = torch.from_numpy(stats.norm.pdf(z.numpy(), mu.numpy(), np.exp(0.5 * logvar.numpy())))
        return log_px, (q * log_px_z).sum(1) * dz - gaussian_kl(mu, logvar)


def test_the_elbo_estimate_of_any_gaussian_matches_quadrature(tiny):
    model, x = tiny
    gen = torch.Generator().manual_seed(0)
    mu = torch.randn(3, 1, generator=gen, dtype=torch.float64)
    logvar = torch.randn(3, 1, generator=gen, dtype=torch.float64)
    estimate = elbo_estimate(model, x, mu, logvar, samples=200_000, generator=gen)
    _, exact = quadrature(model, x, mu, logvar)
    torch.testing.assert_close(estimate, exact, atol=0.02, rtol=0)


def test_the_optimised_gaussian_is_the_best_gaussian_and_below_log_p(tiny):
    model, x = tiny
    before = [p.clone() for p in model.parameters()]
    with torch.no_grad():
        mu_enc, logvar_enc = model.encode(x)
    mu, logvar = optimize_posterior(model, x, steps=600, lr=0.05, samples=64,
                                    generator=torch.Generator().manual_seed(0))  # fmt: skip
    assert mu.shape == logvar.shape == (3, 1) and not mu.requires_grad
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert all(p.grad is None for p in model.parameters())  # the decoder was held fixed
    log_px, found = quadrature(model, x, mu, logvar)
    _, encoder = quadrature(model, x, mu_enc, logvar_enc)
    # the best Gaussian of each image, by a grid over (mu, log sigma^2)
    grid = torch.cartesian_prod(torch.linspace(-3, 3, 41), torch.linspace(-6, 1, 29)).double()
    best = torch.stack([
        quadrature(model, x[i : i + 1].expand(len(grid), -1), grid[:, :1], grid[:, 1:],
                   points=4801)[1].max()
        for i in range(len(x))
    ])  # fmt: skip
    assert (encoder < best - 0.3).all()  # the poor encoder leaves a gap to close
    assert (found > best - 0.02).all()  # optimize_posterior closes it
    assert (found < log_px).all()  # still a lower bound: the approximation gap is >= 0


def test_optimize_posterior_keeps_the_mode_and_refuses_bad_input(tiny):
    model, x = tiny
    model.train()
    optimize_posterior(model, x, steps=2)
    assert model.training
    model.eval()
    elbo_estimate(model, x, *model.encode(x), samples=3)
    assert not model.training
    mu, logvar = model.encode(x)
    bad = [
        (lambda: optimize_posterior("vae", x), TypeError, "model"),
        (lambda: optimize_posterior(model, x * 2), ValueError, r"\[0, 1\]"),
        (lambda: optimize_posterior(model, x, steps=0), ValueError, "steps"),
        (lambda: optimize_posterior(model, x, samples=1.5), ValueError, "samples"),
        (lambda: optimize_posterior(model, x, lr=0.0), ValueError, "lr"),
        (lambda: optimize_posterior(model, x, generator=0), TypeError, "generator"),
        (lambda: optimize_posterior(model, x[:0]), ValueError, "non-empty"),
        (lambda: elbo_estimate(model, x, mu[:2], logvar), ValueError, "mu"),
        (lambda: elbo_estimate(model, x, mu, logvar.reshape(-1)), ValueError, "logvar"),
        (lambda: elbo_estimate(model, x, mu, logvar.long()), TypeError, "logvar"),
        (lambda: elbo_estimate(model, x, mu * math.nan, logvar), ValueError, "mu"),
        (lambda: elbo_estimate(model, x, mu, logvar, samples=0), ValueError, "samples"),
    ]
    for call, error, match in bad:
        with pytest.raises(error, match=match):
            call()


# -- the recipe: beta, warm-up, the Gaussian decoder ---------------------------------------------

SMALL = {"train_size": 512, "epochs": 2, "batch_size": 64, "eval_size": 64}


def _settings(name="small_vae", **changes):
    return replace(RECIPES[name].settings("quick"), **{**SMALL, **changes})


def test_the_new_settings_default_to_the_vae_chapters_and_bad_values_are_named():
    default = RECIPES["vae"].quick
    assert (default.beta, default.warmup_epochs, default.decoder_sigma) == (1.0, 0, None)
    assert RECIPES["gaussian_vae"].quick.decoder_sigma == 0.1
    for change, match in [({"beta": -1.0}, "beta"), ({"beta": math.nan}, "beta"),
                          ({"warmup_epochs": -1}, "warmup_epochs"),
                          ({"warmup_epochs": 1.5}, "warmup_epochs"),
                          ({"decoder_sigma": 0.0}, "decoder_sigma"),
                          ({"decoder_sigma": "0.1"}, "decoder_sigma")]:  # fmt: skip
        with pytest.raises((ValueError, TypeError), match=match):
            replace(default, **change)
    with pytest.raises(ValueError, match="settings.beta"):
        RECIPES["vae"].train(_settings(beta=2.0), loss=negative_elbo)


def test_the_recipe_trains_with_beta_as_a_hand_written_loss_does():
    settings = _settings(beta=4.0)
    by_settings = RECIPES["small_vae"].train(settings).history
    by_hand = RECIPES["small_vae"].train(
        replace(settings, beta=1.0),
        loss=lambda model, x: negative_elbo(model, x, beta=4.0, check_values=False),
    ).history
    assert by_settings.steps == by_hand.steps and by_settings.epochs == by_hand.epochs


def test_the_warm_up_rises_linearly_over_its_epochs_then_holds():
    settings = _settings(beta=2.0, warmup_epochs=1)
    steps_per_epoch = math.ceil(512 / 64)
    weights = []

    def by_hand(model, x):  # beta_t = beta min(1, t / T), t the steps taken before this one
        weights.append(2.0 * min(1.0, len(weights) / steps_per_epoch))
        return negative_elbo(model, x, beta=weights[-1], check_values=False)

    warm = RECIPES["small_vae"].train(settings).history
    hand = RECIPES["small_vae"].train(replace(settings, beta=1.0, warmup_epochs=0),
                                      loss=by_hand).history  # fmt: skip
    assert weights[:3] == [0.0, 0.25, 0.5] and weights[steps_per_epoch:] == [2.0] * 8
    np.testing.assert_allclose(warm.steps["loss"], hand.steps["loss"], rtol=1e-5)
    np.testing.assert_allclose(warm.epochs["test -ELBO"], hand.epochs["test -ELBO"], rtol=1e-5)
    # and it changes the training: the first loss is the reconstruction alone
    cold = RECIPES["small_vae"].train(replace(settings, warmup_epochs=0)).history
    assert warm.steps["loss"][0] < cold.steps["loss"][0]


def test_a_resumed_warm_up_continues_where_it_stopped(tmp_path):
    settings = _settings(warmup_epochs=2, epochs=3)
    whole = RECIPES["small_vae"].train(settings)
    path = tmp_path / "run.pt"
    RECIPES["small_vae"].train(replace(settings, epochs=1), checkpoint=path)
    resumed = RECIPES["small_vae"].train(settings, checkpoint=path, resume=True)
    for a, b in zip(whole.model.state_dict().values(), resumed.model.state_dict().values(),
                    strict=True):  # fmt: skip
        assert torch.equal(a, b)
    assert whole.history.epochs == resumed.history.epochs


def test_the_gaussian_decoder_recipe_trains_on_grey_levels():
    trained = RECIPES["gaussian_vae"].train(_settings("gaussian_vae", epochs=2))
    history, model = trained.history, trained.model
    assert history.steps["loss"][-1] < history.steps["loss"][0]
    assert history.epochs["test -ELBO"][-1] < history.epochs["test -ELBO"][0]
    # the evaluation is the Gaussian ELBO of grey test images (not binarised): the same numbers
    grey = load_fashion_mnist("test").images[:64] / 255
    model.eval()
    with torch.no_grad():
        bound = gaussian_elbo(grey, *model(grey, torch.Generator().manual_seed(0)), sigma=0.1)
    assert history.epochs["test -ELBO"][-1] == pytest.approx(-bound.elbo.mean().item(), rel=1e-6)


def test_a_large_beta_switches_units_off():
    base = _settings(train_size=2048, epochs=2)
    x = binarized_fashion_mnist("test")[:512]
    active = {beta: int(latent_usage(RECIPES["small_vae"].train(replace(base, beta=beta)).model,
                                     x).active.sum()) for beta in (1.0, 30.0)}  # fmt: skip
    assert active[30.0] < active[1.0]


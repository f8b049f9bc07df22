import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

import genai_course.vae
from genai_course.information import gaussian_kl
from genai_course.train import fit
from genai_course.vae import (
    VAE,
    ConvVAE,
    elbo,
    iwae_log_likelihood,
    negative_elbo,
    reparameterize,
)

# -- a model small enough to integrate exactly ---------------------------------------
# latent_dim = 1, so log p(x) = log of an integral over one z, done on a fine grid


@pytest.fixture
def tiny():
    torch.manual_seed(0)
    model = VAE(input_dim=5, hidden_dim=8, latent_dim=1).double()
    with torch.no_grad():  # a poor encoder (q too far right, too wide): ELBO about 1 nat low
        model.to_mu.bias += 1.0
        model.to_logvar.bias += 1.0
    x = torch.tensor([[1, 0, 1, 1, 0], [0, 0, 0, 1, 1], [1, 1, 1, 1, 1]], dtype=torch.float64)
    return model, x


def exact(model, x):
    """log p(x), the ELBO's expectation and KL(q || p(z|x)) by quadrature over z: (B,) each."""
    z = torch.linspace(-12, 12, 48_001, dtype=torch.float64)  # (G,)
    dz = (z[1] - z[0]).item()
    with torch.no_grad():
        logits = model.decode(z[:, None])  # (G, D)
        # log p(x | z) for every example and grid point: (B, G)
        log_px_z = -F.binary_cross_entropy_with_logits(
            logits[None].expand(len(x), -1, -1),
            x[:, None].expand(-1, len(z), -1),
            reduction="none",
        ).sum(-1)
        log_joint = log_px_z - 0.5 * z**2 - 0.5 * math.log(2 * math.pi)  # (B, G)
        log_px = torch.logsumexp(log_joint, dim=1) + math.log(dz)  # (B,)
        mu, logvar = model.encode(x)  # (B, 1)
        log_q = -0.5 * (z - mu) ** 2 / logvar.exp() - 0.5 * logvar - 0.5 * math.log(2 * math.pi)
        q = log_q.exp()  # (B, G)
        expected_log_px_z = (q * log_px_z).sum(1) * dz
        elbo_value = expected_log_px_z - gaussian_kl(mu, logvar)
        log_posterior = log_joint - log_px[:, None]
        kl_to_posterior = (q * (log_q - log_posterior)).sum(1) * dz
    return log_px, elbo_value, kl_to_posterior


def test_log_likelihood_is_elbo_plus_kl_to_the_posterior(tiny):
    model, x = tiny
    log_px, elbo_value, kl_to_posterior = exact(model, x)
    assert (kl_to_posterior > 0.5).all()  # the gap the IWAE tests must close
    torch.testing.assert_close(elbo_value + kl_to_posterior, log_px, rtol=0, atol=1e-8)


def test_elbo_matches_a_direct_monte_carlo_computation(tiny):
    model, x = tiny
    _, elbo_value, _ = exact(model, x)
    n = 50_000
    rng = torch.Generator().manual_seed(0)
    with torch.no_grad():
        mu, logvar = model.encode(x)
        z = reparameterize(mu.expand(n, -1, -1), logvar.expand(n, -1, -1), rng)  # (n, B, 1)
        result = elbo(
            x.expand(n, -1, -1).reshape(-1, 5),
            model.decode(z.reshape(-1, 1)),
            mu.expand(n, -1, -1).reshape(-1, 1),
            logvar.expand(n, -1, -1).reshape(-1, 1),
        )
        # the direct estimate: log p(x|z) + log p(z) - log q(z|x), averaged over z ~ q
        sd = (0.5 * logvar).exp()
        log_pz = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
        log_qz = torch.distributions.Normal(mu, sd).log_prob(z).sum(-1)
        direct = result.reconstruction.reshape(n, -1) + log_pz - log_qz  # (n, B)
    # both estimates of the same expectation, within a few standard errors
    for estimate in (result.elbo.reshape(n, -1), direct):
        error = 4 * estimate.std(0) / math.sqrt(n)
        assert ((estimate.mean(0) - elbo_value).abs() < error).all()
    torch.testing.assert_close(result.elbo, result.reconstruction - result.kl)


def test_iwae_approaches_log_likelihood_and_rises_with_k(tiny):
    model, x = tiny
    log_px, elbo_value, _ = exact(model, x)
    rng = torch.Generator().manual_seed(0)
    means, errors = {}, {}
    for k in (1, 10, 100):
        # 1000 repeats of each estimate: (1000, B), averaged
        estimates = iwae_log_likelihood(model, x.repeat(1000, 1), k, generator=rng)
        means[k] = estimates.reshape(1000, -1).mean(0)
        errors[k] = 4 * estimates.reshape(1000, -1).std(0) / math.sqrt(1000)
    # k = 1 is the ELBO's estimate; the bound rises with k and stays below log p(x)
    assert ((means[1] - elbo_value).abs() < errors[1]).all()
    assert (means[1] < means[10]).all() and (means[10] < means[100]).all()
    assert (means[100] < log_px + errors[100]).all()
    # many samples, decoded seven at a time (one example per block, many chunks): log p(x)
    close = iwae_log_likelihood(model, x, 20_000, chunk_size=7, generator=rng)
    torch.testing.assert_close(close, log_px, rtol=0, atol=0.03)


def test_iwae_bound_is_above_the_elbo_on_an_untrained_model():
    torch.manual_seed(0)
    model = VAE(input_dim=16, hidden_dim=32, latent_dim=2)
    x = (torch.rand(64, 16) < 0.3).float()
    rng = torch.Generator().manual_seed(1)
    elbos = torch.stack([-negative_elbo(model, x, rng).detach() for _ in range(200)]).mean(0)
    bound = iwae_log_likelihood(model, x, 200, generator=rng)
    assert bound.shape == (64,)
    assert bound.mean() > elbos.mean()


# -- the pieces ---------------------------------------------------------------------


def test_the_kl_term_is_information_gaussian_kl(monkeypatch):
    mu, logvar = torch.randn(4, 3), torch.randn(4, 3)
    x, logits = torch.rand(4, 6), torch.randn(4, 6)
    torch.testing.assert_close(elbo(x, logits, mu, logvar).kl, gaussian_kl(mu, logvar))
    # the ELBO calls it, rather than a second copy of the formula
    monkeypatch.setattr(genai_course.vae, "gaussian_kl", lambda m, lv: torch.full((4,), 7.0))
    assert (elbo(x, logits, mu, logvar).kl == 7.0).all()


@given(st.floats(-5, 5), st.floats(-4, 4))
def test_reparameterize_gives_gradients_to_mu_and_logvar(m, lv):
    mu = torch.full((3, 2), m, dtype=torch.float64, requires_grad=True)
    logvar = torch.full((3, 2), lv, dtype=torch.float64, requires_grad=True)
    z = reparameterize(mu, logvar, torch.Generator().manual_seed(0))
    eps = (z - mu) / torch.exp(0.5 * logvar)
    z.sum().backward()
    torch.testing.assert_close(mu.grad, torch.ones_like(mu))
    torch.testing.assert_close(logvar.grad, 0.5 * torch.exp(0.5 * logvar) * eps.detach())


def test_reparameterize_draws_from_the_gaussian():
    mu, logvar = torch.tensor([1.0, -2.0]), torch.tensor([0.0, math.log(0.25)])
    z = reparameterize(mu.expand(100_000, 2), logvar.expand(100_000, 2))
    torch.testing.assert_close(z.mean(0), mu, atol=0.02, rtol=0)
    torch.testing.assert_close(z.std(0), torch.tensor([1.0, 0.5]), atol=0.01, rtol=0)
    first = reparameterize(mu, logvar, torch.Generator().manual_seed(3))
    assert torch.equal(first, reparameterize(mu, logvar, torch.Generator().manual_seed(3)))


@pytest.mark.parametrize("model", [VAE(), ConvVAE(latent_dim=8, width=4)], ids=["mlp", "conv"])
def test_shapes(model):
    for x in (torch.rand(5, 28, 28), torch.rand(5, 1, 28, 28), torch.rand(5, 784)):
        logits, mu, logvar = model(x)
        assert logits[0].numel() == 784 and len(logits) == 5
        assert mu.shape == logvar.shape == (5, model.latent_dim)
        assert negative_elbo(model, x).shape == (5,)
    samples = model.sample(6, generator=torch.Generator().manual_seed(0))
    assert len(samples) == 6 and samples[0].numel() == 784
    assert 0 <= samples.min() and samples.max() <= 1
    z0, z1 = torch.zeros(model.latent_dim), torch.ones(model.latent_dim)
    path = model.interpolate(z0, z1, steps=5)
    assert len(path) == 5
    with torch.no_grad():
        torch.testing.assert_close(path[0], torch.sigmoid(model.decode(z0[None]))[0])
        torch.testing.assert_close(path[-1], torch.sigmoid(model.decode(z1[None]))[0])
    assert model.training  # sample and interpolate leave the mode as it was


def test_training_raises_the_elbo():
    torch.manual_seed(0)
    prototypes = (torch.rand(4, 64) < 0.5).float()  # four "garments" of 64 pixels
    noise = (torch.rand(2000, 64) < 0.05).float()
    data = (prototypes[torch.arange(2000) % 4] + noise) % 2  # each with 5 % of pixels flipped
    model = VAE(input_dim=64, hidden_dim=64, latent_dim=2)
    before = negative_elbo(model, data).mean().item()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    history = fit(
        model, optimizer, data, lambda x: negative_elbo(model, x), epochs=10, batch_size=100
    )
    after = negative_elbo(model, data).mean().item()
    assert history.epochs["loss"][-1] < history.epochs["loss"][0]
    assert after < 0.5 * before
    # 5 % flips cost at least 64 H(0.05) = 12.7 nats; the -ELBO ends within 10 nats of that
    entropy = -64 * (0.05 * math.log(0.05) + 0.95 * math.log(0.95))
    assert after < entropy + 10


# -- errors that name the mistake ------------------------------------------------------


def test_targets_outside_zero_one_are_refused():
    model = VAE()
    x = torch.rand(4, 784) * 2 - 1  # images normalised to [-1, 1]
    logits, mu, logvar = model((x + 1) / 2)
    with pytest.raises(ValueError, match=r"x must be in \[0, 1\].*\(x \+ 1\) / 2"):
        elbo(x, logits, mu, logvar)
    with pytest.raises(ValueError, match=r"x must be in \[0, 1\]"):
        negative_elbo(model, x)
    with pytest.raises(ValueError, match=r"x must be in \[0, 1\]"):
        iwae_log_likelihood(model, x, 5)


def test_the_value_check_can_be_skipped_only_by_name_and_changes_nothing_else():
    model = VAE()
    x = (torch.rand(4, 784, generator=torch.Generator().manual_seed(0)) < 0.5).float()
    logits, mu, logvar = model(x)
    checked, unchecked = elbo(x, logits, mu, logvar), elbo(x, logits, mu, logvar,
                                                            check_values=False)  # fmt: skip
    for a, b in zip(checked, unchecked, strict=True):
        assert torch.equal(a, b)
    elbo(2 * x - 1, logits, mu, logvar, check_values=False)  # skipped: the caller vouches
    with pytest.raises(TypeError, match="floating-point"):  # the type is still checked
        elbo(x.long(), logits, mu, logvar, check_values=False)


def test_three_channel_images_are_refused():
    with pytest.raises(ValueError, match="2352 per example.*Three-channel"):
        VAE()(torch.rand(2, 3, 28, 28))
    with pytest.raises(ValueError, match="784 values each"):
        ConvVAE()(torch.rand(2, 32, 32))


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: VAE(latent_dim=0), ValueError, "latent_dim"),
        (lambda: VAE(hidden_dim=2.5), ValueError, "hidden_dim"),
        (lambda: ConvVAE(width=0), ValueError, "width"),
        (lambda: VAE().sample(0), ValueError, "n must"),
        (lambda: VAE().interpolate(torch.zeros(3), torch.zeros(20)), ValueError, "z0"),
        (lambda: VAE().interpolate(torch.zeros(20), torch.zeros(20), 0), ValueError, "steps"),
        (lambda: iwae_log_likelihood(VAE(), torch.rand(2, 784), 0), ValueError, "k must"),
        (lambda: VAE()(torch.randint(0, 2, (2, 784))), TypeError, "floating-point"),
        (lambda: reparameterize(torch.zeros(2, 3), torch.zeros(2, 4)), ValueError, "same shape"),
        (
            lambda: elbo(
                torch.rand(2, 784), torch.randn(2, 100), torch.zeros(2, 2), torch.zeros(2, 2)
            ),
            ValueError,
            "784 values per example but x_logits has 100",
        ),
        (
            lambda: elbo(torch.rand(2, 4), torch.randn(2, 4), torch.zeros(2, 2), torch.zeros(2, 3)),
            ValueError,
            "logvar must have the shape of mu",
        ),
    ],
)
def test_bad_arguments_are_named(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_modes_and_dtypes_are_kept():
    torch.manual_seed(0)
    model = ConvVAE(latent_dim=4, width=4).double().eval()
    x = (torch.rand(3, 28, 28) < 0.5).double()
    samples = model.sample(2, generator=torch.Generator().manual_seed(0))
    path = model.interpolate(torch.zeros(4), torch.ones(4), steps=3)
    assert samples.dtype == path.dtype == torch.float64
    bound = iwae_log_likelihood(model, x, 5, chunk_size=4)
    assert bound.shape == (3,) and torch.isfinite(bound).all()
    assert not model.training  # eval stays eval
    with pytest.raises(ValueError, match="x must be in"):
        iwae_log_likelihood(model.train(), x * 2, 5)
    assert model.training  # restored after an error too


def test_empty_unbatched_and_nan_inputs_are_named():
    with pytest.raises(ValueError, match="Add a batch dimension"):
        VAE()(torch.rand(28, 28))
    with pytest.raises(ValueError, match="784 values each"):
        VAE()(torch.rand(0, 784))
    with pytest.raises(ValueError, match="non-empty batch"):
        elbo(torch.rand(0, 4), torch.randn(0, 4), torch.zeros(0, 2), torch.zeros(0, 2))
    with pytest.raises(ValueError, match="non-empty batch"):
        iwae_log_likelihood(VAE(), torch.rand(0, 784), 5)
    x = torch.rand(2, 4)
    x[0, 0] = float("nan")
    with pytest.raises(ValueError, match="x contains NaN"):
        elbo(x, torch.randn(2, 4), torch.zeros(2, 2), torch.zeros(2, 2))


def test_latent_usage_finds_a_collapsed_dimension_and_matches_the_kl():
    torch.manual_seed(0)
    model = genai_course.vae.VAE(784, 64, 4).double()
    with torch.no_grad():
        model.to_mu.weight *= 20  # posterior means that move with the image
        for layer in (model.to_mu, model.to_logvar):  # dimension 2 ignores the image
            layer.weight[2] = 0
            layer.bias[2] = 0
    x = torch.rand(50, 28, 28, dtype=torch.float64)
    usage = genai_course.vae.latent_usage(model, x)
    mu, logvar = model.encode(x)
    assert torch.allclose(usage.kl.sum(), gaussian_kl(mu, logvar).mean())
    assert torch.allclose(usage.mean_variance, torch.from_numpy(mu.detach().numpy().var(0)))
    assert usage.kl[2] == 0 and usage.mean_variance[2] == 0
    assert usage.active.tolist() == [True, True, False, True]
    assert genai_course.vae.latent_usage(model, x, threshold=1e9).active.sum() == 0
    assert model.training  # left as it was


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        (("not a model", torch.rand(4, 784)), TypeError, "model must be a VAE"),
        ((None, torch.rand(1, 784)), ValueError, "at least 2 images"),
        ((None, torch.rand(4, 784) + 1), ValueError, r"x must be in \[0, 1\]"),
        ((None, torch.rand(4, 784), -0.1), ValueError, "threshold must be a number >= 0"),
        ((None, torch.rand(4, 784), True), ValueError, "threshold must be a number >= 0"),
    ],
)
def test_latent_usage_refuses_bad_input(args, error, match):
    model = genai_course.vae.VAE(784, 16, 2)
    args = tuple(model if a is None else a for a in args)
    with pytest.raises(error, match=match):
        genai_course.vae.latent_usage(*args)

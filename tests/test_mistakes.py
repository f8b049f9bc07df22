"""The appendix of common mistakes: each mistake shows its symptom, and each fix removes it."""

import math

import matplotlib.pyplot as plt
import pytest
import scipy.stats
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from genai_course.data import ring_of_gaussians
from genai_course.device import available_devices, get_device
from genai_course.distributions import Multinomial, Normal
from genai_course.gan import GAN, MLPDiscriminator, MLPGenerator, gan_step
from genai_course.information import gaussian_kl
from genai_course.likelihood import likelihood, log_likelihood
from genai_course.lstm import CharLSTM, generate
from genai_course.markov import CharVocab
from genai_course.metrics import mode_coverage
from genai_course.mistakes import (
    discriminator_accuracy,
    gradient_step_without_zero_grad,
    negative_elbo_with_tutorial_kl,
    sample_from_shifted_logits,
    tutorial_kl,
    two_factorial_multinomial_pmf,
    vae_loss_with_mean_bce,
)
from genai_course.train import fit, gradient_step
from genai_course.vae import VAE, elbo, latent_usage, negative_elbo
from genai_course.viz import image_grid

# -- A.1 the KL term ---------------------------------------------------------------------


def test_tutorial_kl_is_not_a_divergence():
    zeros = torch.zeros(3, 20)
    assert torch.equal(gaussian_kl(zeros, zeros), torch.zeros(3))
    assert torch.equal(tutorial_kl(zeros, zeros), torch.full((3,), -10.0))
    # smallest at log sigma^2 = 1 (sigma^2 = e), not at the prior's 1
    v = torch.linspace(-3, 3, 601)[:, None]
    assert v[tutorial_kl(torch.zeros_like(v), v).argmin()].item() == pytest.approx(1.0, abs=1e-6)
    assert v[gaussian_kl(torch.zeros_like(v), v).argmin()].item() == pytest.approx(0.0, abs=1e-6)


@settings(max_examples=50, deadline=None)
@given(
    mu=st.floats(-3, 3, allow_nan=False),
    logvar=st.floats(-3, 3, allow_nan=False),
)
def test_the_right_kl_is_never_negative_and_the_tutorial_one_differs(mu, logvar):
    m, v = torch.tensor([[mu]], dtype=torch.float64), torch.tensor([[logvar]], dtype=torch.float64)
    right = gaussian_kl(m, v).item()
    assert right >= -1e-12  # 0 up to rounding
    assert right == pytest.approx(0.5 * (mu**2 + math.exp(logvar) - 1 - logvar))
    wrong = tutorial_kl(m, v).item()
    assert wrong == pytest.approx(0.5 * (mu**2 + logvar**2 - 1) - logvar)


def test_the_wrong_vae_loss_differs_from_the_right_one_by_the_kl_terms_only():
    torch.manual_seed(0)
    model = VAE(input_dim=16, hidden_dim=8, latent_dim=3)
    x = torch.bernoulli(torch.full((5, 16), 0.4))
    wrong = negative_elbo_with_tutorial_kl(model, x, torch.Generator().manual_seed(1))
    right = negative_elbo(model, x, torch.Generator().manual_seed(1))
    _, mu, logvar = model(x, torch.Generator().manual_seed(1))
    torch.testing.assert_close(wrong - right, tutorial_kl(mu, logvar) - gaussian_kl(mu, logvar))


def test_training_with_the_tutorial_kl_pulls_the_encoder_variances_up():
    patterns = torch.bernoulli(torch.full((8, 16), 0.5), generator=torch.Generator().manual_seed(0))
    x = patterns.repeat(64, 1)  # (512, 16): eight binary images
    variance = {}
    for name, loss_fn in [("right", negative_elbo), ("tutorial", negative_elbo_with_tutorial_kl)]:
        torch.manual_seed(0)
        model = VAE(input_dim=16, hidden_dim=32, latent_dim=2)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        fit(model, optimizer, x, lambda b, m=model, f=loss_fn: f(m, b), epochs=20, batch_size=64)
        with torch.no_grad():
            _, _, logvar = model(patterns)
        variance[name] = logvar.exp().mean().item()
    # the tutorial formula is smallest at sigma^2 = e, the KL at sigma^2 = 1; the
    # reconstruction pulls both down, the right model's much further
    assert variance["tutorial"] > 0.8 and variance["right"] < 0.3


# -- A.2 binary cross-entropy on [-1, 1] -------------------------------------------------


def test_bce_with_targets_below_zero_falls_without_bound():
    logits = torch.tensor([-10.0, -100.0, -1000.0])
    loss = F.binary_cross_entropy_with_logits(logits, torch.full((3,), -1.0), reduction="none")
    assert (loss < 0).all() and loss[2] < loss[1] < loss[0]
    assert loss[2].item() == pytest.approx(-1000.0)
    fixed = F.binary_cross_entropy_with_logits(logits, torch.zeros(3), reduction="none")
    assert (fixed >= 0).all()  # targets (x + 1) / 2 = 0: a true cross-entropy


def test_elbo_refuses_targets_in_minus_one_one():
    x = torch.rand(4, 784) * 2 - 1
    with pytest.raises(ValueError, match=r"\(x \+ 1\) / 2"):
        elbo(x, torch.zeros(4, 784), torch.zeros(4, 2), torch.zeros(4, 2))


# -- A.3 colour images as 784 values -----------------------------------------------------


def test_colour_viewed_as_784_triples_the_batch_and_the_vae_refuses_it():
    colour = torch.rand(5, 3, 28, 28)
    seen = colour.view(-1, 784)
    assert seen.shape == (15, 784)
    assert torch.equal(seen[1], colour[0, 1].flatten())  # row 1: the green channel of image 0
    with pytest.raises(ValueError, match="Three-channel"):
        VAE()(colour)


# -- A.4 the discriminator that never learns ---------------------------------------------


def gan_discriminator_change(wrong: bool) -> float:
    points, _ = ring_of_gaussians(256, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    gan = GAN(MLPGenerator(2, 2, hidden_dim=16), MLPDiscriminator(2, hidden_dim=16))
    before = [p.detach().clone() for p in gan.D.parameters()]
    trains = gan.G if wrong else gan.D
    opt_d = torch.optim.Adam(trains.parameters(), lr=1e-3)
    opt_g = torch.optim.Adam(gan.G.parameters(), lr=1e-3)
    fit(gan, {"d": opt_d, "g": opt_g}, points, step=gan_step(gan, opt_d, opt_g), epochs=1,
        batch_size=32)  # fmt: skip
    return max(
        (p - q).abs().max().item()
        for p, q in zip(gan.D.parameters(), before, strict=True)
    )


def test_an_optimiser_over_the_wrong_parameters_leaves_the_discriminator_untouched():
    assert gan_discriminator_change(wrong=True) == 0.0
    assert gan_discriminator_change(wrong=False) > 1e-3


# -- A.5 the likelihood as a product -----------------------------------------------------


def test_the_product_likelihood_underflows_and_the_log_likelihood_does_not():
    data = torch.randn(1000, generator=torch.Generator().manual_seed(0))
    good, bad = Normal(0.0, 1.0), Normal(0.5, 2.0)
    assert likelihood(good, data).item() == 0.0 == likelihood(bad, data).item()
    assert log_likelihood(good, data) > log_likelihood(bad, data)
    reference = scipy.stats.norm(0, 1).logpdf(data.double().numpy()).sum()
    assert log_likelihood(good, data).item() == pytest.approx(reference, rel=1e-5)


# -- A.6 the two-factorial multinomial ---------------------------------------------------


def test_the_two_factorial_formula_is_right_for_two_categories_only():
    pi2, pi3 = [0.3, 0.7], [0.2, 0.3, 0.5]
    assert two_factorial_multinomial_pmf([2, 4], pi2) == pytest.approx(
        scipy.stats.multinomial(6, pi2).pmf([2, 4])
    )
    right = scipy.stats.multinomial(6, pi3).pmf([1, 2, 3])
    assert Multinomial(6, torch.tensor(pi3)).prob(torch.tensor([1.0, 2, 3])).item() == (
        pytest.approx(right, rel=1e-5)
    )
    assert two_factorial_multinomial_pmf([1, 2, 3], pi3) == pytest.approx(6 * right)  # x3! = 6
    outcomes = [[a, b, 6 - a - b] for a in range(7) for b in range(7 - a)]
    assert sum(scipy.stats.multinomial(6, pi3).pmf(x) for x in outcomes) == pytest.approx(1)
    # the wrong 'pmf' sums to E[x3!] under the true distribution, 1957/64
    assert sum(two_factorial_multinomial_pmf(x, pi3) for x in outcomes) == pytest.approx(1957 / 64)


# -- A.7 imshow of a flat batch ----------------------------------------------------------


def test_imshow_of_one_flat_image_fails_and_image_grid_explains_what_it_needs():
    flat = torch.rand(4, 784)
    with pytest.raises(TypeError, match="Invalid shape"):
        plt.imshow(flat[0].numpy())
    plt.close("all")
    with pytest.raises(ValueError, match=r"\(N, 784\)"):
        image_grid(flat[0])
    with pytest.raises(ValueError, match=r"\(x \+ 1\) / 2"):
        image_grid(flat * 2 - 1)
    image_grid(flat)  # (N, 784) is read as N images of 28 x 28


# -- A.8 a hard-coded device -------------------------------------------------------------


def test_a_device_this_machine_lacks_fails_and_get_device_names_one_it_has():
    # no machine has both CUDA and Apple's MPS, so one of them is always missing
    missing = "mps" if torch.cuda.is_available() else "cuda"
    assert missing not in available_devices()
    with pytest.raises((AssertionError, RuntimeError)):
        torch.zeros(3, device=missing)
    with pytest.raises(RuntimeError, match="available here"):
        get_device(missing)
    assert torch.zeros(3, device=get_device()).device.type == get_device().type


# -- A.9 sampling --------------------------------------------------------------------------


def test_temperature_zero_gives_nan_and_generate_refuses_it():
    logits = torch.tensor([2.0, 1.0, 0.5, -1.0])
    assert torch.isnan(F.softmax(logits / 0, dim=0)).all()
    vocab = CharVocab("to be or not")
    with pytest.raises(ValueError, match="greedy"):
        generate(CharLSTM(len(vocab)), vocab, "to", 5, temperature=0)


def test_shifted_logits_sample_the_wrong_distribution():
    logits = torch.tensor([2.0, 1.0, 0.5, -1.0])
    softmax = F.softmax(logits, dim=0)
    n = 50_000
    wrong = sample_from_shifted_logits(logits, n, generator=torch.Generator().manual_seed(0))
    right = torch.multinomial(
        softmax, n, replacement=True, generator=torch.Generator().manual_seed(0)
    )
    freq_wrong = torch.bincount(wrong, minlength=4) / n
    freq_right = torch.bincount(right, minlength=4) / n
    assert freq_wrong[3] == 0  # the least likely category is never drawn
    assert 0.5 * (freq_wrong - softmax).abs().sum() > 0.15
    assert (freq_right - softmax).abs().max() < 0.01


# -- A.10 gradients never zeroed ---------------------------------------------------------


def test_backward_accumulates_and_a_loop_without_zero_grad_does_not_converge():
    w = torch.tensor([1.0, -1.0], requires_grad=True)
    for _ in range(2):
        (w**2).sum().backward()
    torch.testing.assert_close(w.grad, 2 * (2 * w.detach()))  # twice one gradient

    gen = torch.Generator().manual_seed(0)
    X = torch.randn(200, 5, generator=gen)
    y = X @ torch.tensor([1.0, -2.0, 0.5, 3.0, 0.0])
    last = {}
    for zero in (True, False):
        model = torch.nn.Linear(5, 1, bias=False)
        torch.nn.init.zeros_(model.weight)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05)

        def loss(xb, yb, model=model):
            return (model(xb).squeeze(-1) - yb) ** 2

        step = gradient_step(loss, optimizer) if zero else (
            gradient_step_without_zero_grad(loss, optimizer))  # fmt: skip
        history = fit(model, optimizer, (X, y), step=step, epochs=100, batch_size=200)
        last[zero] = history.steps["loss"][-20:]
    assert max(last[True]) < 1e-3 and min(last[False]) > 0.1


# -- A.11 a mean binary cross-entropy plus a summed KL -----------------------------------


def mean_bce_and_elbo_terms(batch: int, pixels: int):
    """The wrong loss of a small float64 VAE on a batch, and the batch means of the right
    reconstruction and KL terms at the same draw of z."""
    torch.manual_seed(0)
    model = VAE(input_dim=pixels, hidden_dim=8, latent_dim=3).double()
    x = torch.bernoulli(torch.full((batch, pixels), 0.3, dtype=torch.float64))
    wrong = vae_loss_with_mean_bce(model, x, torch.Generator().manual_seed(1))
    bound = elbo(x, *model(x, torch.Generator().manual_seed(1)))
    return model, wrong, -bound.reconstruction.mean(), bound.kl.mean()


@pytest.mark.parametrize("batch, pixels", [(128, 784), (5, 784), (32, 16)])
def test_the_mean_bce_loss_is_a_beta_vae_with_beta_equal_to_batch_times_pixels(batch, pixels):
    _, wrong, reconstruction, kl = mean_bce_and_elbo_terms(batch, pixels)
    assert wrong.ndim == 0  # one number for the batch, not one per image
    # D * loss = mean reconstruction + beta * mean KL, with beta = B * D
    beta = ((pixels * wrong - reconstruction) / kl).item()
    assert beta == pytest.approx(batch * pixels, rel=1e-9)
    if (batch, pixels) == (128, 784):
        assert beta == pytest.approx(100_352, rel=1e-9)


def test_the_mean_bce_gradient_is_the_elbo_gradient_with_the_kl_scaled_by_beta():
    batch, pixels = 6, 784
    model, wrong, reconstruction, kl = mean_bce_and_elbo_terms(batch, pixels)
    params = list(model.parameters())
    g_wrong = torch.autograd.grad(pixels * wrong, params, retain_graph=True)
    g_beta = torch.autograd.grad(reconstruction + batch * pixels * kl, params, retain_graph=True)
    g_right = torch.autograd.grad(reconstruction + kl, params)
    for a, b in zip(g_wrong, g_beta, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
    gap = max((a - b).abs().max().item() for a, b in zip(g_wrong, g_right, strict=True))
    assert gap > 1.0  # not the gradient of the ELBO


def test_training_with_the_mean_bce_loss_collapses_every_latent_dimension():
    patterns = torch.bernoulli(torch.full((8, 16), 0.5), generator=torch.Generator().manual_seed(0))
    x = patterns.repeat(64, 1)  # (512, 16): eight binary images
    usage = {}
    for name, loss_fn in [("right", negative_elbo), ("mean BCE", vae_loss_with_mean_bce)]:
        torch.manual_seed(0)
        model = VAE(input_dim=16, hidden_dim=32, latent_dim=2)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        fit(model, optimizer, x, lambda b, m=model, f=loss_fn: f(m, b), epochs=20, batch_size=64)
        usage[name] = latent_usage(model, patterns)
    # beta = 64 * 16 = 1024: a nat of code costs more than any reconstruction can repay
    assert usage["mean BCE"].active.sum() == 0 and usage["mean BCE"].kl.sum() < 1e-2
    assert usage["right"].active.sum() >= 1 and usage["right"].kl.sum() > 1.0


# -- A.12 the discriminator's accuracy as a generator's quality --------------------------


def test_discriminator_accuracy_by_hand():
    real = torch.tensor([2.0, -1.0, 0.5, 3.0])  # right: 2.0, 0.5, 3.0 -> 3/4
    fake = torch.tensor([-3.0, 0.2])  # right: -3.0 -> 1/2
    assert discriminator_accuracy(real, fake) == pytest.approx(0.5 * (3 / 4 + 1 / 2))
    assert discriminator_accuracy(real[:, None], fake[:, None]) == pytest.approx(0.625)
    # a logit of 0 is C(x) = 1/2: predicted fake, as Keras thresholds C(x) > 1/2
    assert discriminator_accuracy(torch.zeros(3), torch.zeros(2)) == 0.5
    assert discriminator_accuracy(torch.tensor([1.0]), torch.tensor([-1.0])) == 1.0
    assert discriminator_accuracy(torch.tensor([-1.0]), torch.tensor([1.0])) == 0.0


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-5, 5, allow_nan=False), min_size=1, max_size=40))
def test_fakes_equal_to_the_real_points_score_exactly_one_half(logits):
    a = torch.tensor(logits, dtype=torch.float64)
    assert discriminator_accuracy(a, a) == 0.5  # any discriminator, a perfect generator


def test_a_stalled_discriminator_scores_one_half_for_any_generator():
    points, centres = ring_of_gaussians(2000, generator=torch.Generator().manual_seed(0))
    far_away = torch.full((2000, 2), 10.0)  # a generator collapsed far from the data

    def stalled(x):  # a discriminator that stopped learning: one logit for every x, (N,)
        return torch.full((len(x),), 0.3)

    assert mode_coverage(points, centres, 0.05)["modes"] == 8
    assert mode_coverage(far_away, centres, 0.05)["modes"] == 0
    for fakes in (points, far_away):
        assert discriminator_accuracy(stalled(points), stalled(fakes)) == 0.5


def test_gan_step_reports_the_discriminator_accuracy():
    real, _ = ring_of_gaussians(64, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    gan = GAN(MLPGenerator(2, 2, hidden_dim=16), MLPDiscriminator(2, hidden_dim=16))
    opt_d = torch.optim.Adam(gan.D.parameters(), lr=1e-3)
    opt_g = torch.optim.Adam(gan.G.parameters(), lr=1e-3)
    torch.manual_seed(1)
    with torch.no_grad():  # the logits the step sees, before it updates anything
        z = torch.randn(len(real), 2)
        expected = discriminator_accuracy(gan.D(real), gan.D(gan.G(z)))
    torch.manual_seed(1)  # the step draws the same z
    reported = gan_step(gan, opt_d, opt_g)(real)["d_accuracy"].item()
    assert reported == pytest.approx(expected)


@pytest.mark.parametrize(
    "real, fake, error, message",
    [
        ([0.5, -1.0], torch.zeros(2), TypeError, "real_logits"),
        (torch.zeros(2), torch.zeros(2, dtype=torch.int64), TypeError, "fake_logits"),
        (torch.zeros(2, 2), torch.zeros(2), ValueError, r"real_logits must have shape \(N,\)"),
        (torch.zeros(2), torch.zeros(0), ValueError, "fake_logits"),
        (torch.tensor([0.0, float("nan")]), torch.zeros(2), ValueError, "real_logits.*NaN"),
    ],
)
def test_discriminator_accuracy_refuses_what_is_not_logits(real, fake, error, message):
    with pytest.raises(error, match=message):
        discriminator_accuracy(real, fake)

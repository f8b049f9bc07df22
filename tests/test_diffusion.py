"""The diffusion chapter's package code: the forward process against its simulation, the
posterior and the bound against independent Gaussian algebra, the samplers against each other
and against Gaussian data whose best denoiser is known in closed form, flow matching, and the
U-Net's shapes."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from torch import nn

from genai_course.diffusion import (
    PointDenoiser,
    alpha_bars,
    bound_weights,
    cosine_betas,
    ddim_invert,
    ddim_sample,
    ddpm_sample,
    guided,
    linear_betas,
    noise_prediction_loss,
    noised,
    posterior,
    run_chain,
    snr,
    timesteps,
    variational_bound,
)
from genai_course.flow_matching import euler_sample, flow_matching_loss, straight_path
from genai_course.unet import UNet, time_features


class GaussianDenoiser(nn.Module):
    """The best noise prediction for data N(0, I): x_t is N(0, I) too, and
    E[eps | x_t] = sqrt(1 - alpha_bar_t) x_t."""

    num_classes = None

    def __init__(self, alpha_bar):
        super().__init__()
        self.alpha_bar = alpha_bar

    def forward(self, x, time, y=None):
        t = (time * len(self.alpha_bar)).round().long()  # (B,) in 1..T
        return (1 - self.alpha_bar[t - 1]).sqrt().to(x.dtype).reshape(-1, 1) * x


class GaussianVelocity(nn.Module):
    """The best velocity for data N(0, s^2) from noise N(0, 1) on straight paths:
    E[x1 - x0 | x_t] = (t s^2 - (1 - t)) / ((1 - t)^2 + t^2 s^2) x_t."""

    num_classes = None

    def __init__(self, s):
        super().__init__()
        self.s2 = s**2

    def forward(self, x, t, y=None):
        t = t.to(x.dtype).reshape(-1, 1)
        return (t * self.s2 - (1 - t)) / ((1 - t) ** 2 + t**2 * self.s2) * x


def test_the_schedules_follow_their_formulas():
    betas = linear_betas(1000)
    assert betas[0].item() == pytest.approx(1e-4) and betas[-1].item() == pytest.approx(0.02)
    assert linear_betas(250)[-1].item() == pytest.approx(0.08)  # scaled by 1000 / 250
    T, s = 1000, 0.008
    f = [math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2 for t in (0, 500, 1000)]
    ab = alpha_bars(cosine_betas(T))
    assert ab[499].item() == pytest.approx(f[1] / f[0], rel=1e-9)
    assert ab[-1].item() < 1e-4  # almost pure noise at T
    for schedule in (linear_betas(T), cosine_betas(T)):
        bars = alpha_bars(schedule)
        assert bool((bars[1:] < bars[:-1]).all())  # noise only grows
        assert bool((snr(bars)[1:] < snr(bars)[:-1]).all())


@given(seed=st.integers(0, 2**31 - 1), x0=st.floats(-3, 3), steps=st.integers(1, 60))
@settings(max_examples=10, deadline=None)
def test_the_closed_form_forward_process_matches_the_simulated_chain(seed, x0, steps):
    betas = cosine_betas(60)[:steps]
    generator = torch.Generator().manual_seed(seed)
    simulated = run_chain(torch.full((4000,), x0, dtype=torch.float64), betas, generator)
    a = alpha_bars(betas)[-1].item()
    # q(x_t | x_0) = N(sqrt(a) x0, 1 - a): Kolmogorov-Smirnov against it
    p = stats.kstest(simulated.numpy(), stats.norm(math.sqrt(a) * x0, math.sqrt(1 - a)).cdf).pvalue
    assert p > 1e-4
    one_step = noised(torch.full((4000,), x0, dtype=torch.float64), torch.full((4000,), a),
                      torch.randn(4000, generator=generator, dtype=torch.float64))  # fmt: skip
    assert stats.ks_2samp(simulated.numpy(), one_step.numpy()).pvalue > 1e-4


def _gaussian_condition(mean, cov, observed_value):
    """x_a given x_b for a 2-D Gaussian (x_a, x_b): mean and variance."""
    m = mean[0] + cov[0][1] / cov[1][1] * (observed_value - mean[1])
    return m, cov[0][0] - cov[0][1] ** 2 / cov[1][1]


@pytest.mark.parametrize("t", [1, 2, 17, 50])
def test_the_posterior_is_the_gaussian_conditional(t):
    betas = linear_betas(50)
    ab = alpha_bars(betas).tolist()
    x0, xt = 0.7, -0.4
    # (x_{t-1}, x_t) given x0: x_{t-1} = sqrt(a_prev) x0 + noise, x_t = sqrt(1 - beta) x_{t-1} + ...
    a_prev, beta = (ab[t - 2] if t > 1 else 1.0), betas[t - 1].item()
    m1 = math.sqrt(a_prev) * x0
    v1 = 1 - a_prev
    mean = [m1, math.sqrt(1 - beta) * m1]
    cov = [[v1, math.sqrt(1 - beta) * v1], [math.sqrt(1 - beta) * v1, (1 - beta) * v1 + beta]]
    want_mean, want_var = _gaussian_condition(mean, cov, xt)
    got_mean, got_var = posterior(torch.tensor(x0, dtype=torch.float64),
                                  torch.tensor(xt, dtype=torch.float64), t, betas)  # fmt: skip
    assert got_mean.item() == pytest.approx(want_mean, abs=1e-12)
    assert got_var == pytest.approx(want_var, abs=1e-12)


@pytest.mark.parametrize("t", [2, 10, 300, 1000])
def test_the_bound_weight_times_the_squared_error_is_the_kl(t):
    betas = cosine_betas(1000)
    ab = alpha_bars(betas)
    generator = torch.Generator().manual_seed(t)
    x0, eps, eps_hat = torch.randn(3, 5, generator=generator, dtype=torch.float64)
    xt = noised(x0[None], ab[t - 1 : t], eps[None])[0]
    mean, var = posterior(x0, xt, t, betas)
    beta = betas[t - 1]
    mean_model = (xt - beta / (1 - ab[t - 1]).sqrt() * eps_hat) / (1 - beta).sqrt()
    kl = torch.distributions.kl_divergence(
        torch.distributions.Normal(mean, math.sqrt(var)),
        torch.distributions.Normal(mean_model, math.sqrt(var))).sum()  # fmt: skip
    weighted = bound_weights(betas)[t - 1] * (eps - eps_hat).pow(2).sum()
    assert weighted.item() == pytest.approx(kl.item(), rel=1e-8)


def test_the_bound_of_the_best_denoiser_of_gaussian_data_matches_its_expectation():
    # for data N(0, 1) and eps-hat = sqrt(1 - a_t) x_t, by hand: E L_T = (-a_T - log(1 - a_T)
    # + a_T) / 2, E L_{t-1} = lambda_t E(eps - eps-hat)^2 = lambda_t a_t, E L_0 = (1 + log 2 pi
    # beta_1) / 2
    betas = linear_betas(1000)
    ab = alpha_bars(betas)
    model = GaussianDenoiser(ab)
    a_T, beta_1 = ab[-1].item(), betas[0].item()
    expected = (0.5 * -math.log(1 - a_T) + (bound_weights(betas) * ab)[1:].sum().item()
                + 0.5 * (1 + math.log(2 * math.pi * beta_1)))  # fmt: skip
    x0 = torch.randn(4000, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    bound = variational_bound(model, x0, betas, generator=torch.Generator().manual_seed(1))
    assert bound.total.mean().item() == pytest.approx(expected, abs=0.05)
    # above the data's own entropy: a bound (here by 0.4 nats: the reverse steps' variance
    # beta-tilde is too small for Gaussian data)
    assert expected > 0.5 * (1 + math.log(2 * math.pi)) + 0.3


def test_ddpm_is_ddim_with_eta_one_on_every_step():
    betas = cosine_betas(40)
    torch.manual_seed(0)
    model = PointDenoiser(16)
    a = ddpm_sample(model, (64, 2), betas, generator=torch.Generator().manual_seed(3))
    b = ddim_sample(model, (64, 2), alpha_bars(betas), 40, eta=1.0,
                    generator=torch.Generator().manual_seed(3))  # fmt: skip
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_ddpm_with_the_best_denoiser_samples_the_gaussian_data():
    betas = linear_betas(200)
    x = ddpm_sample(GaussianDenoiser(alpha_bars(betas)), (20_000, 1), betas,
                    generator=torch.Generator().manual_seed(0))  # fmt: skip
    assert stats.kstest(x[:, 0].numpy(), stats.norm().cdf).pvalue > 1e-3


def test_ddim_without_noise_is_deterministic_and_inverts():
    torch.manual_seed(0)
    ab = alpha_bars(cosine_betas(1000))
    x_T = torch.randn(50, 2, generator=torch.Generator().manual_seed(1))
    model = PointDenoiser(32)
    one = ddim_sample(model, (50, 2), ab, 50, x_T=x_T, generator=torch.Generator().manual_seed(2))
    two = ddim_sample(model, (50, 2), ab, 50, x_T=x_T, generator=torch.Generator().manual_seed(3))
    assert torch.equal(one, two)  # eta = 0: the noise generator is never used
    # inverted and sampled again, data returns, closer the more steps (the best denoiser of
    # Gaussian data: a smooth ODE, as a trained model's is)
    model = GaussianDenoiser(ab)
    x0 = torch.randn(200, 1, generator=torch.Generator().manual_seed(1))
    errors = [(ddim_sample(model, (200, 1), ab, k, x_T=ddim_invert(model, x0, ab, k)) - x0)
              .abs().max().item() for k in (20, 100, 1000)]  # fmt: skip
    assert errors[0] > errors[1] > errors[2] and errors[2] < 1e-4


def test_timesteps_run_from_the_last_to_the_first():
    assert timesteps(1000, 1) == [1000]
    assert timesteps(1000, 4) == [1000, 667, 334, 1]
    assert timesteps(10, 10) == list(range(10, 0, -1))


def test_the_noise_prediction_loss_is_the_mean_squared_error_per_example():
    ab = alpha_bars(linear_betas(100))
    model = GaussianDenoiser(ab)
    x0 = torch.randn(5000, 1, generator=torch.Generator().manual_seed(0))
    loss = noise_prediction_loss(model, x0, ab, generator=torch.Generator().manual_seed(1))
    assert loss.shape == (5000,)
    # the best predictor's error is Var(eps | x_t) = alpha_bar_t, averaged over t
    assert loss.mean().item() == pytest.approx(ab.mean().item(), abs=0.03)


def test_flow_matching_loss_is_least_for_the_best_velocity_and_euler_reaches_the_data():
    s = 0.5
    x1 = s * torch.randn(20_000, 1, generator=torch.Generator().manual_seed(0))
    best = flow_matching_loss(GaussianVelocity(s), x1,
                              generator=torch.Generator().manual_seed(1)).mean()  # fmt: skip
    for wrong_s in (0.3, 0.8):
        worse = flow_matching_loss(GaussianVelocity(wrong_s), x1,
                                   generator=torch.Generator().manual_seed(1)).mean()  # fmt: skip
        assert worse > best
    x = euler_sample(GaussianVelocity(s), (20_000, 1), 200,
                     generator=torch.Generator().manual_seed(2))  # fmt: skip
    assert x.std().item() == pytest.approx(s, rel=0.03)
    x0, x1 = torch.zeros(3, 2), torch.ones(3, 2)
    torch.testing.assert_close(straight_path(x0, x1, torch.tensor([0.0, 0.25, 1.0])),
                               torch.tensor([[0.0] * 2, [0.25] * 2, [1.0] * 2]))  # fmt: skip


def test_guidance_combines_the_labelled_and_unlabelled_predictions():
    torch.manual_seed(0)
    net = UNet(width=8, num_classes=10)
    for p in net.head.parameters():  # a non-zero output
        nn.init.normal_(p, std=0.1)
    x, t, y = torch.randn(3, 1, 28, 28), torch.rand(3), torch.tensor([0, 4, 9])
    with torch.no_grad():
        want = 3 * net(x, t, y) - 2 * net(x, t, torch.full((3,), 10))
        torch.testing.assert_close(guided(net, x, t, y, 2.0), want, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(guided(net, x, t, y, 0.0), net(x, t, y))
        torch.testing.assert_close(net(x, t, None), net(x, t, torch.full((3,), 10)))


def test_the_unet_keeps_the_shape_at_every_time_step_and_starts_at_zero():
    torch.manual_seed(0)
    net = UNet(channels=1, width=4, num_classes=10)
    T = 1000
    t = torch.arange(1, T + 1) / T
    x = torch.randn(T, 1, 28, 28)
    with torch.no_grad():
        out = net(x, t, torch.arange(T) % 11)
    assert out.shape == (T, 1, 28, 28) and not out.any()  # the last convolution starts at 0
    assert UNet(channels=3, width=4)(torch.randn(2, 3, 16, 12), torch.rand(2)).shape == (
        2, 3, 16, 12)
    features = time_features(torch.tensor([0.0, 0.5]), 8)
    assert features.shape == (2, 8)
    torch.testing.assert_close(features[0], torch.tensor([0.0] * 4 + [1.0] * 4))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda n: n(torch.randn(2, 3, 28, 28), torch.rand(2)), "x must be images"),
        (lambda n: n(torch.randn(2, 1, 30, 28), torch.rand(2)), "multiples of 4"),
        (lambda n: n(torch.randn(2, 1, 28, 28), torch.rand(3)), "t must be one time"),
        (lambda n: n(torch.randn(2, 1, 28, 28), torch.rand(2), torch.tensor([1.0, 2.0])),
         "y must be one integer label"),
        (lambda n: ddim_sample(n, (2, 1, 28, 28), alpha_bars(linear_betas(10)), 11),
         "steps must be at most"),
        (lambda n: ddim_sample(n, (2, 1, 28, 28), alpha_bars(linear_betas(10)), 2,
                               y=torch.tensor([0, 10])), "y must be labels in 0..9"),
        (lambda n: ddim_sample(PointDenoiser(4), (2, 2), alpha_bars(linear_betas(10)), 2,
                               y=torch.tensor([0, 1])), "this model takes no labels"),
        (lambda n: euler_sample(n, [2, 1, 28, 28], 2), "shape must be a tuple"),
        (lambda n: euler_sample(n, (2, 1, 28, 28), 0), "steps must be"),
        (lambda n: alpha_bars(torch.tensor([0.1, 1.5])), "betas must all be in"),
        (lambda n: posterior(torch.zeros(1), torch.zeros(1), 0, linear_betas(5)), "t must be"),
        (lambda n: variational_bound(n, torch.zeros(1, 1, 28, 28), linear_betas(5),
                                     generator=1), "generator must be"),
    ],
)
def test_bad_arguments_are_named(call, message):
    torch.manual_seed(0)
    with pytest.raises((ValueError, TypeError), match=message):
        call(UNet(width=4, num_classes=10))

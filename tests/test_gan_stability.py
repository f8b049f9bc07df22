"""The chapter on stabilising GANs: the Dirac-GAN's dynamics against their closed forms,
the Wasserstein critic's loss and gradient penalty against hand-worked values, the power
iteration against torch's SVD and its spectral_norm, the conditional GAN, the recipes."""

import math
from dataclasses import replace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from genai_course import dirac_gan
from genai_course.conditional_gan import (
    ConditionalGAN,
    ConditionalGenerator,
    ProjectionDiscriminator,
    conditional_gan_step,
    sample_conditional,
)
from genai_course.gan import GAN, MLPDiscriminator, MLPGenerator
from genai_course.gan_stability import (
    critic_generator_loss,
    critic_loss,
    gradient_penalty,
    power_iteration,
    spectral_normalise,
    wgan_gp_step,
)
from genai_course.train.recipes import RECIPES, StableGANSettings

# -- the Dirac-GAN ---------------------------------------------------------------------------


def closed_form_jacobian(lr, mode, rho):
    """The linearised update at (0, 0), worked by hand (sigma(0) = 1/2)."""
    if mode == "simultaneous":
        return torch.tensor([[1, lr / 2], [-lr / 2, 1 - lr * rho]], dtype=torch.float64)
    return torch.tensor(
        [[1 - lr**2 / 4, lr * (1 - lr * rho) / 2], [-lr / 2, 1 - lr * rho]], dtype=torch.float64
    )


@settings(max_examples=40, deadline=None)
@given(lr=st.floats(0.01, 1.0), rho=st.floats(0.0, 3.0),
       mode=st.sampled_from(["simultaneous", "alternating"]))  # fmt: skip
def test_the_jacobian_matches_its_closed_form(lr, rho, mode):
    expected = closed_form_jacobian(lr, mode, rho)
    torch.testing.assert_close(dirac_gan.jacobian(lr, mode, rho), expected)


@settings(max_examples=40, deadline=None)
@given(theta=st.floats(-3, 3), psi=st.floats(-3, 3), lr=st.floats(0.01, 1.0),
       rho=st.floats(0.0, 2.0))  # fmt: skip
def test_a_step_is_the_gradient_step_of_the_closed_form_losses(theta, psi, lr, rho):
    sig = 1 / (1 + math.exp(-psi * theta))  # sigma(psi theta)
    # L_C = softplus(psi theta) + rho psi^2 / 2 + log 2:
    # dL_C/dpsi = sigma(psi theta) theta + rho psi
    new_psi = psi - lr * (sig * theta + rho * psi)
    sim_theta = theta + lr * (1 - sig) * psi  # L_G = softplus(-psi theta): -sigma(-psi theta) psi
    alt_theta = theta + lr * (1 - 1 / (1 + math.exp(-new_psi * theta))) * new_psi
    got = dirac_gan.step(theta, psi, lr, "simultaneous", rho)
    assert got[0].item() == pytest.approx(sim_theta, abs=1e-12)
    assert got[1].item() == pytest.approx(new_psi, abs=1e-12)
    got = dirac_gan.step(theta, psi, lr, "alternating", rho)
    assert got[0].item() == pytest.approx(alt_theta, abs=1e-12)
    assert got[1].item() == pytest.approx(new_psi, abs=1e-12)


@pytest.mark.parametrize(("mode", "rho", "modulus"), [
    ("simultaneous", 0.0, math.sqrt(1 + 0.2**2 / 4)),  # |1 +- i lr / 2|: spirals out
    ("alternating", 0.0, 1.0),  # determinant 1, |trace| < 2: circles for ever
    ("alternating", 0.5, math.sqrt(1 - 0.1)),  # determinant 1 - lr rho, a complex pair
])  # fmt: skip
def test_eigenvalues_and_what_the_trajectory_does_near_the_equilibrium(mode, rho, modulus):
    lam = dirac_gan.eigenvalues(0.2, mode, rho)
    torch.testing.assert_close(lam.abs(), torch.full((2,), modulus, dtype=torch.float64))
    # a trajectory that starts close to (0, 0): its distance grows by |lambda| a step
    path = dirac_gan.trajectory(1e-4, 0.0, 0.2, 400, mode, rho)
    radius = path.norm(dim=1)  # (401,)
    rate = (radius[-1] / radius[0]) ** (1 / 400)
    assert rate.item() == pytest.approx(modulus, rel=2e-3)


def test_dirac_gan_refuses_bad_input_by_name():
    with pytest.raises(ValueError, match="mode"):
        dirac_gan.step(1.0, 1.0, 0.1, "together")
    with pytest.raises(ValueError, match="lr"):
        dirac_gan.jacobian(0.0)
    with pytest.raises(ValueError, match="penalty"):
        dirac_gan.eigenvalues(0.1, penalty=-1.0)
    with pytest.raises(ValueError, match="theta"):
        dirac_gan.trajectory(torch.ones(2), 0.0, 0.1, 3)
    with pytest.raises(ValueError, match="steps"):
        dirac_gan.trajectory(1.0, 0.0, 0.1, -1)
    with pytest.raises(TypeError, match="psi"):
        dirac_gan.losses(1.0, "1")


# -- WGAN-GP ---------------------------------------------------------------------------------


def test_the_critic_losses_are_the_score_differences():
    real, fake = torch.tensor([1.0, -2.0, 0.5]), torch.tensor([[0.0], [3.0], [0.5]])
    torch.testing.assert_close(critic_loss(real, fake), torch.tensor([-1.0, 5.0, 0.0]))
    torch.testing.assert_close(critic_generator_loss(fake), torch.tensor([0.0, -3.0, -0.5]))
    with pytest.raises(ValueError, match="real_scores and fake_scores"):
        critic_loss(real, fake[:2])
    with pytest.raises(TypeError, match="fake_scores"):
        critic_generator_loss([1.0])


@settings(max_examples=30, deadline=None)
@given(d=st.integers(1, 6), b=st.integers(1, 5), seed=st.integers(0, 1000))
def test_the_gradient_penalty_of_a_linear_critic_and_its_gradient(d, b, seed):
    g = torch.Generator().manual_seed(seed)
    critic = nn.Linear(d, 1).double()
    with torch.no_grad():
        critic.weight.copy_(torch.randn(1, d, generator=g, dtype=torch.float64))
    real, fake = (torch.randn(b, d, generator=g, dtype=torch.float64) for _ in range(2))
    penalty = gradient_penalty(critic, real, fake)  # (B,)
    # a(x) = w.x + c: its gradient is w at every x, so the penalty is (|w| - 1)^2 for all
    w = critic.weight.detach()[0]
    norm = w.norm()
    torch.testing.assert_close(penalty, ((norm - 1) ** 2).expand(b))
    # and its gradient in w is 2 (|w| - 1) w / |w| per example: the penalty trains the critic
    (grad,) = torch.autograd.grad(penalty.sum(), critic.weight)
    torch.testing.assert_close(grad[0], b * 2 * (norm - 1) * w / norm)


def test_the_penalty_is_taken_at_the_interpolates():
    critic = MLPDiscriminator(2, hidden_dim=8, num_layers=1).double()
    real = torch.tensor([[1.0, 2.0], [0.0, -1.0]], dtype=torch.float64)
    fake = torch.tensor([[-1.0, 0.5], [2.0, 2.0]], dtype=torch.float64)
    alpha = torch.tensor([0.25, 1.0], dtype=torch.float64)
    x_hat = (alpha[:, None] * real + (1 - alpha[:, None]) * fake).requires_grad_()
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat)
    expected = (grad.norm(dim=1) - 1) ** 2
    torch.testing.assert_close(gradient_penalty(critic, real, fake, alpha), expected)
    with pytest.raises(ValueError, match="alpha"):
        gradient_penalty(critic, real, fake, alpha[:1])
    with pytest.raises(ValueError, match="fake"):
        gradient_penalty(critic, real, fake[:1])
    with pytest.raises(TypeError, match="critic"):
        gradient_penalty(lambda x: x, real, fake)


def small_gan():
    torch.manual_seed(0)
    G = MLPGenerator(2, 2, hidden_dim=16, num_layers=1)
    return GAN(G, MLPDiscriminator(2, hidden_dim=16, num_layers=1), num_fixed=4)


def test_wgan_gp_steps_the_generator_every_critic_steps_th_batch():
    gan = small_gan()
    opt_d = torch.optim.SGD(gan.D.parameters(), lr=0.01)
    opt_g = torch.optim.SGD(gan.G.parameters(), lr=0.01)
    step = wgan_gp_step(gan, opt_d, opt_g, penalty=1.0, critic_steps=3)
    real = torch.randn(8, 2)
    before_g = [p.clone() for p in gan.G.parameters()]
    for call in range(1, 7):
        before_d = [p.clone() for p in gan.D.parameters()]
        metrics = step(real)
        assert set(metrics) == {"loss_d", "loss_g", "wasserstein", "penalty"}
        # every weight of the critic moves (its output bias cancels in a(fake) - a(real))
        weights = [(a, b) for a, b in zip(before_d, gan.D.parameters(), strict=True) if b.ndim > 1]
        assert all(not torch.equal(a, b) for a, b in weights)
        moved = [not torch.equal(a, b) for a, b in zip(before_g, gan.G.parameters(), strict=True)]
        assert all(moved) == (call % 3 == 0) and (any(moved) == (call % 3 == 0))
        before_g = [p.clone() for p in gan.G.parameters()]
    with pytest.raises(ValueError, match="critic_steps"):
        wgan_gp_step(gan, opt_d, opt_g, critic_steps=0)
    with pytest.raises(TypeError, match="opt_g"):
        wgan_gp_step(gan, opt_d, None)
    with pytest.raises(ValueError, match="real"):
        step(torch.randn(8, 3))


def test_the_critic_learns_to_separate_a_fixed_generator():
    """Critic steps alone (the generator held by lr 0): the Wasserstein estimate rises."""
    gan = small_gan()
    opt_d = torch.optim.Adam(gan.D.parameters(), lr=1e-2)
    opt_g = torch.optim.SGD(gan.G.parameters(), lr=0.0)
    step = wgan_gp_step(gan, opt_d, opt_g, penalty=1.0)
    real = torch.randn(256, 2) * 0.1 + 3.0  # far from the generator's output
    estimates = [step(real)["wasserstein"].item() for _ in range(60)]
    assert sum(estimates[-10:]) / 10 > sum(estimates[:10]) / 10 + 1.0


# -- spectral normalisation ------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(o=st.integers(1, 8), i=st.integers(1, 8), seed=st.integers(0, 10_000))
def test_the_power_iteration_converges_to_the_largest_singular_value(o, i, seed):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(o, i, generator=g, dtype=torch.float64)
    v = torch.randn(i, generator=g, dtype=torch.float64)
    largest = torch.linalg.svdvals(W)[0]
    one, _, _ = power_iteration(W, v, steps=1)
    many, s, v_out = power_iteration(W, v, steps=500)
    assert one <= largest * (1 + 1e-12)  # an estimate from below
    torch.testing.assert_close(many, largest, rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(s.norm(), torch.tensor(1.0, dtype=torch.float64))
    torch.testing.assert_close(v_out.norm(), torch.tensor(1.0, dtype=torch.float64))


@pytest.mark.parametrize("layer", [nn.Linear(5, 3), nn.Conv2d(2, 4, 3)])
def test_the_power_iteration_is_torchs_spectral_norm(layer):
    torch.manual_seed(0)
    layer = nn.utils.parametrizations.spectral_norm(layer.double())
    sn = layer.parametrizations.weight[0]
    W, v = layer.parametrizations.weight.original.detach(), sn._v.clone()
    for _ in range(3):  # three training forward passes: one power step each
        estimate, s, v = power_iteration(W, v, steps=1)
        normalised = layer.weight  # torch runs its step here, from the same v
        torch.testing.assert_close(sn._u, s)
        torch.testing.assert_close(sn._v, v)
        torch.testing.assert_close(normalised, W / estimate)


def test_spectral_normalise_bounds_every_layer_and_drops_batch_norm():
    from genai_course.gan import DCGANDiscriminator

    torch.manual_seed(0)
    D = spectral_normalise(DCGANDiscriminator(width=4))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in D.modules())
    D(torch.randn(2, 1, 28, 28))  # training mode: a power step
    for _ in range(50):  # more power steps, without changing the weights
        D(torch.randn(2, 1, 28, 28))
    layers = [m for m in D.modules() if isinstance(m, nn.Conv2d)]
    assert len(layers) == 3
    for layer in layers:
        assert torch.linalg.svdvals(layer.weight.detach().flatten(1))[0].item() == pytest.approx(
            1.0, rel=1e-3)  # fmt: skip
    with pytest.raises(TypeError, match="module"):
        spectral_normalise("D")
    with pytest.raises(TypeError, match="drop_batch_norm"):
        spectral_normalise(nn.Linear(2, 2), drop_batch_norm="no")


def test_power_iteration_refuses_bad_input_by_name():
    with pytest.raises(ValueError, match="weight"):
        power_iteration(torch.ones(3), torch.ones(3))
    with pytest.raises(ValueError, match="v must"):
        power_iteration(torch.ones(2, 3), torch.ones(2))
    with pytest.raises(ValueError, match="steps"):
        power_iteration(torch.ones(2, 3), torch.ones(3), steps=0)


# -- the conditional GAN ---------------------------------------------------------------------


def test_the_projection_discriminator_is_the_unconditional_logit_plus_a_projection():
    torch.manual_seed(0)
    D = ProjectionDiscriminator(num_classes=3, width=2)
    x, y = torch.randn(4, 1, 28, 28), torch.tensor([0, 2, 1, 2])
    phi = D.body(x).flatten(1)  # (4, F)
    expected = phi @ D.head.weight[0] + D.head.bias + (D.embed.weight[y] * phi).sum(1)
    torch.testing.assert_close(D(x, y), expected)
    # the label changes the logit only through its row of U_C
    with torch.no_grad():
        D.embed.weight[2] = D.embed.weight[0]
    torch.testing.assert_close(D(x, torch.zeros(4, dtype=torch.long))[1], D(x, y)[1])
    with pytest.raises(TypeError, match="y must be an integer"):
        D(x, y.float())
    with pytest.raises(ValueError, match="y has 3 labels"):
        D(x, y[:3])


def test_the_conditional_generator_follows_its_label():
    torch.manual_seed(0)
    G = ConditionalGenerator(num_classes=3, latent_dim=4, width=2)
    z = torch.randn(2, 4)
    a, b = G(z, torch.tensor([0, 0])), G(z, torch.tensor([1, 1]))
    assert a.shape == (2, 1, 28, 28) and not torch.allclose(a, b)
    noise = torch.Generator().manual_seed(0)
    images = sample_conditional(G, torch.tensor([2, 0, 1]), generator=noise)
    assert images.shape == (3, 28, 28) and 0 <= images.min() and images.max() <= 1
    with pytest.raises(ValueError, match="y must hold class labels"):
        sample_conditional(G, torch.tensor([3]))
    with pytest.raises(ValueError, match="z must"):
        G(torch.randn(2, 5), torch.tensor([0, 1]))


def test_the_conditional_step_trains_both_networks():
    torch.manual_seed(0)
    gan = ConditionalGAN(ConditionalGenerator(3, 4, 2), ProjectionDiscriminator(3, 2), per_class=2)
    assert gan.fixed_y.tolist() == [0, 0, 1, 1, 2, 2] and gan.snapshot().shape == (6, 28, 28)
    opt_d = torch.optim.Adam(gan.D.parameters(), lr=1e-3)
    opt_g = torch.optim.Adam(gan.G.parameters(), lr=1e-3)
    before = {k: v.clone() for k, v in gan.state_dict().items() if "weight" in k}
    metrics = conditional_gan_step(gan, opt_d, opt_g)(
        torch.rand(4, 1, 28, 28) * 2 - 1, torch.tensor([0, 1, 2, 1]))
    assert set(metrics) == {"loss_d", "loss_g", "d_accuracy"}
    after = gan.state_dict()
    assert all(not torch.equal(v, after[k]) for k, v in before.items())
    with pytest.raises(TypeError, match="gan must be a ConditionalGAN"):
        conditional_gan_step(small_gan(), opt_d, opt_g)


# -- the recipes -----------------------------------------------------------------------------


def test_stable_gan_settings_name_bad_values():
    quick = RECIPES["ring_wgan_gp"].quick
    assert isinstance(quick, StableGANSettings) and quick.critic_steps == 5
    with pytest.raises(ValueError, match="method"):
        replace(quick, method="lsgan")
    with pytest.raises(ValueError, match="critic_steps"):
        replace(quick, critic_steps=0)
    with pytest.raises(ValueError, match="penalty"):
        replace(quick, penalty=-1.0)
    with pytest.raises(ValueError, match="wgan-gp"):
        replace(RECIPES["sn_dcgan"].quick, method="wgan-gp")


def test_the_spectral_norm_recipe_normalises_the_discriminator_only():
    settings = replace(RECIPES["ring_sn_gan"].quick, train_size=256, epochs=1)
    gan = RECIPES["ring_sn_gan"].train(settings).model
    assert nn.utils.parametrize.is_parametrized(gan.D.net[1])
    assert not any(nn.utils.parametrize.is_parametrized(m) for m in gan.G.modules())

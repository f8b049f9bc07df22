import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from genai_course.data import ring_of_gaussians
from genai_course.gan import (
    GAN,
    DCGANDiscriminator,
    DCGANGenerator,
    MLPDiscriminator,
    MLPGenerator,
    discriminator_loss,
    generator_loss,
    optimal_discriminator,
    sample,
    to_gan_range,
)

logits = st.lists(st.floats(-50, 50), min_size=1, max_size=20)


# -- losses ---------------------------------------------------------------------------


@given(logits, st.data())
def test_discriminator_loss_is_binary_cross_entropy(real, data):
    fake = data.draw(st.lists(st.floats(-50, 50), min_size=len(real), max_size=len(real)))
    real, fake = torch.tensor(real, dtype=torch.float64), torch.tensor(fake, dtype=torch.float64)
    expected = F.binary_cross_entropy_with_logits(
        real, torch.ones_like(real), reduction="none"
    ) + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake), reduction="none")
    torch.testing.assert_close(discriminator_loss(real, fake), expected)


@given(logits)
def test_generator_losses_against_their_formulas(fake):
    a = torch.tensor(fake, dtype=torch.float64)
    d = torch.sigmoid(a)
    ns = F.binary_cross_entropy_with_logits(a, torch.ones_like(a), reduction="none")  # -log D
    torch.testing.assert_close(generator_loss(a), ns)
    saturating = generator_loss(a, non_saturating=False)
    assert torch.isfinite(saturating).all()
    moderate = a.abs() < 10  # where log(1 - sigmoid(a)) loses no digits
    torch.testing.assert_close(saturating[moderate], torch.log1p(-d)[moderate])


def test_hand_computed_values_and_stability():
    # D = sigmoid(0) = 1/2 for both: -log(1/2) - log(1/2) = log 4
    assert discriminator_loss(torch.zeros(1), torch.zeros(1)).item() == pytest.approx(math.log(4))
    # a confident discriminator: finite, and about 0 and 1000
    huge = torch.tensor([1000.0])
    assert discriminator_loss(huge, -huge).item() == pytest.approx(0.0, abs=1e-12)
    assert generator_loss(-huge).item() == pytest.approx(1000.0)


def test_minimax_gradient_vanishes_where_the_non_saturating_one_does_not():
    a = torch.tensor([-10.0], requires_grad=True)  # D(G(z)) = 4.5e-5: fakes rejected
    (g_minimax,) = torch.autograd.grad(generator_loss(a, non_saturating=False).sum(), a)
    (g_ns,) = torch.autograd.grad(generator_loss(a).sum(), a)
    assert abs(g_minimax.item()) < 1e-4 and abs(g_ns.item()) > 0.99


def test_loss_arguments_are_checked():
    with pytest.raises(ValueError, match="real_logits and fake_logits must have the same shape"):
        discriminator_loss(torch.zeros(3), torch.zeros(4))
    with pytest.raises(TypeError, match="fake_logits must be a floating-point"):
        generator_loss(torch.zeros(3, dtype=torch.long))
    with pytest.raises(TypeError, match="non_saturating must be True or False"):
        generator_loss(torch.zeros(3), non_saturating="yes")


def test_optimal_discriminator_attains_2_jsd_minus_log_4():
    # p = N(0, 1), q = N(1, 1.5^2) on a fine grid: V(D*, q) = 2 JSD(p, q) - log 4
    x = torch.linspace(-12, 14, 200_001, dtype=torch.float64)
    dx = x[1] - x[0]
    log_p = torch.distributions.Normal(0.0, 1.0).log_prob(x)
    log_q = torch.distributions.Normal(1.0, 1.5).log_prob(x)
    p, q = log_p.exp(), log_q.exp()
    d_star = optimal_discriminator(log_p, log_q)
    inside = (p > 1e-30) & (q > 1e-30)
    torch.testing.assert_close(d_star[inside], (p / (p + q))[inside], rtol=1e-12, atol=0)
    value = ((p * d_star.log() + q * torch.log1p(-d_star)) * dx).sum()
    m = (p + q) / 2
    jsd = 0.5 * ((p * (p / m).log()).sum() + (q * (q / m).log()).sum()) * dx
    # (1 - D* loses digits where D* is within 1e-12 of 1: hence 1e-6)
    assert value.item() == pytest.approx(2 * jsd.item() - math.log(4), abs=1e-6)
    # and any other discriminator does worse
    other = torch.sigmoid(log_p - log_q + 0.3)
    worse = ((p * other.log() + q * torch.log1p(-other)) * dx).sum()
    assert worse < value


# -- networks and sampling ------------------------------------------------------------------


def test_shapes():
    z = torch.randn(5, 16)
    assert MLPGenerator(16, 2)(z).shape == (5, 2)
    images = MLPGenerator(16, 784, image_shape=(28, 28))(z)
    assert images.shape == (5, 1, 28, 28) and images.abs().max() <= 1
    assert MLPDiscriminator(784)(images).shape == (5,)
    assert DCGANGenerator(16, width=8)(z).shape == (5, 1, 28, 28)
    discriminator = DCGANDiscriminator(width=8)
    assert discriminator(torch.zeros(5, 1, 28, 28)).shape == (5,)
    assert discriminator(torch.zeros(5, 784)).shape == (5,)


def test_sample_gives_images_in_0_1_and_is_reproducible():
    torch.manual_seed(0)
    G = DCGANGenerator(16, width=8)
    a = sample(G, 6, generator=torch.Generator().manual_seed(1))
    b = sample(G, 6, generator=torch.Generator().manual_seed(1))
    assert a.shape == (6, 28, 28) and 0 <= a.min() and a.max() <= 1
    assert torch.equal(a, b) and G.training  # its mode is restored
    assert sample(MLPGenerator(2, 2), 7).shape == (7, 2)


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: MLPGenerator(0, 2), ValueError, "latent_dim must be a positive int, got 0"),
        (lambda: MLPGenerator(2, 10, image_shape=(3, 3)), ValueError, "does not hold data_dim"),
        (lambda: DCGANDiscriminator(width=2.5), ValueError, "width must be a positive int"),
        (lambda: sample(MLPDiscriminator(2), 3), TypeError, "G must be a generator network"),
        (lambda: sample(MLPGenerator(2, 2), 0), ValueError, "n must be a positive int"),
        (lambda: to_gan_range(torch.full((2, 28, 28), 2.0)), ValueError, "uint8 or floats in"),
        (lambda: GAN(MLPDiscriminator(2), MLPDiscriminator(2)), TypeError, "latent_dim"),
    ],
)
def test_bad_arguments_are_named(make, error, message):
    with pytest.raises(error, match=message):
        make()


# -- data -------------------------------------------------------------------------------


def test_ring_of_gaussians():
    points, centres = ring_of_gaussians(1000, modes=4, radius=3.0, scale=0.1)
    assert points.shape == (1000, 2) and centres.shape == (4, 2)
    assert torch.allclose(centres.norm(dim=1), torch.full((4,), 3.0))
    nearest = torch.cdist(points, centres).min(dim=1).values
    assert nearest.max() < 0.6  # 6 standard deviations
    with pytest.raises(ValueError, match="modes must be a positive int"):
        ring_of_gaussians(10, modes=0)

"""Normalising flows: every layer's inverse and log-determinant (against autograd's Jacobian),
the change of variables against torch.distributions, dequantisation, and the errors named."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from genai_course.flows import (
    ActNorm,
    AffineCoupling,
    FactorOut,
    Flow,
    InvertibleLinear,
    Logit,
    Sequential,
    Squeeze,
    Unsqueeze,
    alternating_mask,
    channel_mask,
    checkerboard_mask,
    conv_conditioner,
    dequantize,
    discrete_bits_per_dim,
    image_flow,
    mlp_conditioner,
    point_flow,
)


def randomised(layer: nn.Module, seed: int) -> nn.Module:
    """``layer`` with every parameter drawn at random (not the identity it starts as)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in layer.modules():
            for p in module.parameters(recurse=False):
                noise = torch.randn(p.shape, generator=gen, dtype=p.dtype)
                if isinstance(module, InvertibleLinear):  # a rotation, perturbed: invertible
                    p.add_(0.3 * noise)
                else:
                    p.copy_(0.5 * noise)
    return layer


def image_layers(channels=4, size=4):
    coupling = AffineCoupling(checkerboard_mask(channels, size, size, 1),
                              conv_conditioner(channels, 8))  # fmt: skip
    inner = Sequential(ActNorm(channels // 2), InvertibleLinear(channels // 2))
    return {
        "actnorm": ActNorm(channels),
        "linear": InvertibleLinear(channels),
        "coupling (checkerboard)": coupling,
        "coupling (channels)": AffineCoupling(channel_mask(channels, size, size, 0),
                                              conv_conditioner(channels, 8)),  # fmt: skip
        "squeeze then unsqueeze": Sequential(Squeeze(), ActNorm(4 * channels), Unsqueeze()),
        "logit": Logit(0.05),
        "factor out": FactorOut(channels // 2, inner),
    }


LAYERS = list(image_layers())


def example(name, dtype, seed, channels=4, size=4):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(3, channels, size, size, generator=gen, dtype=dtype)
    if name == "logit":
        x = torch.rand(3, channels, size, size, generator=gen, dtype=dtype)
    return x


@pytest.mark.parametrize("name", LAYERS)
@given(seed=st.integers(0, 2**16))
@settings(max_examples=10, deadline=None)
def test_inverse_undoes_forward(name, seed):
    for dtype, tol in ((torch.float64, 1e-10), (torch.float32, 1e-5)):
        layer = randomised(image_layers()[name], seed).to(dtype).eval()
        x = example(name, dtype, seed)
        y, _ = layer(x)
        assert (layer.inverse(y) - x).abs().max() < tol * max(1.0, x.abs().max().item())


@pytest.mark.parametrize("name", LAYERS)
@given(seed=st.integers(0, 2**16))
@settings(max_examples=5, deadline=None)
def test_logdet_equals_autograds_jacobian(name, seed):
    layer = randomised(image_layers()[name], seed).to(torch.float64).eval()
    x = example(name, torch.float64, seed)
    _, logdet = layer(x)
    for i in range(len(x)):
        def f(xi, i=i):
            return layer(xi[None])[0][0].flatten()

        jac = torch.autograd.functional.jacobian(f, x[i]).reshape(x[i].numel(), -1)
        expected = torch.linalg.slogdet(jac).logabsdet
        assert logdet[i].item() == pytest.approx(expected.item(), abs=1e-8)


def test_a_linear_flow_is_a_gaussian():
    """z = W (e^s x + b) with z ~ N(0, I) makes x Gaussian: mean and covariance in closed form."""
    torch.manual_seed(0)
    actnorm, linear = randomised(ActNorm(3), 1), randomised(InvertibleLinear(3), 2)
    flow = Flow(Sequential(actnorm, linear), (3,)).double().eval()
    A = flow.layers.layers[1].weight.detach() @ torch.diag(actnorm.log_scale.detach().exp())
    b = flow.layers.layers[1].weight.detach() @ actnorm.shift.detach()
    A_inv = torch.linalg.inv(A)
    gaussian = torch.distributions.MultivariateNormal(-A_inv @ b, A_inv @ A_inv.T)
    x = torch.randn(50, 3, dtype=torch.float64) * 2
    assert torch.allclose(flow.log_prob(x), gaussian.log_prob(x), atol=1e-10)


def test_a_point_flows_density_integrates_to_one():
    """On a grid, the density integrates to the share of the flow's samples that fall in it;
    for a flow that expands space (ActNorm scales of e^0.5), to nearly 1."""
    flow = randomised(point_flow(num_couplings=3, width=16), 0).double().eval()
    with torch.no_grad():
        for layer in flow.layers.layers:
            if isinstance(layer, ActNorm):
                layer.log_scale.fill_(0.5)
            if isinstance(layer, AffineCoupling):  # moderate shifts and scales
                layer.net[-1].weight.mul_(0.2)
                layer.net[-1].bias.mul_(0.2)
    side = torch.linspace(-8, 8, 641, dtype=torch.float64)
    grid = torch.cartesian_prod(side, side)
    with torch.no_grad():
        density = flow.log_prob(grid).exp()
    integral = (density.sum() * (side[1] - side[0]) ** 2).item()
    samples = flow.sample(100_000, generator=torch.Generator().manual_seed(0))
    inside = (samples.abs() <= 8).all(dim=1).double().mean().item()
    assert integral > 0.95 and integral == pytest.approx(inside, abs=3e-3)


def test_samples_run_the_layers_backwards():
    flow = randomised(point_flow(num_couplings=2, width=8), 0).eval()
    gen = torch.Generator().manual_seed(0)
    x = flow.sample(100, generator=gen)
    z = torch.randn(100, 2, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(flow.layers(x)[0], z, atol=1e-4)
    cold = flow.sample(100, temperature=0.5, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(flow.layers(cold)[0], 0.5 * z, atol=1e-4)


def test_actnorm_normalises_its_first_batch_then_keeps_its_values():
    layer = ActNorm(3)
    x = torch.randn(64, 3, 5, 5) * torch.tensor([1.0, 4.0, 0.1])[:, None, None] + 7
    y, logdet = layer(x)
    per_channel = y.transpose(0, 1).flatten(1)
    assert torch.allclose(per_channel.mean(1), torch.zeros(3), atol=1e-4)
    assert torch.allclose(per_channel.std(1), torch.ones(3), atol=1e-3)
    assert torch.allclose(logdet, layer.log_scale.sum() * 25)
    y2, _ = layer(x + 1)
    assert torch.allclose(y2, y + layer.log_scale.exp()[:, None, None], atol=1e-5)


def test_a_loaded_actnorm_keeps_its_values():
    trained = ActNorm(2)
    trained(torch.randn(16, 2) * 3 + 1)
    loaded = ActNorm(2)
    loaded.load_state_dict(trained.state_dict())
    x = torch.randn(16, 2)
    assert torch.equal(loaded(x)[0], trained(x)[0])  # not re-initialised from this batch


def test_a_fresh_coupling_is_the_identity():
    layer = AffineCoupling(alternating_mask(4, 0), mlp_conditioner(4, 8))
    x = torch.randn(5, 4)
    y, logdet = layer(x)
    assert torch.equal(y, x) and torch.equal(logdet, torch.zeros(5))


def test_the_kept_half_passes_unchanged():
    layer = randomised(AffineCoupling(alternating_mask(4, 1), mlp_conditioner(4, 8)), 0)
    x = torch.randn(5, 4)
    y, _ = layer(x)
    assert torch.equal(y[:, 1::2], x[:, 1::2]) and not torch.allclose(y[:, ::2], x[:, ::2])


def test_squeeze_moves_each_2x2_block_into_channels():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    y, logdet = Squeeze()(x)
    assert y.shape == (1, 4, 2, 2) and torch.equal(logdet, torch.zeros(1))
    assert y[0, :, 0, 0].tolist() == [0.0, 1.0, 4.0, 5.0]  # the top-left block


def test_masks():
    assert alternating_mask(5, 0).tolist() == [1, 0, 1, 0, 1]
    board = checkerboard_mask(2, 2, 3, 0)
    assert board[0].tolist() == [[1, 0, 1], [0, 1, 0]] and torch.equal(board[0], board[1])
    assert channel_mask(4, 1, 1, 1).flatten().tolist() == [0, 0, 1, 1]


def test_the_image_flow_keeps_every_dimension():
    torch.manual_seed(0)
    flow = image_flow(steps=1, width=8)
    x = torch.rand(2, 1, 28, 28) * 0.98 + 0.01
    z, logdet = flow.layers(x)
    assert z.shape == (2, 4, 14, 14) and logdet.shape == (2,)
    assert (flow.layers.inverse(z) - x).abs().max() < 1e-4
    assert flow.sample(3, generator=torch.Generator().manual_seed(0)).shape == (3, 1, 28, 28)


def test_dequantisation_fills_each_grey_levels_interval():
    images = torch.tensor([[0, 1, 255, 128]], dtype=torch.uint8).repeat(1000, 1)
    y = dequantize(images, generator=torch.Generator().manual_seed(0))
    low = images.float() / 256
    assert (y >= low).all() and (y < low + 1 / 256).all()
    assert (y - low).mean().item() == pytest.approx(0.5 / 256, rel=0.05)


def test_a_uniform_density_is_eight_bits_per_dimension():
    assert discrete_bits_per_dim(torch.zeros(3), 784).tolist() == pytest.approx([8.0] * 3)
    # a density 2^784 times the uniform one on a cube of half the side: 7 bits per dimension
    assert discrete_bits_per_dim(torch.tensor([784 * math.log(2)]), 784).item() == pytest.approx(7)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="mask must be a tensor of zeros and ones"):
        AffineCoupling(torch.tensor([0.5, 1.0]), mlp_conditioner(2, 4))
    with pytest.raises(ValueError, match="mask must keep some features and transform others"):
        AffineCoupling(torch.ones(2), mlp_conditioner(2, 4))
    with pytest.raises(ValueError, match=r"x must have 3 features \(or channels\)"):
        ActNorm(3)(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="even height and width"):
        Squeeze()(torch.zeros(1, 1, 3, 4))
    with pytest.raises(ValueError, match="examples of the mask's shape"):
        AffineCoupling(alternating_mask(2, 0), mlp_conditioner(2, 4))(torch.zeros(3, 3))
    with pytest.raises(TypeError, match="x must be a floating-point tensor"):
        InvertibleLinear(2)(torch.zeros(2, 2, dtype=torch.int64))
    with pytest.raises(TypeError, match="images must be a uint8 tensor"):
        dequantize(torch.rand(2, 3))
    with pytest.raises(ValueError, match="temperature must be"):
        point_flow(1, 4).sample(3, temperature=0.0)
    with pytest.raises(TypeError, match="layer 1 must be a FlowLayer"):
        Sequential(ActNorm(2), nn.Linear(2, 2))
    with pytest.raises(ValueError, match="alpha must be"):
        Logit(0.5)

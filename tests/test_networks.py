import functools

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from genai_course.exercises import checking
from genai_course.exercises.core import Exercise
from genai_course.exercises.neural_networks import CONV2D, EXERCISES, LINEAR_BACKWARD
from genai_course.networks import (
    activation_derivative,
    batch_norm,
    conv2d,
    conv_output_size,
    conv_transpose2d,
    conv_transpose_output_size,
    depth_statistics,
    embedding,
    linear,
    linear_backward,
    relu_backward,
    two_layer_loss_and_grads,
)

TOL = dict(rtol=1e-10, atol=1e-10)


def randn(g, *shape, requires_grad=False):
    return torch.randn(*shape, generator=g, dtype=torch.float64).requires_grad_(requires_grad)


def assert_same_values_and_gradients(ours, theirs, inputs, g):
    """Equal values, and equal gradients of <output, r> (r random) with respect to ``inputs``."""
    torch.testing.assert_close(ours, theirs, **TOL)
    inputs = [t for t in inputs if t is not None]
    r = randn(g, *ours.shape)
    ours_grads = torch.autograd.grad((ours * r).sum(), inputs)
    theirs_grads = torch.autograd.grad((theirs * r).sum(), inputs)
    for a, b in zip(ours_grads, theirs_grads, strict=True):
        torch.testing.assert_close(a, b, **TOL)


# -- linear layers, activations, backpropagation ------------------------------------------


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 5), st.integers(1, 5), st.integers(1, 5), st.integers(0, 2**16))
def test_linear_and_its_backward_equal_torch(b, i, o, seed):
    g = torch.Generator().manual_seed(seed)
    x, weight, bias = (randn(g, *shape, requires_grad=True) for shape in [(b, i), (o, i), (o,)])
    y = linear(x, weight, bias)
    torch.testing.assert_close(y, F.linear(x, weight, bias), **TOL)
    grad_out = randn(g, b, o)
    by_autograd = torch.autograd.grad(y, (x, weight, bias), grad_out)
    by_hand = linear_backward(grad_out, x.detach(), weight.detach())
    for ours, theirs in zip(by_hand, by_autograd, strict=True):
        torch.testing.assert_close(ours, theirs, **TOL)


@pytest.mark.parametrize(
    ("name", "function"),
    [
        ("sigmoid", torch.sigmoid),
        ("tanh", torch.tanh),
        ("relu", torch.relu),
        ("leaky_relu", F.leaky_relu),
    ],
)
def test_activation_derivatives_equal_autograd_kinks_included(name, function):
    a = torch.cat([torch.linspace(-6, 6, 101, dtype=torch.float64), torch.zeros(1).double()])
    a.requires_grad_()
    (expected,) = torch.autograd.grad(function(a).sum(), a)
    torch.testing.assert_close(activation_derivative(name, a.detach()), expected, **TOL)


def test_relu_backward_masks_where_the_pre_activation_is_not_positive():
    pre = torch.tensor([[-1.0, 0.0, 2.0]], dtype=torch.float64)
    grad = torch.tensor([[5.0, 6.0, 7.0]], dtype=torch.float64)
    assert relu_backward(grad, pre).tolist() == [[0.0, 0.0, 7.0]]


def two_layer_problem(seed, b=6, i=4, hidden=5, k=3):
    g = torch.Generator().manual_seed(seed)
    x = randn(g, b, i)
    labels = torch.randint(0, k, (b,), generator=g)
    params = {"w1": randn(g, hidden, i), "b1": randn(g, hidden), "w2": randn(g, k, hidden)}
    params["b2"] = randn(g, k)
    return x, labels, params


def torch_two_layer_loss(x, labels, p):
    hidden = nn.functional.relu(nn.functional.linear(x, p["w1"], p["b1"]))
    return nn.functional.cross_entropy(nn.functional.linear(hidden, p["w2"], p["b2"]), labels)


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 8), st.integers(2, 5), st.integers(0, 2**16))
def test_backpropagation_by_hand_equals_autograd(b, k, seed):
    x, labels, params = two_layer_problem(seed, b=b, k=k)
    loss, grads = two_layer_loss_and_grads(x, labels, **params)
    leaves = {name: p.clone().requires_grad_() for name, p in params.items()}
    reference = torch_two_layer_loss(x, labels, leaves)
    torch.testing.assert_close(loss, reference, **TOL)
    expected = torch.autograd.grad(reference, list(leaves.values()))
    assert set(grads) == set(leaves)
    for name, theirs in zip(leaves, expected, strict=True):
        torch.testing.assert_close(grads[name], theirs, **TOL)


def test_backpropagation_by_hand_equals_finite_differences():
    x, labels, params = two_layer_problem(1)
    _, grads = two_layer_loss_and_grads(x, labels, **params)
    h = 1e-6
    for name, p in params.items():
        for index in range(p.numel()):
            step = torch.zeros_like(p).view(-1)
            step[index] = h
            up = two_layer_loss_and_grads(x, labels, **{**params, name: p + step.view_as(p)})[0]
            down = two_layer_loss_and_grads(x, labels, **{**params, name: p - step.view_as(p)})[0]
            central = (up - down) / (2 * h)  # error O(h^2) plus round-off O(1e-16 / h)
            assert central.item() == pytest.approx(grads[name].view(-1)[index].item(), abs=1e-8)


# -- depth and initialisation ------------------------------------------------------------


@functools.cache
def statistics(init, activation):
    g = torch.Generator().manual_seed(0)
    return depth_statistics(20, 256, init=init, activation=activation, n=100, generator=g)


def test_kaiming_keeps_relu_activations_and_gradients_at_one_scale():
    stats = statistics("kaiming", "relu")
    assert len(stats["activations"]) == len(stats["gradients"]) == 20
    first, last = stats["activations"][0], stats["gradients"][-1]
    assert all(first / 2 < s < first * 2 for s in stats["activations"])
    assert all(last / 2 < s < last * 2 for s in stats["gradients"])


def test_small_weights_make_activations_and_gradients_vanish():
    for activation in ("relu", "tanh"):
        stats = statistics("small", activation)
        assert stats["activations"][-1] < 1e-10 * stats["activations"][0]
        assert stats["gradients"][0] < 1e-10 * stats["gradients"][-1]


def test_xavier_keeps_tanh_roughly_stable_and_large_weights_explode_relu():
    activations = statistics("xavier", "tanh")["activations"]
    assert 0.1 < activations[-1] / activations[0] < 1.0  # tanh slowly contracts, no collapse
    assert statistics("large", "relu")["activations"][-1] > 1e10


def test_the_last_layers_gradient_is_the_loss_vector():
    # L = sum_n h_L,n . v, so dL/dh_L is v in every row: its std is v's, whatever the net
    a, b = statistics("kaiming", "relu"), statistics("small", "tanh")
    assert a["gradients"][-1] == pytest.approx(b["gradients"][-1], rel=1e-12)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (dict(init="he"), "init must be one of small, large, xavier, kaiming; got 'he'"),
        (dict(activation="gelu"), "activation must be one of sigmoid, tanh, relu, leaky_relu"),
        (dict(n=0), "n must be a positive int"),
    ],
)
def test_depth_statistics_names_a_bad_argument(arguments, message):
    with pytest.raises(ValueError, match=message):
        depth_statistics(3, 4, **{"init": "xavier", "activation": "tanh", **arguments})


# -- convolutions ----------------------------------------------------------------------


@st.composite
def conv_case(draw, transpose):
    """Small shapes, kernels 1..3 (not square), strides 1..3, paddings 0..2."""
    n, c, o = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    k_h, k_w = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride, padding = draw(st.integers(1, 3)), draw(st.integers(0, 2))
    extra = dict(output_padding=draw(st.integers(0, stride - 1))) if transpose else {}
    size_of = conv_transpose_output_size if transpose else conv_output_size

    def fits(size, kernel):  # the output is not empty
        try:
            size_of(size, kernel, stride, padding, **extra)
        except ValueError:
            return False
        return True

    sizes = [draw(st.integers(1, 6).filter(lambda s, k=k: fits(s, k))) for k in (k_h, k_w)]
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    weight_shape = (c, o, k_h, k_w) if transpose else (o, c, k_h, k_w)
    x = randn(g, n, c, *sizes, requires_grad=True)
    weight = randn(g, *weight_shape, requires_grad=True)
    bias = randn(g, o, requires_grad=True) if draw(st.booleans()) else None
    return g, (x, weight, bias), dict(stride=stride, padding=padding, **extra)


@settings(max_examples=60, deadline=None)
@given(conv_case(transpose=False))
def test_conv2d_equals_torch_in_values_and_gradients(case):
    g, tensors, options = case
    ours, theirs = conv2d(*tensors, **options), F.conv2d(*tensors, **options)
    assert_same_values_and_gradients(ours, theirs, tensors, g)


@settings(max_examples=60, deadline=None)
@given(conv_case(transpose=True))
def test_conv_transpose2d_equals_torch_in_values_and_gradients(case):
    g, tensors, options = case
    ours, theirs = conv_transpose2d(*tensors, **options), F.conv_transpose2d(*tensors, **options)
    assert_same_values_and_gradients(ours, theirs, tensors, g)


def test_conv_transpose2d_is_the_gradient_of_conv2d():
    # <conv(x), y> = <x, conv^T(y)>: the transpose is the adjoint, with the same weight
    g = torch.Generator().manual_seed(0)
    x, weight, y = randn(g, 2, 3, 10, 10), randn(g, 4, 3, 3, 3), randn(g, 2, 4, 5, 5)
    left = (conv2d(x, weight, stride=2, padding=1) * y).sum()
    # 10 -> 5 by the convolution; 5 -> (5 - 1) 2 - 2 + 3 + 1 = 10 back
    right = (x * conv_transpose2d(y, weight, stride=2, padding=1, output_padding=1)).sum()
    assert left.item() == pytest.approx(right.item(), rel=1e-12)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 12), st.integers(1, 5), st.integers(1, 4), st.integers(0, 3), st.data())
def test_output_sizes_are_torchs(size, kernel, stride, padding, data):
    x = torch.zeros(1, 1, size, 1)
    if size + 2 * padding >= kernel:
        out = F.conv2d(x, torch.zeros(1, 1, kernel, 1), stride=stride, padding=(padding, 0))
        assert conv_output_size(size, kernel, stride, padding) == out.shape[2]
    else:
        with pytest.raises(ValueError, match="kernel = .* is larger than the padded input"):
            conv_output_size(size, kernel, stride, padding)
    output_padding = data.draw(st.integers(0, stride - 1))
    if (size - 1) * stride + kernel + output_padding > 2 * padding:
        out = F.conv_transpose2d(
            x,
            torch.zeros(1, 1, kernel, 1),
            stride=stride,
            padding=(padding, 0),
            output_padding=(output_padding, 0),
        )
        got = conv_transpose_output_size(size, kernel, stride, padding, output_padding)
        assert got == out.shape[2]
        assert conv_output_size(got, kernel, stride, padding) == size  # the way back
    else:
        with pytest.raises(ValueError, match="crops away the whole output"):
            conv_transpose_output_size(size, kernel, stride, padding, output_padding)


def test_convolutions_name_a_bad_argument():
    x, weight = torch.zeros(1, 3, 5, 5), torch.zeros(4, 3, 3, 3)
    with pytest.raises(ValueError, match=r"x must have shape \(N, C, H, W\), got \(3, 5, 5\)"):
        conv2d(x[0], weight)
    with pytest.raises(ValueError, match=r"weight.shape\[1\] = C = x.shape\[1\] = 2"):
        conv2d(x[:, :2], weight)
    with pytest.raises(ValueError, match=r"bias must have shape \(O,\) with O = weight.shape"):
        conv2d(x, weight, torch.zeros(3))
    with pytest.raises(ValueError, match="stride must be a positive int, got 0"):
        conv2d(x, weight, stride=0)
    with pytest.raises(ValueError, match="padding must be a non-negative int, got -1"):
        conv2d(x, weight, padding=-1)
    with pytest.raises(ValueError, match="output_padding must be < stride = 2, got 2"):
        conv_transpose2d(x, weight.transpose(0, 1), stride=2, output_padding=2)
    with pytest.raises(ValueError, match=r"weight.shape\[0\] = C = x.shape\[1\] = 3"):
        conv_transpose2d(x, weight)


# -- batch normalisation and embeddings -----------------------------------------------------


@pytest.mark.parametrize("shape", [(8, 3, 4, 5), (6, 3)])
def test_batch_norm_equals_torch_over_training_steps_then_evaluation(shape):
    g = torch.Generator().manual_seed(0)
    layer = (nn.BatchNorm2d if len(shape) == 4 else nn.BatchNorm1d)(3, momentum=0.2).double()
    with torch.no_grad():
        layer.weight.copy_(randn(g, 3)), layer.bias.copy_(randn(g, 3))
    running_mean, running_var = torch.zeros(3).double(), torch.ones(3).double()
    for step in range(5):
        training = step < 3  # three training steps, then two in evaluation mode
        layer.train(training)
        x = (3 * randn(g, *shape) + 1).requires_grad_()
        ours = batch_norm(
            x, running_mean, running_var, layer.weight, layer.bias, training=training, momentum=0.2
        )
        assert_same_values_and_gradients(ours, layer(x), (x, layer.weight, layer.bias), g)
        torch.testing.assert_close(running_mean, layer.running_mean, **TOL)
        torch.testing.assert_close(running_var, layer.running_var, **TOL)
    assert (running_var - 1).abs().min() > 0.1  # the statistics moved towards 9


def test_batch_norm_names_a_bad_argument():
    x, c = torch.zeros(4, 3, 2, 2), torch.zeros(3)
    with pytest.raises(ValueError, match=r"running_var must have shape \(C,\) with C = x.shape"):
        batch_norm(x, c, torch.zeros(2), c, c, training=True)
    with pytest.raises(ValueError, match="more than one value per channel to train, got 1"):
        batch_norm(x[:1, :, :1, :1], c, c, c, c, training=True)


def test_embedding_equals_torch_in_values_and_table_gradient():
    g = torch.Generator().manual_seed(0)
    table = randn(g, 7, 4, requires_grad=True)
    ids = torch.randint(0, 7, (3, 5), generator=g)
    ours, theirs = embedding(ids, table), F.embedding(ids, table)
    assert ours.shape == (3, 5, 4)
    assert_same_values_and_gradients(ours, theirs, (table,), g)
    assert torch.equal(embedding(ids.int(), table), ours)  # int32 ids too


def test_embedding_names_bad_ids():
    table = torch.zeros(7, 4)
    with pytest.raises(TypeError, match="ids must be integer indices, got torch.float32"):
        embedding(torch.zeros(3), table)
    with pytest.raises(ValueError, match=r"ids must be in 0..6 \(V = table.shape\[0\] = 7\)"):
        embedding(torch.tensor([0, 7]), table)
    with pytest.raises(ValueError, match="ids must be in 0..6"):
        embedding(torch.tensor([-1]), table)


def test_linear_names_a_bad_shape():
    x = torch.zeros(2, 5)
    with pytest.raises(ValueError, match=r"weight must have shape \(O, I\) with I = x.shape\[1\]"):
        linear(x, torch.zeros(3, 4), torch.zeros(3))
    with pytest.raises(ValueError, match=r"bias must have shape \(O,\) with O = weight.shape"):
        linear(x, torch.zeros(3, 5), torch.zeros(4))
    with pytest.raises(ValueError, match=r"grad_out must have shape \(B, O\) = \(2, 3\)"):
        linear_backward(torch.zeros(2, 4), x, torch.zeros(3, 5))
    with pytest.raises(ValueError, match="name must be one of sigmoid, tanh, relu, leaky_relu"):
        activation_derivative("softplus", x)
    with pytest.raises(TypeError, match="labels must be integer class indices"):
        zeros = [torch.zeros(shape) for shape in [(3, 5), (3,), (2, 3), (2,)]]
        two_layer_loss_and_grads(x, torch.zeros(2), *zeros)


# -- the chapter's exercises -------------------------------------------------------------


def test_the_exercises_are_the_two_in_the_module():
    assert EXERCISES == (LINEAR_BACKWARD, CONV2D)
    assert all(isinstance(e, Exercise) and e.id.startswith("neural_networks.") for e in EXERCISES)


def _linear_backward_mean_bias(grad_out, x, weight):
    return grad_out @ weight, grad_out.T @ x, grad_out.mean(0)


def _convolution_with_a_flipped_kernel(x, weight, bias, stride, padding):
    return F.conv2d(x, weight.flip(-2, -1), bias, stride=stride, padding=padding)


@pytest.mark.parametrize(
    ("exercise", "wrong", "verdict"),
    [
        (LINEAR_BACKWARD, _linear_backward_mean_bias, "value 3 of the result has wrong values"),
        (CONV2D, _convolution_with_a_flipped_kernel, "the result has wrong values"),
        (CONV2D, lambda x, w, b, s, p: F.conv2d(x, w, b, stride=s), "has shape"),
    ],
)
def test_check_accepts_the_reference_and_rejects_a_slip(
    exercise, wrong, verdict, monkeypatch, capsys
):
    monkeypatch.setitem(checking.EXERCISES, exercise.id, exercise)
    assert checking.check(exercise.id, exercise.reference, seed=0)
    assert capsys.readouterr().out.startswith(f"✓ {exercise.id}: all")
    assert not checking.check(exercise.id, wrong, seed=0)
    out = capsys.readouterr().out
    assert out.startswith(f"✗ {exercise.id}: ") and verdict in out and exercise.hint in out


def test_the_packages_conv2d_passes_the_conv2d_exercise(monkeypatch):
    monkeypatch.setitem(checking.EXERCISES, CONV2D.id, CONV2D)
    assert checking.check(CONV2D.id, conv2d, seed=1)

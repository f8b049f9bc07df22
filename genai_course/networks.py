r"""The layers of a network and their gradients, by hand (the neural-networks chapter).

A linear layer :math:`y = x W^\top + b` and an elementwise activation
:math:`h = \phi(u)` are all a multilayer perceptron is made of. Backpropagation
is the chain rule applied layer by layer, from the loss back: given
:math:`\delta = \partial \mathcal{L} / \partial y`,

.. math:: \frac{\partial \mathcal{L}}{\partial x} = \delta W, \qquad
   \frac{\partial \mathcal{L}}{\partial W} = \delta^\top x, \qquad
   \frac{\partial \mathcal{L}}{\partial b} = \sum_n \delta_n, \qquad
   \frac{\partial \mathcal{L}}{\partial u} = \frac{\partial \mathcal{L}}{\partial h} \odot \phi'(u).

Then what images and tokens need: the convolution and its transpose written
from their definitions, batch normalisation, and the embedding as a matrix
product. Every function here is tested equal to ``torch`` (values and
gradients, in float64).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from genai_course.config import check_positive_int
from genai_course.information import softmax_cross_entropy


def _check_non_negative_int(name: str, value) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be a non-negative int, got {value!r}")


def _check_shape(name: str, tensor: torch.Tensor, expected: tuple, meaning: str) -> None:
    """Raise ``ValueError`` unless ``tensor.shape == expected``; ``meaning`` names it,
    e.g. ``"(O,) with O = weight.shape[0] = 3"``."""
    if tuple(tensor.shape) != tuple(expected):
        raise ValueError(f"{name} must have shape {meaning}, got {tuple(tensor.shape)}")


# -- the linear layer ------------------------------------------------------------------


def _check_linear(x: torch.Tensor, weight: torch.Tensor) -> None:
    if x.ndim != 2:
        raise ValueError(f"x must have shape (B, I), got {tuple(x.shape)}")
    if weight.ndim != 2 or weight.shape[1] != x.shape[1]:
        raise ValueError(
            f"weight must have shape (O, I) with I = x.shape[1] = {x.shape[1]}, "
            f"got {tuple(weight.shape)}"
        )


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    r""":math:`y = x W^\top + b`: ``x`` (B, I), ``weight`` (O, I) as ``nn.Linear``
    stores it, ``bias`` (O,) -> (B, O)."""
    _check_linear(x, weight)
    o = weight.shape[0]
    _check_shape("bias", bias, (o,), f"(O,) with O = weight.shape[0] = {o}")
    return x @ weight.T + bias  # (B, O)


def linear_backward(
    grad_out: torch.Tensor, x: torch.Tensor, weight: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""The gradients through :math:`y = x W^\top + b` given
    :math:`\delta = \partial \mathcal{L} / \partial y` (``grad_out``, (B, O)):
    :math:`(\delta W, \delta^\top x, \sum_n \delta_n)`, shaped (B, I), (O, I), (O,)."""
    _check_linear(x, weight)
    expected = (x.shape[0], weight.shape[0])
    _check_shape("grad_out", grad_out, expected, f"(B, O) = {expected}")
    return grad_out @ weight, grad_out.T @ x, grad_out.sum(0)


# -- activations -----------------------------------------------------------------------

_ACTIVATIONS = {
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "relu": torch.relu,
    "leaky_relu": F.leaky_relu,  # slope 0.01 below zero, torch's default
}

_DERIVATIVES = {
    # sigma'(a) = sigma(a) (1 - sigma(a))
    "sigmoid": lambda a: torch.sigmoid(a) * (1 - torch.sigmoid(a)),
    # tanh'(a) = 1 - tanh(a)^2
    "tanh": lambda a: 1 - torch.tanh(a) ** 2,
    # 1 where a > 0, else 0 (0 at a = 0, as torch takes it)
    "relu": lambda a: (a > 0).to(a.dtype),
    # 1 where a > 0, else 0.01
    "leaky_relu": lambda a: torch.where(a > 0, torch.ones_like(a), torch.full_like(a, 0.01)),
}


def _check_name(argument: str, name: str, choices) -> None:
    if name not in choices:
        raise ValueError(f"{argument} must be one of {', '.join(choices)}; got {name!r}")


def activation_derivative(name: str, pre: torch.Tensor) -> torch.Tensor:
    r""":math:`\phi'(a)` elementwise at the pre-activation ``pre`` for ``name`` in
    sigmoid, tanh, relu, leaky_relu (slope 0.01), with torch's value at a kink."""
    _check_name("name", name, _DERIVATIVES)
    return _DERIVATIVES[name](pre)


def relu_backward(grad_out: torch.Tensor, pre: torch.Tensor) -> torch.Tensor:
    r"""The gradient through :math:`h = \max(u, 0)` given the pre-activation :math:`u`
    (``pre``): :math:`\partial \mathcal{L} / \partial u
    = \partial \mathcal{L} / \partial h \odot \mathbb{1}[u > 0]`."""
    _check_shape("grad_out", grad_out, pre.shape, f"of pre, {tuple(pre.shape)}")
    return grad_out * activation_derivative("relu", pre)


# -- backpropagation through a two-layer network ---------------------------------------


def two_layer_loss_and_grads(
    x: torch.Tensor,
    labels: torch.Tensor,
    w1: torch.Tensor,
    b1: torch.Tensor,
    w2: torch.Tensor,
    b2: torch.Tensor,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    r"""The mean cross-entropy of a two-layer ReLU network and its gradients, by hand.

    With :math:`u = x W_1^\top + b_1`, :math:`h = \max(u, 0)`, logits
    :math:`a = h W_2^\top + b_2` and integer labels :math:`y` (B,),
    :math:`\mathcal{L} = \frac1B \sum_n -\log \operatorname{softmax}(a_n)_{y_n}`, whose
    gradient with respect to the logits starts the backward pass:

    .. math:: \frac{\partial \mathcal{L}}{\partial a}
       = \frac1B \big(\operatorname{softmax}(a) - \operatorname{onehot}(y)\big).

    Returns ``(loss, {"w1": ..., "b1": ..., "w2": ..., "b2": ...})``.
    """
    u = linear(x, w1, b1)  # (B, H)
    h = torch.relu(u)
    logits = linear(h, w2, b2)  # (B, K)
    loss = softmax_cross_entropy(logits, labels).mean()
    batch, classes = logits.shape
    # dL/da = (softmax(a) - onehot(y)) / B, (B, K)
    grad_logits = (logits.softmax(-1) - F.one_hot(labels.long(), classes).to(logits.dtype)) / batch
    grad_h, grad_w2, grad_b2 = linear_backward(grad_logits, h, w2)  # dL/dh = dL/da W2
    # dL/du = dL/dh * 1[u > 0], then back through the first layer
    _, grad_w1, grad_b1 = linear_backward(relu_backward(grad_h, u), x, w1)
    return loss, {"w1": grad_w1, "b1": grad_b1, "w2": grad_w2, "b2": grad_b2}


# -- how depth and initialisation scale activations and gradients ---------------------

INIT_STD = {
    "small": lambda fan_in, fan_out: 0.01,
    "large": lambda fan_in, fan_out: 1.0,
    # Glorot and Bengio (2010): Var w = 2 / (fan_in + fan_out)
    "xavier": lambda fan_in, fan_out: math.sqrt(2 / (fan_in + fan_out)),
    # He et al. (2015): Var w = 2 / fan_in, which ReLU's halving of the variance undoes
    "kaiming": lambda fan_in, fan_out: math.sqrt(2 / fan_in),
}


def depth_statistics(
    depth: int,
    width: int,
    *,
    init: str,
    activation: str,
    n: int = 1000,
    generator: torch.Generator | None = None,
) -> dict[str, list[float]]:
    r"""The spread of activations and gradients through ``depth`` layers of ``width``.

    Layer :math:`l` computes :math:`h_l = \phi(h_{l-1} W_l^\top)` (biases zero) with
    :math:`W_l` normal, standard deviation from ``init`` (a key of :data:`INIT_STD`),
    from ``n`` standard-normal inputs :math:`h_0`. The loss is
    :math:`\mathcal{L} = \sum_n h_{\text{depth},n} \cdot v`, with :math:`v` a fixed
    standard-normal vector.
    Returns ``{"activations": [std of h_l], "gradients": [std of dL/dh_l]}`` for
    :math:`l = 1, \dots, \text{depth}`, in float64.
    """
    for name, value in (("depth", depth), ("width", width), ("n", n)):
        check_positive_int(name, value)
    _check_name("init", init, INIT_STD)
    _check_name("activation", activation, _ACTIVATIONS)
    std = INIT_STD[init](width, width)
    h = torch.randn(n, width, generator=generator, dtype=torch.float64)  # (n, width)
    h.requires_grad_()  # so that autograd records every layer after it
    outputs = []
    for _ in range(depth):
        w = std * torch.randn(width, width, generator=generator, dtype=torch.float64)
        h = _ACTIVATIONS[activation](h @ w.T)  # (n, width)
        outputs.append(h)
    v = torch.randn(width, generator=generator, dtype=torch.float64)
    grads = torch.autograd.grad((h @ v).sum(), outputs)
    return {
        "activations": [out.std().item() for out in outputs],
        "gradients": [g.std().item() for g in grads],
    }


# -- convolution and its transpose ----------------------------------------------------


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    r""":math:`\lfloor (n + 2p - k) / s \rfloor + 1`: the output size of a convolution
    along one axis of ``size`` n, kernel k, stride s and padding p."""
    for name, value in (("size", size), ("kernel", kernel), ("stride", stride)):
        check_positive_int(name, value)
    _check_non_negative_int("padding", padding)
    out = (size + 2 * padding - kernel) // stride + 1
    if out < 1:
        raise ValueError(
            f"kernel = {kernel} is larger than the padded input, size + 2 * padding = "
            f"{size + 2 * padding}: the output would be empty"
        )
    return out


def conv_transpose_output_size(
    size: int, kernel: int, stride: int = 1, padding: int = 0, output_padding: int = 0
) -> int:
    r""":math:`(n - 1) s - 2p + k + p_{\text{out}}`: the output size of a transposed
    convolution along one axis. For each :math:`0 \le p_{\text{out}} < s` it is one of
    the sizes that a convolution with the same k, s, p maps back to n."""
    for name, value in (("size", size), ("kernel", kernel), ("stride", stride)):
        check_positive_int(name, value)
    _check_non_negative_int("padding", padding)
    _check_non_negative_int("output_padding", output_padding)
    if output_padding >= stride:
        raise ValueError(f"output_padding must be < stride = {stride}, got {output_padding}")
    out = (size - 1) * stride - 2 * padding + kernel + output_padding
    if out < 1:
        raise ValueError(
            f"padding = {padding} crops away the whole output, "
            f"(size - 1) * stride + kernel + output_padding = {out + 2 * padding}"
        )
    return out


def _check_conv(x: torch.Tensor, weight: torch.Tensor, bias, in_axis: int, out_axis: int):
    """``x`` (N, C, H, W) with C = weight.shape[in_axis]; ``bias`` (weight.shape[out_axis],)."""
    if x.ndim != 4:
        raise ValueError(f"x must have shape (N, C, H, W), got {tuple(x.shape)}")
    if weight.ndim != 4 or weight.shape[in_axis] != x.shape[1]:
        raise ValueError(
            f"weight must be 4-D with weight.shape[{in_axis}] = C = x.shape[1] = {x.shape[1]}, "
            f"got {tuple(weight.shape)}"
        )
    if bias is not None:
        o = weight.shape[out_axis]
        _check_shape("bias", bias, (o,), f"(O,) with O = weight.shape[{out_axis}] = {o}")


def _add_bias(out: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return out if bias is None else out + bias[:, None, None]  # (N, O, H', W')


def conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: int = 1,
    padding: int = 0,
) -> torch.Tensor:
    r"""The convolution (a cross-correlation) of ``x`` (N, C, H, W) with ``weight``
    (O, C, k_H, k_W), as ``F.conv2d`` computes it:

    .. math:: y_{n,o,i,j} = b_o + \sum_{c,u,v} \tilde x_{n,c,si+u,sj+v}\, w_{o,c,u,v},

    :math:`\tilde x` being ``x`` with ``padding`` zeros on each side. One term per
    kernel offset (u, v); returns (N, O, H', W'), H' from :func:`conv_output_size`.
    """
    _check_conv(x, weight, bias, in_axis=1, out_axis=0)
    k_h, k_w = weight.shape[2:]
    h_out = conv_output_size(x.shape[2], k_h, stride, padding)
    w_out = conv_output_size(x.shape[3], k_w, stride, padding)
    x_pad = F.pad(x, (padding,) * 4)  # (N, C, H + 2p, W + 2p)
    out = 0
    for u in range(k_h):
        for v in range(k_w):
            # x~[n, c, s i + u, s j + v] for every output position (i, j)
            patch = x_pad[:, :, u : u + stride * h_out : stride, v : v + stride * w_out : stride]
            out = out + torch.einsum("nchw,oc->nohw", patch, weight[:, :, u, v])
    return _add_bias(out, bias)  # (N, O, H', W')


def conv_transpose2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: int = 1,
    padding: int = 0,
    output_padding: int = 0,
) -> torch.Tensor:
    r"""The transposed convolution of ``x`` (N, C, H, W) with ``weight``
    (C, O, k_H, k_W), as ``F.conv_transpose2d`` computes it: every input pixel
    scatters its value times the kernel into the output,

    .. math:: \tilde y_{n,o,si+u,sj+v} \mathrel{+}= \sum_c x_{n,c,i,j}\, w_{c,o,u,v},

    on a canvas of :math:`(H - 1)s + k_H + p_{\text{out}}` rows (likewise columns);
    then ``padding`` rows and columns are cropped from each side and the bias added.
    Returns (N, O, H', W'), H' from :func:`conv_transpose_output_size`.
    """
    _check_conv(x, weight, bias, in_axis=0, out_axis=1)
    (n, _, h, w), (_, o, k_h, k_w) = x.shape, weight.shape
    h_out = conv_transpose_output_size(h, k_h, stride, padding, output_padding)
    w_out = conv_transpose_output_size(w, k_w, stride, padding, output_padding)
    canvas = x.new_zeros(n, o, h_out + 2 * padding, w_out + 2 * padding)
    for u in range(k_h):
        for v in range(k_w):
            # the input pixel (i, j) lands at (s i + u, s j + v)
            rows, cols = slice(u, u + stride * h, stride), slice(v, v + stride * w, stride)
            canvas[:, :, rows, cols] += torch.einsum("nchw,co->nohw", x, weight[:, :, u, v])
    out = canvas[:, :, padding : padding + h_out, padding : padding + w_out]
    return _add_bias(out, bias)  # (N, O, H', W')


# -- batch normalisation and the embedding --------------------------------------------


def batch_norm(
    x: torch.Tensor,
    running_mean: torch.Tensor,
    running_var: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    *,
    training: bool,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> torch.Tensor:
    r"""Batch normalisation of ``x`` (N, C) or (N, C, H, W), per channel c:

    .. math:: y = \gamma_c \frac{x - \mu_c}{\sqrt{\sigma_c^2 + \epsilon}} + \beta_c.

    Training: :math:`\mu_c, \sigma_c^2` are the batch's mean and biased variance over
    every axis but C (m values each), and each running statistic is updated in place,
    :math:`r \leftarrow (1 - \rho) r + \rho \hat r` with :math:`\rho` the momentum and
    :math:`\hat r` the batch's mean or its *unbiased* variance
    :math:`\sigma_c^2 m / (m - 1)`, as ``nn.BatchNorm2d`` does. Evaluation: the running
    statistics are :math:`\mu_c, \sigma_c^2`. ``weight`` is :math:`\gamma`, ``bias``
    :math:`\beta`, all four vectors (C,).
    """
    if x.ndim < 2:
        raise ValueError(f"x must have shape (N, C) or (N, C, H, W), got {tuple(x.shape)}")
    c = x.shape[1]
    vectors = dict(running_mean=running_mean, running_var=running_var, weight=weight, bias=bias)
    for name, vector in vectors.items():
        _check_shape(name, vector, (c,), f"(C,) with C = x.shape[1] = {c}")
    axes = [0, *range(2, x.ndim)]  # every axis but C
    shape = (1, c) + (1,) * (x.ndim - 2)  # (1, C, 1, 1) to broadcast a (C,) vector
    if training:
        m = x.numel() // c
        if m < 2:
            raise ValueError(f"x must have more than one value per channel to train, got {m}")
        mu, var = x.mean(axes), x.var(axes, correction=0)
        with torch.no_grad():
            running_mean.lerp_(mu, momentum)  # (1 - rho) r + rho mu
            running_var.lerp_(var * m / (m - 1), momentum)
    else:
        mu, var = running_mean, running_var
    x_hat = (x - mu.view(shape)) / torch.sqrt(var.view(shape) + eps)
    return weight.view(shape) * x_hat + bias.view(shape)


def embedding(ids: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    r"""The rows of ``table`` (V, D) that integer ``ids`` (any shape) pick, as a
    matrix product: :math:`\operatorname{onehot}(\text{ids}) \, E`, shape (*ids.shape, D)."""
    if ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
        raise TypeError(f"ids must be integer indices, got {ids.dtype}")
    if table.ndim != 2:
        raise ValueError(f"table must have shape (V, D), got {tuple(table.shape)}")
    vocab = table.shape[0]
    if ids.numel() and (ids.min() < 0 or ids.max() >= vocab):
        raise ValueError(
            f"ids must be in 0..{vocab - 1} (V = table.shape[0] = {vocab}); got values from "
            f"{ids.min().item()} to {ids.max().item()}"
        )
    return F.one_hot(ids.long(), vocab).to(table.dtype) @ table  # (*ids.shape, D)

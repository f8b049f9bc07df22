"""The neural-networks chapter (notebook ``neural_networks``): the backward pass of a
linear layer by hand, and a convolution written from its definition.

The reference for the first is the package's own (``genai_course.networks``), tested
against autograd; for the second, ``F.conv2d`` itself.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from genai_course.exercises.core import Exercise, random_int, random_normal
from genai_course.networks import linear_backward

# -- neural_networks.linear_backward -------------------------------------------------------


def _draw_linear_backward(g: torch.Generator):
    b, i, o = random_int(g, 1, 6), random_int(g, 1, 6), random_int(g, 1, 6)
    return random_normal(g, b, o), random_normal(g, b, i), random_normal(g, o, i)


def _fixed_linear_backward():
    g = torch.Generator().manual_seed(0)
    return [
        # a batch of one: the bias gradient is still (O,), not (1, O)
        (random_normal(g, 1, 3), random_normal(g, 1, 4), random_normal(g, 3, 4)),
        # B = I = O: every transposition slip has the right shape, only the values show it
        (random_normal(g, 3, 3), random_normal(g, 3, 3), random_normal(g, 3, 3)),
    ]


LINEAR_BACKWARD = Exercise(
    "neural_networks.linear_backward",
    "linear_backward(grad_out, x, weight): grad_out (B, O) the gradient of a loss with "
    "respect to y = x @ weight.T + b, x (B, I), weight (O, I) as nn.Linear stores it -> "
    "(grad_x (B, I), grad_weight (O, I), grad_bias (O,)), the gradients of that loss "
    "with respect to x, weight and b",
    linear_backward,
    _draw_linear_backward,
    fixed=_fixed_linear_backward(),
    hint="write y_bo = sum_i x_bi w_oi + b_o and ask which entries of y each parameter "
    "touches; each gradient has the shape of what it is the gradient of, and a parameter "
    "every example uses collects a term from every example.",
)

# -- neural_networks.conv2d ----------------------------------------------------------------


def _conv2d(x, weight, bias, stride, padding):
    r""":math:`y_{n,o,i,j} = b_o + \sum_{c,u,v} \tilde x_{n,c,si+u,sj+v} w_{o,c,u,v}`."""
    return F.conv2d(x, weight, bias, stride=stride, padding=padding)


def _draw_conv2d(g: torch.Generator):
    n, c, o, k = random_int(g, 1, 2), random_int(g, 1, 3), random_int(g, 1, 3), random_int(g, 1, 3)
    h, w = random_int(g, k, 7), random_int(g, k, 7)  # the kernel fits without padding
    x = random_normal(g, n, c, h, w)  # (N, C, H, W)
    weight, bias = random_normal(g, o, c, k, k), random_normal(g, o)
    return x, weight, bias, random_int(g, 1, 3), random_int(g, 0, 2)


def _fixed_conv2d():
    g = torch.Generator().manual_seed(0)
    x = random_normal(g, 2, 3, 7, 5)  # (N, C, H, W), not square
    weight, bias = random_normal(g, 4, 3, 3, 3), random_normal(g, 4)
    return [
        (x, weight, bias, 2, 1),  # stride 2 with padding 1, on a non-square image
        (x, weight[:, :, :1, :1], bias, 1, 0),  # a 1 x 1 kernel: a linear map per pixel
        (x[:, :, :3, :3], weight, bias, 3, 0),  # the kernel covers the whole image
    ]


CONV2D = Exercise(
    "neural_networks.conv2d",
    "conv2d(x, weight, bias, stride, padding): x (N, C, H, W), weight (O, C, k, k), "
    "bias (O,), ints stride >= 1 and padding >= 0 -> (N, O, H', W') with "
    "H' = (H + 2 padding - k) // stride + 1 (likewise W'), as F.conv2d computes it: "
    "out[n, o, i, j] = bias[o] + sum over c, u, v of xpad[n, c, stride i + u, stride j + v] "
    "* weight[o, c, u, v], xpad being x with padding zeros on every side; without "
    "calling F.conv2d or nn.Conv2d",
    _conv2d,
    _draw_conv2d,
    fixed=_fixed_conv2d(),
    hint="pad first, then for each kernel offset (u, v) take the slice of the padded "
    "input that offset sees at every output position, stepping by the stride; the "
    "kernel is not flipped.",
)

EXERCISES = (LINEAR_BACKWARD, CONV2D)

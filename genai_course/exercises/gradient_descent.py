"""The gradient-descent chapter (notebook ``gradient_descent``): one step of
heavy-ball momentum and one of Adam, as ``torch.optim`` takes them.

The references are ``torch.optim.SGD`` and ``torch.optim.Adam`` themselves, run
for one step from the state the exercise gives.
"""

from __future__ import annotations

import torch

from genai_course.exercises.core import Exercise, f64, random_int, random_normal, random_uniform


def _parameter(theta: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """A copy of ``theta`` to hand an optimiser, with ``grad`` as its gradient."""
    p = theta.clone().requires_grad_()
    p.grad = grad.clone()
    return p


# -- gradient_descent.momentum_step --------------------------------------------------------


def _momentum_step(theta, grad, velocity, lr, momentum):
    r""":math:`b \leftarrow \mu b + g`, then :math:`\theta \leftarrow \theta - \eta b`:
    (new theta, new velocity)."""
    p = _parameter(theta, grad)
    optimizer = torch.optim.SGD([p], lr=lr, momentum=momentum)
    optimizer.state[p]["momentum_buffer"] = velocity.clone()
    optimizer.step()
    return p.detach(), optimizer.state[p]["momentum_buffer"]


def _draw_momentum_step(g: torch.Generator):
    n = random_int(g, 1, 6)
    theta, grad, velocity = random_normal(g, n), random_normal(g, n), random_normal(g, n)
    return theta, grad, velocity, random_uniform(g, 1e-3, 0.1), random_uniform(g, 0, 0.99)


MOMENTUM_STEP = Exercise(
    "gradient_descent.momentum_step",
    "momentum_step(theta, grad, velocity, lr, momentum): tensors theta, grad, velocity "
    "of one shape, floats lr, momentum -> (new theta, new velocity), one step of "
    "heavy-ball momentum in torch.optim.SGD's form: velocity = momentum * velocity + grad, "
    "then theta - lr * velocity",
    _momentum_step,
    _draw_momentum_step,
    hint="update the velocity first, b = momentum * b + grad, then step against it: "
    "theta - lr * b.",
)

# -- gradient_descent.adam_step ------------------------------------------------------------


def _adam_step(theta, grad, m, v, t, lr, beta1, beta2, eps):
    r"""Adam's step :math:`t` (Kingma and Ba, 2015, algorithm 1):
    :math:`m \leftarrow \beta_1 m + (1 - \beta_1) g`,
    :math:`v \leftarrow \beta_2 v + (1 - \beta_2) g^2`, then
    :math:`\theta \leftarrow \theta - \eta\, \hat m / (\sqrt{\hat v} + \epsilon)` with
    :math:`\hat m = m / (1 - \beta_1^t)`, :math:`\hat v = v / (1 - \beta_2^t)`:
    (new theta, new m, new v)."""
    p = _parameter(theta, grad)
    optimizer = torch.optim.Adam([p], lr=lr, betas=(beta1, beta2), eps=eps, foreach=False)
    # torch counts the steps already taken: t - 1 before this one
    optimizer.state[p].update(
        step=torch.tensor(float(t - 1)), exp_avg=m.clone(), exp_avg_sq=v.clone()
    )
    optimizer.step()
    state = optimizer.state[p]
    return p.detach(), state["exp_avg"], state["exp_avg_sq"]


def _draw_adam_step(g: torch.Generator):
    n = random_int(g, 1, 6)
    m, v = random_normal(g, n, scale=0.1), random_normal(g, n).abs() * 0.01
    theta, grad = random_normal(g, n), random_normal(g, n)
    return theta, grad, m, v, random_int(g, 1, 50), random_uniform(g, 1e-4, 1e-2), 0.9, 0.999, 1e-8


ADAM_STEP = Exercise(
    "gradient_descent.adam_step",
    "adam_step(theta, grad, m, v, t, lr, beta1, beta2, eps): tensors theta, grad and "
    "Adam's running averages m, v; t the number of this step (1 for the first); floats "
    "lr, beta1, beta2, eps -> (new theta, new m, new v), as torch.optim.Adam computes them: "
    "the step uses the bias-corrected averages and adds eps outside the square root, and "
    "the m and v returned are the uncorrected ones",
    _adam_step,
    _draw_adam_step,
    # the first step, from zero averages, where the bias correction matters most
    fixed=[(f64(1.0, 1.0, 1.0), f64(1.0, -2.0, 1e-3), f64(0, 0, 0), f64(0, 0, 0),
            1, 0.1, 0.9, 0.999, 1e-8)],  # fmt: skip
    hint="update m and v first; for the step, divide m by 1 - beta1^t and v by "
    "1 - beta2^t (the bias correction) and add eps outside the square root; return the "
    "uncorrected m and v.",
)

EXERCISES = (MOMENTUM_STEP, ADAM_STEP)

r"""Gradient descent and its descendants, written from their update rules (the gradient-descent
chapter).

* plain gradient descent, :math:`x_{t+1} = x_t - \eta \nabla f(x_t)`;
* :class:`SGD` with momentum (heavy ball or Nesterov) and weight decay;
* :class:`Adam` (Kingma and Ba, 2015).

``SGD`` and ``Adam`` are ``torch.optim.Optimizer`` subclasses with the same
hyperparameters and the same trajectories as ``torch.optim.SGD`` and
``torch.optim.Adam`` (the tests check it), so they plug into any training
loop, the book's ``fit`` included.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def gradient_descent(
    f: Callable[[torch.Tensor], torch.Tensor],
    x0,
    lr: float,
    steps: int,
    grad: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    r"""Run :math:`x_{t+1} = x_t - \eta \nabla f(x_t)`; return the path, (steps + 1, D).

    ``grad`` is the gradient written by hand; without it, autograd computes
    :math:`\nabla f` from ``f``. A path that overflows is returned as it is
    (its later points ``inf`` or ``nan``): divergence is a result to look at.
    """
    if lr < 0:
        raise ValueError(f"lr must be >= 0, got {lr!r}")
    if not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be a non-negative int, got {steps!r}")
    x = torch.as_tensor(x0).detach().clone()
    if not x.is_floating_point():
        x = x.to(torch.get_default_dtype())
    path = [x.clone()]
    for _ in range(steps):
        if grad is not None:
            g = grad(x)
        else:
            x_ = x.clone().requires_grad_(True)
            (g,) = torch.autograd.grad(f(x_), x_)
        x = x - lr * g
        path.append(x.detach().clone())
    return torch.stack(path)


def trajectory(
    f: Callable[[torch.Tensor], torch.Tensor],
    x0,
    make_optimizer: Callable[[list[torch.Tensor]], torch.optim.Optimizer],
    steps: int,
) -> torch.Tensor:
    """Minimise ``f`` from ``x0`` with an optimizer; return the path, shape (steps + 1, D).

    ``make_optimizer`` builds the optimizer for a list of parameters, e.g.
    ``lambda params: Adam(params, lr=0.1)``; the gradient comes from autograd.
    """
    if not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be a non-negative int, got {steps!r}")
    x = torch.as_tensor(x0).detach().clone()
    x = (x if x.is_floating_point() else x.to(torch.get_default_dtype())).requires_grad_(True)
    optimizer = make_optimizer([x])
    path = [x.detach().clone()]
    for _ in range(steps):
        optimizer.zero_grad()
        f(x).backward()
        optimizer.step()
        path.append(x.detach().clone())
    return torch.stack(path)


class _PerParameter(torch.optim.Optimizer):
    """The loop every optimizer here shares: apply ``_update`` to each parameter."""

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for theta in group["params"]:
                if theta.grad is not None:
                    self._update(theta, theta.grad, self.state[theta], group)
        return loss

    def _update(self, theta: torch.Tensor, grad: torch.Tensor, state: dict, group: dict):
        raise NotImplementedError


class SGD(_PerParameter):
    r"""Stochastic gradient descent with momentum, as ``torch.optim.SGD`` defines it.

    With :math:`g_t = \nabla f(\theta_t) + \lambda \theta_t` (weight decay
    :math:`\lambda`) and momentum :math:`\mu`, dampening :math:`\tau`:

    .. math:: b_t = \mu b_{t-1} + (1 - \tau) g_t \quad (b_1 = g_1), \qquad
       \theta_{t+1} = \theta_t - \eta \cdot
       \begin{cases} g_t + \mu b_t & \text{Nesterov} \\ b_t & \text{otherwise.} \end{cases}
    """

    def __init__(
        self,
        params,
        lr: float,
        momentum: float = 0.0,
        dampening: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
    ):
        if lr < 0:
            raise ValueError(f"lr must be >= 0, got {lr!r}")
        if momentum < 0:
            raise ValueError(f"momentum must be >= 0, got {momentum!r}")
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("nesterov needs momentum > 0 and dampening = 0")
        defaults = dict(
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            nesterov=nesterov,
            weight_decay=weight_decay,
        )
        super().__init__(params, defaults)

    def _update(self, theta, grad, state, group):
        mu, tau = group["momentum"], group["dampening"]
        g = grad + group["weight_decay"] * theta
        if mu != 0:
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = g.clone()  # b_1 = g_1
            else:
                state["momentum_buffer"].mul_(mu).add_(g, alpha=1 - tau)
            b = state["momentum_buffer"]
            g = g + mu * b if group["nesterov"] else b
        theta.add_(g, alpha=-group["lr"])


class Adam(_PerParameter):
    r"""Adam (Kingma and Ba, 2015), as ``torch.optim.Adam`` defines it.

    With :math:`g_t = \nabla f(\theta_{t-1}) + \lambda \theta_{t-1}`:

    .. math:: m_t = \beta_1 m_{t-1} + (1 - \beta_1) g_t, \qquad
       v_t = \beta_2 v_{t-1} + (1 - \beta_2) g_t^2,

    .. math:: \hat m_t = \frac{m_t}{1 - \beta_1^t}, \qquad
       \hat v_t = \frac{v_t}{1 - \beta_2^t}, \qquad
       \theta_t = \theta_{t-1} - \eta \frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon}.
    """

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ):
        if lr < 0:
            raise ValueError(f"lr must be >= 0, got {lr!r}")
        if not all(0 <= beta < 1 for beta in betas) or len(betas) != 2:
            raise ValueError(f"betas must be two numbers in [0, 1), got {betas!r}")
        if eps <= 0:
            raise ValueError(f"eps must be > 0, got {eps!r}")
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
        super().__init__(
            params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)
        )

    def _update(self, theta, grad, state, group):
        beta1, beta2 = group["betas"]
        g = grad + group["weight_decay"] * theta
        if not state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(theta)  # m
            state["exp_avg_sq"] = torch.zeros_like(theta)  # v
        state["step"] += 1
        t, m, v = state["step"], state["exp_avg"], state["exp_avg_sq"]
        m.mul_(beta1).add_(g, alpha=1 - beta1)
        v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        m_hat = m / (1 - beta1**t)
        v_hat = v / (1 - beta2**t)
        theta.sub_(group["lr"] * m_hat / (v_hat.sqrt() + group["eps"]))

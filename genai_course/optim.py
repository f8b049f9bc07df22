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

from genai_course.config import check_non_negative_int, check_real


def _check_callable(name: str, value) -> None:
    if not callable(value):
        raise TypeError(f"{name} must be a function, got {type(value).__name__}")


def _start(x0) -> torch.Tensor:
    """The starting point as a new floating tensor (integers become the default float
    dtype), or an error naming ``x0``: complex or non-finite starts are refused."""
    x = torch.as_tensor(x0).detach().clone()
    if x.is_complex():
        raise TypeError("x0 must be real, got a complex tensor")
    if not x.is_floating_point():
        x = x.to(torch.get_default_dtype())
    if not torch.isfinite(x).all():
        raise ValueError("x0 must be finite, got NaN or infinite values")
    return x


def _scalar(value: torch.Tensor) -> torch.Tensor:
    """``f(x)``, checked to be one number: what a gradient is taken of."""
    if not isinstance(value, torch.Tensor) or value.numel() != 1:
        shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise ValueError(f"f must return one number (a tensor of one element), got {shape}")
    return value.reshape(())


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
    (its later points ``inf`` or ``nan``): divergence is a result to look at. ``x0``
    itself must be finite.
    """
    _check_callable("f", f)
    if grad is not None:
        _check_callable("grad", grad)
    lr = check_real("lr", lr, 0)
    check_non_negative_int("steps", steps)
    x = _start(x0)
    path = [x.clone()]
    for _ in range(steps):
        if grad is not None:
            g = grad(x)
            if not isinstance(g, torch.Tensor) or g.shape != x.shape:
                shape = tuple(g.shape) if isinstance(g, torch.Tensor) else type(g).__name__
                raise ValueError(f"grad must return a tensor of the shape of x0, "
                                 f"{tuple(x.shape)}; got {shape}")  # fmt: skip
        else:
            x_ = x.clone().requires_grad_(True)
            (g,) = torch.autograd.grad(_scalar(f(x_)), x_)
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
    _check_callable("f", f)
    _check_callable("make_optimizer", make_optimizer)
    check_non_negative_int("steps", steps)
    x = _start(x0).requires_grad_(True)
    optimizer = make_optimizer([x])
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(
            f"make_optimizer must return a torch.optim.Optimizer, got {type(optimizer).__name__}"
        )
    path = [x.detach().clone()]
    for _ in range(steps):
        optimizer.zero_grad()
        _scalar(f(x)).backward()
        optimizer.step()
        path.append(x.detach().clone())
    return torch.stack(path)


class _PerParameter(torch.optim.Optimizer):
    """The loop every optimizer here shares: apply ``_update`` to each parameter."""

    def __init__(self, params, defaults: dict):
        if isinstance(params, torch.Tensor):
            raise TypeError("params must be an iterable of tensors (model.parameters(), [x]), "
                            "got a tensor: put it in a list")  # fmt: skip
        try:
            params = list(params)
        except TypeError:
            raise TypeError(
                f"params must be an iterable of tensors, got {type(params).__name__}"
            ) from None
        if not params:
            raise ValueError("params is empty: there is nothing to optimise")
        super().__init__(params, defaults)
        for group in self.param_groups:
            for theta in group["params"]:
                if not (theta.is_floating_point() or theta.is_complex()):
                    raise TypeError(f"params must be floating-point tensors, got {theta.dtype}")

    @torch.no_grad()
    def step(self, closure=None):
        """One update of every parameter that has a gradient. Values are not checked (this
        is the training step, where a check would wait for the device): a NaN or infinite
        gradient gives NaN parameters, as in ``torch.optim``."""
        loss = None
        if closure is not None:
            _check_callable("closure", closure)
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for theta in group["params"]:
                if theta.grad is None:
                    continue
                # as torch.optim does: a complex parameter is its real and imaginary parts
                view, grad = theta, theta.grad
                if theta.is_complex():
                    view, grad = torch.view_as_real(theta), torch.view_as_real(grad)
                self._update(view, grad, self.state[theta], group)
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
        lr, momentum = check_real("lr", lr, 0), check_real("momentum", momentum, 0)
        dampening = check_real("dampening", dampening, 0, 1)
        weight_decay = check_real("weight_decay", weight_decay, 0)
        if not isinstance(nesterov, bool):
            raise TypeError(f"nesterov must be True or False, got {nesterov!r}")
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
        lr = check_real("lr", lr, 0)
        try:
            beta1, beta2 = (check_real("betas", beta, 0, 1, high_open=True) for beta in betas)
        except (TypeError, ValueError):  # not two numbers, or one outside [0, 1)
            raise ValueError(f"betas must be two numbers in [0, 1), got {betas!r}") from None
        eps = check_real("eps", eps, 0, low_open=True)
        weight_decay = check_real("weight_decay", weight_decay, 0)
        super().__init__(
            params, dict(lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay)
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

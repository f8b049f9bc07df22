r"""The Dirac-GAN (the chapter on stabilising GANs): the smallest GAN whose training fails.

Mescheder et al. (2018) strip the game down to two numbers. The data are a point mass
at 0; the generator is one parameter :math:`\theta` (its one sample is
:math:`G = \theta`); the discriminator is linear, :math:`C(x) = \sigma(\psi x)`, with
logit :math:`a = \psi x`. The book's losses (:mod:`genai_course.gan`) then read

.. math:: \mathcal{L}_C(\theta, \psi) = \operatorname{softplus}(-\psi \cdot 0)
   + \operatorname{softplus}(\psi\theta) + \tfrac{\rho}{2}\psi^2, \qquad
   \mathcal{L}_G(\theta, \psi) = \operatorname{softplus}(-\psi\theta)

(non-saturating; the minimax :math:`-\operatorname{softplus}(\psi\theta)` has the same
gradient at the equilibrium), where :math:`\tfrac{\rho}{2}\psi^2` is the R1 gradient
penalty :math:`\tfrac{\rho}{2}\lVert\nabla_x a\rVert^2` on the real data
(:math:`\nabla_x a = \psi`). The only equilibrium is :math:`(\theta, \psi) = (0, 0)`:
the generator on the data, and a discriminator that cannot tell. Each player takes a
gradient step of size :math:`\eta` on its own loss, both at once (*simultaneous*) or
the discriminator first and then the generator against the updated discriminator
(*alternating*, what :func:`~genai_course.gan.gan_step` does). Near the equilibrium an
update is linear, :math:`(\theta, \psi)_{t+1} \approx J (\theta, \psi)_t`, and the
eigenvalues :math:`\lambda` of its Jacobian :math:`J` decide: :math:`|\lambda| > 1`
spirals out, :math:`|\lambda| = 1` circles for ever, :math:`|\lambda| < 1` converges.
"""

from __future__ import annotations

import torch

from genai_course.config import check_non_negative_int, check_real
from genai_course.gan import discriminator_loss, generator_loss

MODES = ("simultaneous", "alternating")


def _check(lr, penalty, mode) -> tuple[float, float]:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(map(repr, MODES))}, got {mode!r}")
    return check_real("lr", lr, 0, low_open=True), check_real("penalty", penalty, 0)


def _scalar(value, name: str) -> torch.Tensor:
    """A real number as a float64 scalar tensor (keeping its graph), or an error naming it."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1 or value.is_complex() or not value.is_floating_point():
            raise ValueError(f"{name} must be one real number, got a tensor of shape "
                             f"{tuple(value.shape)} and dtype {value.dtype}")  # fmt: skip
        return value.reshape(()).double()
    return torch.tensor(check_real(name, value), dtype=torch.float64)


def losses(theta, psi, penalty: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The two players' losses at :math:`(\theta, \psi)`: :math:`\mathcal{L}_C` (the book's
    ``discriminator_loss`` on the real logit :math:`\psi \cdot 0` and the fake logit
    :math:`\psi\theta`, plus the R1 penalty :math:`\tfrac{\rho}{2}\psi^2`) and
    :math:`\mathcal{L}_G` (``generator_loss``, non-saturating), as float64 scalars."""
    theta, psi = _scalar(theta, "theta"), _scalar(psi, "psi")
    penalty = check_real("penalty", penalty, 0)
    real_logit, fake_logit = psi * 0.0, psi * theta  # a = psi x at x = 0 and at x = theta
    loss_c = discriminator_loss(real_logit[None], fake_logit[None])[0] + penalty / 2 * psi**2
    return loss_c, generator_loss(fake_logit[None])[0]


def step(theta, psi, lr: float, mode: str = "simultaneous", penalty: float = 0.0):
    r"""One round of gradient descent of both players, each on its own loss:
    :math:`\psi \leftarrow \psi - \eta\,\partial_\psi \mathcal{L}_C` and
    :math:`\theta \leftarrow \theta - \eta\,\partial_\theta \mathcal{L}_G`, both at the old
    point (``mode="simultaneous"``) or the generator's at the updated :math:`\psi`
    (``"alternating"``). Returns the new :math:`(\theta, \psi)` as float64 scalars; it is
    differentiable, so ``torch.func`` gives the Jacobian of the update (:func:`jacobian`)."""
    lr, penalty = _check(lr, penalty, mode)
    theta, psi = _scalar(theta, "theta"), _scalar(psi, "psi")
    # partial derivatives, each player's own, by torch.func.grad: the other player's
    # parameter is held fixed, and the step stays differentiable (for its Jacobian)
    grad_psi = torch.func.grad(lambda p: losses(theta, p, penalty)[0])(psi)
    new_psi = psi - lr * grad_psi
    against = psi if mode == "simultaneous" else new_psi  # which discriminator G answers
    grad_theta = torch.func.grad(lambda t: losses(t, against, penalty)[1])(theta)
    return theta - lr * grad_theta, new_psi


def trajectory(theta, psi, lr: float, steps: int, mode: str = "simultaneous",
               penalty: float = 0.0) -> torch.Tensor:  # fmt: skip
    r"""The points :math:`(\theta_t, \psi_t)` for :math:`t = 0, \dots,` ``steps``, from
    :func:`step`: a float64 tensor (steps + 1, 2)."""
    check_non_negative_int("steps", steps)
    _check(lr, penalty, mode)
    point = (_scalar(theta, "theta").detach(), _scalar(psi, "psi").detach())
    points = [torch.stack(point)]
    for _ in range(steps):
        point = tuple(v.detach() for v in step(*point, lr, mode, penalty))
        points.append(torch.stack(point))
    return torch.stack(points)  # (steps + 1, 2)


def jacobian(lr: float, mode: str = "simultaneous", penalty: float = 0.0) -> torch.Tensor:
    r"""The Jacobian :math:`J` (2, 2) of one :func:`step` at the equilibrium
    :math:`(0, 0)`, by ``torch.func.jacrev`` through the step. In closed form (with
    :math:`\sigma(0) = \tfrac12`): simultaneous
    :math:`\begin{pmatrix} 1 & \eta/2 \\ -\eta/2 & 1 - \eta\rho \end{pmatrix}`, alternating
    :math:`\begin{pmatrix} 1 - \eta^2/4 & \eta(1 - \eta\rho)/2 \\ -\eta/2 & 1 - \eta\rho
    \end{pmatrix}`, rows and columns in the order :math:`(\theta, \psi)`."""
    lr, penalty = _check(lr, penalty, mode)
    zero = torch.zeros(2, dtype=torch.float64)
    return torch.func.jacrev(
        lambda point: torch.stack(step(point[0], point[1], lr, mode, penalty))
    )(zero)  # (2, 2)


def eigenvalues(lr: float, mode: str = "simultaneous", penalty: float = 0.0) -> torch.Tensor:
    r"""The eigenvalues :math:`\lambda` (2,) of :func:`jacobian`, complex128. Near the
    equilibrium the distance from it is multiplied by :math:`|\lambda|` each step and the
    point turns by :math:`\arg\lambda`."""
    return torch.linalg.eigvals(jacobian(lr, mode, penalty))

r"""Flow matching (the diffusion chapter): a velocity field learned along straight paths from
noise to data, then followed by an ODE solver (Lipman et al. 2023; Liu et al. 2023, "rectified
flow").

A pair :math:`x_0 \sim \mathcal{N}(0, I)` (noise) and :math:`x_1` (data) is joined by the
straight path :math:`x_t = (1 - t)\, x_0 + t\, x_1`, whose velocity is :math:`x_1 - x_0`.
A network :math:`\hat v(x_t, t)` regresses it,

.. math:: \mathcal{L} = \mathbb{E}_{t \sim U(0, 1),\, x_0,\, x_1}
          \lVert \hat v(x_t, t) - (x_1 - x_0) \rVert^2,

and its minimiser is the velocity :math:`\mathbb{E}[x_1 - x_0 \mid x_t]`, whose flow carries
:math:`\mathcal{N}(0, I)` at :math:`t = 0` to the data's distribution at :math:`t = 1`.
Sampling integrates :math:`dx/dt = \hat v(x, t)` from noise, here with Euler's method.
Time runs the other way from the diffusion module's: here :math:`t = 0` is noise.
"""

from __future__ import annotations

import torch

from genai_course.diffusion import Denoiser, check_sampling, guided, model_device


def straight_path(x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    r""":math:`x_t = (1 - t)\, x_0 + t\, x_1`, one :math:`t` per example (B,)."""
    t = t.to(x1.dtype).reshape(-1, *[1] * (x1.ndim - 1))  # (B, 1, ...)
    return (1 - t) * x0 + t * x1


def flow_matching_loss(model: Denoiser, x1: torch.Tensor, y: torch.Tensor | None = None,
                       generator: torch.Generator | None = None) -> torch.Tensor:  # fmt: skip
    r"""The flow-matching loss, one value per example (B,): the mean over dimensions of
    :math:`\lVert \hat v(x_t, t) - (x_1 - x_0) \rVert^2`, with :math:`t \sim U(0, 1)` and
    :math:`x_0 \sim \mathcal{N}(0, I)` drawn here. ``y``: labels passed to the model."""
    t = torch.rand(len(x1), generator=generator, device=x1.device, dtype=x1.dtype)  # (B,)
    x0 = torch.randn(x1.shape, generator=generator, device=x1.device, dtype=x1.dtype)
    v_hat = model(straight_path(x0, x1, t), t, y)
    return (v_hat - (x1 - x0)).pow(2).flatten(1).mean(dim=1)  # (B,)


@torch.no_grad()
def euler_sample(model: Denoiser, shape: tuple[int, ...], steps: int,
                 y: torch.Tensor | None = None, guidance: float = 0.0,
                 x0: torch.Tensor | None = None, generator: torch.Generator | None = None,
                 trajectory: bool = False):  # fmt: skip
    r"""Euler's method on :math:`dx/dt = \hat v(x, t)` in ``steps`` equal steps from
    :math:`x_0 \sim \mathcal{N}(0, I)` (or ``x0``) at :math:`t = 0` to :math:`t = 1`:
    :math:`x_{t + h} = x_t + h\, \hat v(x_t, t)`, :math:`h = 1/\text{steps}`. ``guidance``: the
    weight :math:`w` of classifier-free guidance on the velocity
    (:func:`genai_course.diffusion.guided`). Returns the samples, or with ``trajectory`` every
    :math:`x_t` visited, :math:`x_0` first."""
    check_sampling(shape, steps, steps, y, getattr(model, "num_classes", None), generator)
    device = model_device(model)
    x = torch.randn(shape, generator=generator, device=device) if x0 is None else x0
    path, h = [x], 1 / steps
    for i in range(steps):
        t = torch.full((shape[0],), i * h, device=device)
        x = x + h * guided(model, x, t, y, guidance)
        path.append(x)
    return path if trajectory else x

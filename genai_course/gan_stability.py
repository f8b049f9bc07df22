r"""Two ways to stabilise a GAN (the chapter on stabilising GANs): a Wasserstein critic with
a gradient penalty, and spectral normalisation.

**WGAN-GP** (Arjovsky et al., 2017; Gulrajani et al., 2017). The discriminator becomes a
*critic*: its output :math:`a(x)` (the logit, with no sigmoid) is a score, and the
critic maximises :math:`\mathbb{E}_{p}[a(x)] - \mathbb{E}_{q}[a(\tilde x)]`, which over
1-Lipschitz critics is the Wasserstein-1 distance between the data :math:`p` and the
generator's :math:`q`. The Lipschitz constraint is asked for softly, by the penalty

.. math:: \rho\,\big(\lVert \nabla_{\hat x}\, a(\hat x) \rVert - 1\big)^2, \qquad
   \hat x = \alpha x + (1 - \alpha) \tilde x, \quad \alpha \sim U[0, 1],

on points between a real :math:`x` and a fake :math:`\tilde x`.

**Spectral normalisation** (Miyato et al., 2018) divides each weight matrix :math:`W` of
the discriminator by its largest singular value :math:`\lVert W \rVert_2`, estimated by
one step of the power iteration per training step, so every layer, and with
1-Lipschitz activations the whole network, is 1-Lipschitz.

Losses return one value per example; the caller averages. The losses and the step run in
every training step: they check types and shapes, not values (NaN in, NaN out).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from genai_course import distributed
from genai_course.config import check_positive_int, check_real
from genai_course.gan import GAN, _check_players

# -- the Wasserstein critic and its penalty ----------------------------------------------


def _scores(value, name: str) -> torch.Tensor:
    """One score per example, (B,), from (B,) or (B, 1); or an error naming ``name``."""
    if not isinstance(value, torch.Tensor) or not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point torch.Tensor of scores")
    if value.ndim > 1 and value.shape[1:].numel() == 1:
        value = value.reshape(len(value))  # (B, 1) -> (B,)
    if value.ndim != 1:
        raise ValueError(f"{name} must have shape (B,) or (B, 1), one score per example; "
                         f"got {tuple(value.shape)}")  # fmt: skip
    return value


def _batch(value, name: str) -> torch.Tensor:
    """A non-empty floating batch (B, ...), or an error naming ``name``."""
    if not isinstance(value, torch.Tensor) or not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point torch.Tensor, a batch of data")
    if value.ndim == 0 or len(value) == 0:
        raise ValueError(f"{name} must be a non-empty batch, got shape {tuple(value.shape)}")
    return value


def critic_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    r"""The critic's loss per pair of a real and a fake example, :math:`a(\tilde x) - a(x)`:
    minimising its mean maximises :math:`\mathbb{E}_p[a] - \mathbb{E}_q[a]`. Scores (B,)
    or (B, 1), as many fake as real; returns (B,)."""
    real, fake = _scores(real_scores, "real_scores"), _scores(fake_scores, "fake_scores")
    if real.shape != fake.shape:
        raise ValueError(f"real_scores and fake_scores must have the same shape, got "
                         f"{tuple(real.shape)} and {tuple(fake.shape)}")  # fmt: skip
    return fake - real


def critic_generator_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    r"""The generator's loss against a critic, :math:`-a(\tilde x)` per fake example: (B,)."""
    return -_scores(fake_scores, "fake_scores")


def gradient_penalty(
    critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, alpha: torch.Tensor | None = None
) -> torch.Tensor:
    r"""The penalty :math:`\big(\lVert \nabla_{\hat x} a(\hat x) \rVert - 1\big)^2` per
    example, (B,), at :math:`\hat x = \alpha x + (1 - \alpha)\tilde x` (``alpha`` (B,)
    drawn from :math:`U[0, 1]` unless given). The gradient is taken with
    ``create_graph=True``, so the penalty is differentiable in the critic's weights
    (a second derivative). Multiply by :math:`\rho` (``penalty``) in the loss."""
    if not isinstance(critic, nn.Module):
        raise TypeError(f"critic must be a network (an nn.Module), got {type(critic).__name__}")
    _batch(real, "real")
    if not isinstance(fake, torch.Tensor) or fake.shape != real.shape:
        raise ValueError(f"fake must be a tensor of the shape of real, {tuple(real.shape)}")
    if alpha is None:
        alpha = torch.rand(len(real), device=real.device, dtype=real.dtype)
    elif not isinstance(alpha, torch.Tensor) or alpha.shape != (len(real),):
        raise ValueError(f"alpha must be a tensor of shape ({len(real)},), one per example")
    alpha = alpha.reshape(-1, *[1] * (real.ndim - 1))  # (B, 1, ...): broadcasts per example
    x_hat = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_()
    scores = _scores(critic(x_hat), "critic(x)")  # (B,)
    (grad,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)  # (B, ...)
    return (grad.flatten(1).norm(dim=1) - 1) ** 2  # (B,)


def wgan_gp_step(
    gan: GAN, opt_d: torch.optim.Optimizer, opt_g: torch.optim.Optimizer,
    penalty: float = 10.0, critic_steps: int = 1,
):  # fmt: skip
    r"""One round of WGAN-GP on a batch of real data, for ``fit(step=...)``: a critic step
    on the mean of ``critic_loss`` plus :math:`\rho` (``penalty``) times
    ``gradient_penalty``, and, every ``critic_steps``-th call, a generator step on
    ``critic_generator_loss`` of the same fakes. Reports the critic's loss, the
    Wasserstein estimate :math:`\mathbb{E}_p[a] - \mathbb{E}_q[a]` on the batch, the
    penalty and the generator's loss (computed every call)."""
    _check_players(gan, opt_d, opt_g)
    rho = check_real("penalty", penalty, 0)
    check_positive_int("critic_steps", critic_steps)
    G, D = distributed.wrap(gan.G), distributed.wrap(gan.D)
    calls = [0]  # how many batches so far: the generator steps on every critic_steps-th

    def step(real: torch.Tensor) -> dict[str, torch.Tensor]:
        _batch(real, "real")
        z = torch.randn(len(real), gan.G.latent_dim, device=real.device)  # (B, latent)
        fake = G(z)
        if fake.shape[1:].numel() != real.shape[1:].numel():
            raise ValueError(f"real has shape {tuple(real.shape)} but the generator makes "
                             f"{tuple(fake.shape)}")  # fmt: skip
        fake = fake.reshape(real.shape)  # images (B, 1, H, W) or points (B, D), like real
        # -- 1. the critic: a(real) up, a(fake) down, gradient norms near 1
        real_scores, fake_scores = D(real), D(fake.detach())  # (B,), (B,)
        gp = gradient_penalty(D, real, fake)
        loss_d = (critic_loss(real_scores, fake_scores) + rho * gp).mean()
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        # -- 2. the generator, every critic_steps-th batch: a(fake) up
        calls[0] += 1
        generator_turn = calls[0] % critic_steps == 0
        with torch.set_grad_enabled(generator_turn):
            loss_g = critic_generator_loss(D(fake)).mean()
        if generator_turn:
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
        return {
            "loss_d": loss_d.detach(),
            "loss_g": loss_g.detach(),
            "wasserstein": (real_scores - fake_scores).mean().detach(),
            "penalty": gp.mean().detach(),
        }

    return step


# -- spectral normalisation -----------------------------------------------------------------


def power_iteration(
    weight: torch.Tensor, v: torch.Tensor, steps: int = 1
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""``steps`` rounds of the power iteration for the largest singular value of
    ``weight`` (a matrix (O, I), or a convolution's (O, C, r, r) read as (O, C r r)), from
    the input-side vector ``v`` (I,):

    .. math:: s \leftarrow \frac{W v}{\lVert W v \rVert}, \qquad
       v \leftarrow \frac{W^\top s}{\lVert W^\top s \rVert}, \qquad
       \widehat{\lVert W \rVert}_2 = s^\top W v,

    the order ``torch.nn.utils.parametrizations.spectral_norm`` uses. Returns the
    estimate, :math:`s` (O,) and :math:`v` (I,). It rises to :math:`\lVert W \rVert_2`
    as the steps go on, from below. Values are not checked: NaN in, NaN out."""
    if not isinstance(weight, torch.Tensor) or not weight.is_floating_point():
        raise TypeError("weight must be a floating-point torch.Tensor")
    if weight.ndim < 2:
        raise ValueError(f"weight must be a matrix or a convolution's kernel, got shape "
                         f"{tuple(weight.shape)}")  # fmt: skip
    if weight.numel() == 0:
        raise ValueError(f"weight must not be empty, got shape {tuple(weight.shape)}")
    W = weight.flatten(1)  # (O, I)
    if not isinstance(v, torch.Tensor) or v.is_complex():
        raise TypeError("v must be a real torch.Tensor")
    if v.shape != (W.shape[1],):
        raise ValueError(f"v must be a tensor of shape ({W.shape[1]},), one entry per column "
                         f"of weight read as a matrix")  # fmt: skip
    check_positive_int("steps", steps)
    v = v.to(W.dtype)
    for _ in range(steps):
        s = F.normalize(W @ v, dim=0)  # (O,)
        v = F.normalize(W.T @ s, dim=0)  # (I,)
    return s @ W @ v, s, v


def spectral_normalise(module: nn.Module, drop_batch_norm: bool = True) -> nn.Module:
    """``module`` with every ``nn.Linear`` and ``nn.Conv2d`` weight divided by its largest
    singular value, by ``torch.nn.utils.parametrizations.spectral_norm`` (one power-iteration
    step per training forward pass, as :func:`power_iteration`; the tests show the two
    equal). With ``drop_batch_norm`` every ``BatchNorm2d`` becomes an identity: batch norm
    rescales its features and would undo the bound. Changes ``module`` in place and
    returns it."""
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be a network (an nn.Module), got {type(module).__name__}")
    if not isinstance(drop_batch_norm, bool):
        raise TypeError(f"drop_batch_norm must be True or False, got {drop_batch_norm!r}")
    for parent in list(module.modules()):
        for name, child in parent.named_children():
            if drop_batch_norm and isinstance(child, nn.BatchNorm2d):
                setattr(parent, name, nn.Identity())
            elif isinstance(child, nn.Linear | nn.Conv2d):
                nn.utils.parametrizations.spectral_norm(child)
    return module

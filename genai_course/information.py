r"""Entropy, cross-entropy, KL divergence, and the losses built on them (the cross-entropy chapter).

For discrete distributions given as probability vectors on the last axis:

.. math:: H(p) = -\sum_k p_k \log p_k, \qquad
   H(p, q) = -\sum_k p_k \log q_k, \qquad
   \mathrm{KL}(p \,\Vert\, q) = \sum_k p_k \log \frac{p_k}{q_k} = H(p, q) - H(p),

with :math:`0 \log 0 = 0`, and :math:`+\infty` where :math:`q_k = 0 < p_k`.
``base=2`` gives bits; the default, nats.
"""

from __future__ import annotations

import math

import torch

from genai_course.distributions import _check_simplex, _param


def _log_base(base: float | None) -> float:
    if base is None:
        return 1.0
    if base <= 0 or base == 1:
        raise ValueError(f"base must be > 0 and not 1, got {base!r}")
    return math.log(base)


def entropy(p, base: float | None = None) -> torch.Tensor:
    r""":math:`H(p) = -\sum_k p_k \log p_k` over the last axis."""
    p = _param(p, "p")
    _check_simplex(p, "p")
    return torch.special.entr(p).sum(-1) / _log_base(base)


def cross_entropy(p, q, base: float | None = None) -> torch.Tensor:
    r""":math:`H(p, q) = -\sum_k p_k \log q_k` over the last axis."""
    p, q = _param(p, "p"), _param(q, "q")
    _check_simplex(p, "p")
    _check_simplex(q, "q")
    return -torch.xlogy(p, q).sum(-1) / _log_base(base)


def kl_divergence(p, q, base: float | None = None) -> torch.Tensor:
    r""":math:`\mathrm{KL}(p \,\Vert\, q) = \sum_k p_k (\log p_k - \log q_k)` over the last axis."""
    p, q = _param(p, "p"), _param(q, "q")
    _check_simplex(p, "p")
    _check_simplex(q, "q")
    # p log p - p log q, term by term: 0 where p = 0, +inf where q = 0 < p
    terms = torch.xlogy(p, p) - torch.xlogy(p, q)
    return terms.sum(-1) / _log_base(base)


def gaussian_kl(mu_q, logvar_q, mu_p=0.0, logvar_p=0.0) -> torch.Tensor:
    r"""KL between diagonal Gaussians, summed over the last axis:

    .. math:: \mathrm{KL}\big(\mathcal{N}(\mu_q, \sigma_q^2) \,\Vert\,
       \mathcal{N}(\mu_p, \sigma_p^2)\big)
       = \frac12 \sum_d \Big[ \log\frac{\sigma_{p,d}^2}{\sigma_{q,d}^2}
       + \frac{\sigma_{q,d}^2 + (\mu_{q,d} - \mu_{p,d})^2}{\sigma_{p,d}^2} - 1 \Big].

    With the defaults (a standard normal prior) it is the VAE's KL term,
    :math:`-\frac12 \sum_d (1 + \log\sigma_d^2 - \mu_d^2 - \sigma_d^2)`.
    """
    mu_q, logvar_q = torch.as_tensor(mu_q), torch.as_tensor(logvar_q)
    mu_p = torch.as_tensor(mu_p, dtype=mu_q.dtype, device=mu_q.device)
    logvar_p = torch.as_tensor(logvar_p, dtype=mu_q.dtype, device=mu_q.device)
    shapes = [tuple(t.shape) for t in (mu_q, logvar_q, mu_p, logvar_p)]
    try:
        torch.broadcast_shapes(*shapes)
    except RuntimeError:
        raise ValueError(
            f"mu_q, logvar_q, mu_p and logvar_p must broadcast; got shapes {shapes}"
        ) from None
    terms = logvar_p - logvar_q + (logvar_q.exp() + (mu_q - mu_p) ** 2) / logvar_p.exp() - 1
    return 0.5 * terms.sum(-1)


def binary_cross_entropy_with_logits(logits, targets) -> torch.Tensor:
    r"""BCE of targets :math:`t \in [0, 1]` under :math:`\sigma(\ell)`, elementwise:

    .. math:: -t \log\sigma(\ell) - (1 - t)\log\sigma(-\ell)
       = \max(\ell, 0) - \ell t + \log(1 + e^{-|\ell|}),

    the right-hand form never exponentiates a large positive number, so it is
    finite for any finite logit. Targets outside [0, 1] (images normalised to
    [-1, 1], say) are refused: the result would not be a cross-entropy.
    """
    logits, targets = torch.as_tensor(logits), torch.as_tensor(targets)
    if not targets.is_floating_point():
        targets = targets.to(logits.dtype)
    if ((targets < 0) | (targets > 1)).any():
        raise ValueError(
            f"targets must be in [0, 1] (probabilities or binary labels); got values from "
            f"{targets.min().item():.4g} to {targets.max().item():.4g}. Images normalised to "
            "[-1, 1] must be mapped back with (x + 1) / 2"
        )
    return logits.clamp(min=0) - logits * targets + torch.log1p(torch.exp(-logits.abs()))


def softmax_cross_entropy(logits, labels) -> torch.Tensor:
    r"""Cross-entropy of integer labels under :math:`\mathrm{softmax}(\ell)`, one per example:

    .. math:: -\log \frac{e^{\ell_y}}{\sum_k e^{\ell_k}} = \log\sum_k e^{\ell_k} - \ell_y,

    with the log-sum-exp computed stably (the largest logit factored out).
    """
    logits, labels = torch.as_tensor(logits), torch.as_tensor(labels)
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise TypeError(f"labels must be integer class indices, got {labels.dtype}")
    num_classes = logits.shape[-1]
    if ((labels < 0) | (labels >= num_classes)).any():
        raise ValueError(
            f"labels must be in 0..{num_classes - 1}; got {labels.min().item()} "
            f"to {labels.max().item()}"
        )
    if labels.shape != logits.shape[:-1]:
        raise ValueError(
            f"labels must have shape {tuple(logits.shape[:-1])}, got {tuple(labels.shape)}"
        )
    log_z = torch.logsumexp(logits, dim=-1)  # (B,)
    return log_z - logits.gather(-1, labels[..., None].long())[..., 0]

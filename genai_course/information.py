r"""Entropy, cross-entropy, KL divergence, and the losses built on them (the cross-entropy chapter).

For discrete distributions given as probability vectors on the last axis:

.. math:: H(p) = -\sum_k p_k \log p_k, \qquad
   H(p, q) = -\sum_k p_k \log q_k, \qquad
   \mathrm{KL}(p \,\Vert\, q) = \sum_k p_k \log \frac{p_k}{q_k} = H(p, q) - H(p),

with :math:`0 \log 0 = 0`, and :math:`+\infty` where :math:`q_k = 0 < p_k`.
``base=2`` gives bits; the default, nats. Lists, arrays and integer tensors are taken
as floats; a complex value or a NaN is refused, naming the argument.
"""

from __future__ import annotations

import math

import torch

from genai_course.config import check_real
from genai_course.distributions import _check_simplex, _param


def _real(value, name: str, like: torch.Tensor | None = None) -> torch.Tensor:
    """``value`` as a floating tensor (integers and bools become the default float dtype;
    with ``like``, its dtype and device), or a ``TypeError`` naming it if complex."""
    tensor = torch.as_tensor(value)
    if tensor.is_complex():
        raise TypeError(f"{name} must be real, got a complex {type(value).__name__}")
    if like is not None:
        return torch.as_tensor(value, dtype=like.dtype, device=like.device)
    return tensor if tensor.is_floating_point() else tensor.to(torch.get_default_dtype())


def _probabilities(p, name: str) -> torch.Tensor:
    """Probability vectors on the last axis, or an error naming them."""
    p = _param(_real(p, name), name)  # _param refuses NaN
    _check_simplex(p, name)
    return p


def _pair(p, q) -> tuple[torch.Tensor, torch.Tensor]:
    """Two sets of probability vectors over the same classes, their batch shapes broadcasting."""
    p, q = _probabilities(p, "p"), _probabilities(q, "q")
    try:
        torch.broadcast_shapes(p.shape, q.shape)
        same_classes = p.shape[-1] == q.shape[-1]
    except RuntimeError:
        same_classes = False
    if not same_classes:
        raise ValueError(
            f"p and q must be distributions over the same classes (last axes of one length, "
            f"batch shapes that broadcast); got shapes {tuple(p.shape)} and {tuple(q.shape)}"
        )
    return p, q


def _log_base(base: float | None) -> float:
    if base is None:
        return 1.0
    base = check_real("base", base, 0, low_open=True)
    if base == 1:
        raise ValueError(f"base must be > 0 and not 1, got {base!r}")
    return math.log(base)


def entropy(p, base: float | None = None) -> torch.Tensor:
    r""":math:`H(p) = -\sum_k p_k \log p_k` over the last axis."""
    p = _probabilities(p, "p")
    return torch.special.entr(p).sum(-1) / _log_base(base)


def cross_entropy(p, q, base: float | None = None) -> torch.Tensor:
    r""":math:`H(p, q) = -\sum_k p_k \log q_k` over the last axis."""
    p, q = _pair(p, q)
    return -torch.xlogy(p, q).sum(-1) / _log_base(base)


def kl_divergence(p, q, base: float | None = None) -> torch.Tensor:
    r""":math:`\mathrm{KL}(p \,\Vert\, q) = \sum_k p_k (\log p_k - \log q_k)` over the last axis."""
    p, q = _pair(p, q)
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
    Types and shapes are checked, values are not (this runs in every VAE training step,
    where a check would wait for the device): NaN or infinite inputs give NaN or infinity.
    """
    mu_q, logvar_q = _real(mu_q, "mu_q"), _real(logvar_q, "logvar_q")
    mu_p, logvar_p = _real(mu_p, "mu_p", like=mu_q), _real(logvar_p, "logvar_p", like=mu_q)
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
    [-1, 1], say) are refused: the result would not be a cross-entropy; so are infinite
    logits. ``targets`` has the shape of ``logits`` or one that broadcasts to it.
    """
    logits, targets = _real(logits, "logits"), _real(targets, "targets")
    try:
        fits = torch.broadcast_shapes(logits.shape, targets.shape) == logits.shape
    except RuntimeError:
        fits = False
    if not fits:
        raise ValueError(
            f"targets must have the shape of logits, {tuple(logits.shape)}, or one that "
            f"broadcasts to it; got {tuple(targets.shape)}"
        )
    if targets.numel():
        low, high = torch.stack(torch.aminmax(targets)).tolist()  # NaN propagates to both
        if math.isnan(low):
            raise ValueError("targets contains NaN")
        if low < 0 or high > 1:
            raise ValueError(
                f"targets must be in [0, 1] (probabilities or binary labels); got values from "
                f"{low:.4g} to {high:.4g}. Images normalised to "
                "[-1, 1] must be mapped back with (x + 1) / 2"
            )
    if not torch.isfinite(logits).all():
        raise ValueError("logits must be finite, got NaN or infinite values")
    return logits.clamp(min=0) - logits * targets + torch.log1p(torch.exp(-logits.abs()))


def softmax_cross_entropy(logits, labels) -> torch.Tensor:
    r"""Cross-entropy of integer labels under :math:`\mathrm{softmax}(\ell)`, one per example:

    .. math:: -\log \frac{e^{\ell_y}}{\sum_k e^{\ell_k}} = \log\sum_k e^{\ell_k} - \ell_y,

    with the log-sum-exp computed stably (the largest logit factored out). Logits (..., K)
    must be finite; labels (...) in 0..K-1.
    """
    logits, labels = _real(logits, "logits"), torch.as_tensor(labels)
    if logits.ndim == 0:
        raise ValueError("logits must have a last axis of classes (..., K), got a scalar")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise TypeError(f"labels must be integer class indices, got {labels.dtype}")
    if labels.shape != logits.shape[:-1]:
        raise ValueError(
            f"labels must have shape {tuple(logits.shape[:-1])}, one per row of logits; "
            f"got {tuple(labels.shape)}"
        )
    num_classes = logits.shape[-1]
    outside = ((labels < 0) | (labels >= num_classes)).any()
    # both checks in one read-back from the device: this runs in a training step
    outside, finite = torch.stack((outside, torch.isfinite(logits).all())).tolist()
    if outside:
        raise ValueError(
            f"labels must be in 0..{num_classes - 1} (logits has {num_classes} classes); "
            f"got {labels.min().item()} to {labels.max().item()}"
        )
    if not finite:
        raise ValueError("logits must be finite, got NaN or infinite values")
    log_z = torch.logsumexp(logits, dim=-1)  # (B,)
    return log_z - logits.gather(-1, labels[..., None].long())[..., 0]

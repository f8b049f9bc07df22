r"""Decoding: from a model's next-token logits to the next token (the sequences chapter).

A model of text gives, at each step, logits :math:`a \in \mathbb{R}^V` over the
:math:`V` symbols, and its next-token distribution is
:math:`p(c) = \operatorname{softmax}(a)_c`. A *decoding rule* turns the logits
into the distribution the next token is actually drawn from:

- **greedy**: all the mass on the most likely token, :math:`\arg\max_c a_c`;
- **temperature** :math:`\tau > 0`: :math:`p_\tau(c) \propto \exp(a_c / \tau)`;
- **top-k** (Fan et al., 2018): :math:`p_\tau` on the :math:`k` most likely
  tokens only, renormalised;
- **nucleus** or top-p (Holtzman et al., 2020): :math:`p_\tau` on the smallest
  set :math:`S_\xi` of most likely tokens whose mass reaches :math:`\xi`,
  renormalised, :math:`p(c) / \sum_{c' \in S_\xi} p(c')` for :math:`c \in S_\xi`.
  (The papers call the mass :math:`p`; the book keeps :math:`p` for distributions.)

Each function takes logits of shape (..., V) and returns probabilities of the
same shape, every row summing to 1 and exactly 0 outside the kept set; the
filters apply in the order temperature, top-k, nucleus. A token tied with the
last one kept is kept too, so that the result never depends on the order of
the vocabulary (with ties, top-k may keep more than :math:`k` tokens).
Logits may be :math:`-\infty` (a token ruled out), never NaN or
:math:`+\infty`. Greedy decoding is its own rule, not temperature 0: the
formula divides by :math:`\tau`, and the appendix of common mistakes shows
what goes wrong when a sampler is fed numbers that are not a distribution.
"""

from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F

# -- checks --------------------------------------------------------------------------------


def check_temperature(temperature) -> None:
    """Raise ``TypeError`` unless ``temperature`` is a real number (a Python or
    NumPy one, not a bool), ``ValueError`` unless it is finite and > 0."""
    if not isinstance(temperature, numbers.Real) or isinstance(temperature, bool):
        raise TypeError(f"temperature must be a real number, got {type(temperature).__name__}")
    if not 0 < temperature < math.inf:
        raise ValueError(
            f"temperature must be a number > 0 (and finite), got {temperature!r}; for the single "
            "most probable continuation take the argmax instead (temperature -> 0 is greedy "
            "decoding)"
        )


def check_top_k(top_k, vocab_size: int) -> None:
    """Raise ``TypeError`` unless ``top_k`` is an int (not a bool), ``ValueError``
    unless it is from 1 to ``vocab_size`` (``top_k = vocab_size`` keeps every token)."""
    if not isinstance(top_k, int) or isinstance(top_k, bool):
        raise TypeError(f"top_k must be an int, got {type(top_k).__name__}")
    if not 1 <= top_k <= vocab_size:
        raise ValueError(f"top_k must be an int from 1 to {vocab_size}, got {top_k!r}")


def check_top_p(top_p) -> None:
    """Raise ``TypeError`` unless ``top_p`` is a real number (not a bool),
    ``ValueError`` unless :math:`0 < \\xi \\le 1` (``top_p = 1`` keeps every token)."""
    if not isinstance(top_p, numbers.Real) or isinstance(top_p, bool):
        raise TypeError(f"top_p must be a real number, got {type(top_p).__name__}")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be a number in (0, 1], got {top_p!r}")


def _check_logits(logits) -> None:
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"logits must be a torch.Tensor, got {type(logits).__name__}")
    if not logits.is_floating_point():
        raise TypeError(f"logits must be a floating-point tensor, got {logits.dtype}")
    if logits.ndim == 0 or logits.shape[-1] == 0:
        raise ValueError(f"logits must have shape (..., V) with V >= 1, got {tuple(logits.shape)}")
    if logits.numel() and not torch.isfinite(logits.amax(-1)).all():
        raise ValueError(
            "logits must not be NaN or +inf, and every row needs a finite largest logit "
            "(-inf alone is a token ruled out)"
        )


# -- the rules -----------------------------------------------------------------------------


def _tempered(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    # softmax(a / tau) = softmax((a - max a) / tau): the largest term is exp(0) = 1 for any tau
    return F.softmax((logits - logits.amax(-1, keepdim=True)) / temperature, dim=-1)


def _top_k_logits(logits: torch.Tensor, top_k: int) -> torch.Tensor:
    # keep every logit at least the k-th largest (ties with it included), rule out the rest
    kth = logits.topk(top_k, dim=-1).values[..., -1:]  # (..., 1)
    return logits.masked_fill(logits < kth, -math.inf)


def _nucleus(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    if top_p == 1:
        return probs  # the whole distribution: no rounding of the running sum can drop a token
    sorted_p = probs.sort(dim=-1, descending=True).values  # (..., V)
    # the mass of the tokens ranked before each one: 0, p_(1), p_(1) + p_(2), ...
    before = torch.cat([torch.zeros_like(sorted_p[..., :1]), sorted_p[..., :-1]], dim=-1)
    before = before.cumsum(-1)
    # each token's rank: the first place its probability holds (tied tokens share it)
    rank = torch.searchsorted(-sorted_p.contiguous(), -probs.contiguous())  # (..., V)
    # keep a token while the mass before it is short of top_p: the smallest set reaching it
    keep = before.gather(-1, rank) < top_p
    kept = probs.masked_fill(~keep, 0.0)
    return kept / kept.sum(-1, keepdim=True)


def greedy_probs(logits: torch.Tensor) -> torch.Tensor:
    r"""Greedy decoding as a distribution: probability 1 on :math:`\arg\max_c a_c`
    (the first, if several logits tie for the largest), 0 elsewhere: (..., V)."""
    _check_logits(logits)
    best = logits.argmax(-1, keepdim=True)  # (..., 1)
    return torch.zeros_like(logits).scatter_(-1, best, 1.0)


def temperature_probs(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    r""":math:`p_\tau(c) = \exp(a_c / \tau) / \sum_{c'} \exp(a_{c'} / \tau)`, the
    distribution raised to the power :math:`1/\tau` and renormalised: (..., V)."""
    _check_logits(logits)
    check_temperature(temperature)
    return _tempered(logits, temperature)


def top_k_probs(logits: torch.Tensor, top_k: int, temperature: float = 1.0) -> torch.Tensor:
    r"""Top-:math:`k` sampling's distribution (Fan et al., 2018): :math:`p_\tau`
    on the ``top_k`` largest logits of each row (and any tied with the
    :math:`k`-th), renormalised; 0 on the rest: (..., V)."""
    _check_logits(logits)
    check_top_k(top_k, logits.shape[-1])
    check_temperature(temperature)
    return _tempered(_top_k_logits(logits, top_k), temperature)


def top_p_probs(logits: torch.Tensor, top_p: float, temperature: float = 1.0) -> torch.Tensor:
    r"""Nucleus sampling's distribution (Holtzman et al., 2020): :math:`p_\tau`
    on the smallest set :math:`S_\xi` of most likely tokens whose mass reaches
    :math:`\xi` = ``top_p`` (the token that crosses :math:`\xi` included, and
    any tied with it), renormalised; 0 on the rest: (..., V)."""
    _check_logits(logits)
    check_top_p(top_p)
    check_temperature(temperature)
    return _nucleus(_tempered(logits, temperature), top_p)


def check_decoding(
    vocab_size: int,
    *,
    greedy: bool = False,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
) -> None:
    """Check the options of :func:`next_token_probs` for a vocabulary of
    ``vocab_size`` tokens, each error naming its argument: a sampler calls it
    once, before its first step."""
    if not isinstance(greedy, bool):
        raise TypeError(f"greedy must be True or False, got {type(greedy).__name__}")
    check_temperature(temperature)
    if top_k is not None:
        check_top_k(top_k, vocab_size)
    if top_p is not None:
        check_top_p(top_p)
    if greedy and (temperature != 1.0 or top_k is not None or top_p is not None):
        raise ValueError(
            "greedy=True takes the argmax: leave temperature, top_k and top_p at their "
            "defaults (1.0, None, None)"
        )


def next_token_probs(
    logits: torch.Tensor,
    *,
    greedy: bool = False,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
) -> torch.Tensor:
    """The distribution of the next token under one decoding rule, or several
    combined in the order temperature, top-k (None: every token), nucleus (None:
    the whole mass): (..., V). ``greedy=True`` is the argmax alone, and refuses
    the other options (they would have no effect)."""
    _check_logits(logits)
    check_decoding(
        logits.shape[-1], greedy=greedy, temperature=temperature, top_k=top_k, top_p=top_p
    )
    if greedy:
        return greedy_probs(logits)
    if top_k is not None:
        logits = _top_k_logits(logits, top_k)
    probs = _tempered(logits, temperature)
    return probs if top_p is None else _nucleus(probs, top_p)


def sample_tokens(probs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One token drawn from each row of ``probs`` (..., V) (rows of non-negative
    numbers with a positive sum; they are normalised): indices (...,), int64.
    ``generator``, on the device of ``probs``, fixes the draws."""
    if not isinstance(probs, torch.Tensor):
        raise TypeError(f"probs must be a torch.Tensor, got {type(probs).__name__}")
    if not probs.is_floating_point():
        raise TypeError(f"probs must be a floating-point tensor, got {probs.dtype}")
    if probs.ndim == 0 or probs.shape[-1] == 0:
        raise ValueError(f"probs must have shape (..., V) with V >= 1, got {tuple(probs.shape)}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(
            f"generator must be a torch.Generator or None, got {type(generator).__name__}"
        )
    rows = probs.reshape(-1, probs.shape[-1])  # (N, V)
    if rows.numel() and (
        not torch.isfinite(rows).all() or (rows < 0).any() or (rows.sum(-1) <= 0).any()
    ):
        raise ValueError("probs must be finite and >= 0, with a positive sum in every row")
    if len(rows) == 0:
        return torch.empty(probs.shape[:-1], dtype=torch.int64, device=probs.device)
    return torch.multinomial(rows, 1, generator=generator).reshape(probs.shape[:-1])

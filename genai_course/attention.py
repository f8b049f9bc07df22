r"""Attention, written by hand from its definition (the transformers chapter).

A query :math:`q_i \in \mathbb{R}^d` reads the values :math:`v_j` of the keys
:math:`k_j` it matches best. With the queries, keys and values as the rows of
:math:`Q` (T_q, d), :math:`K` (T_k, d) and :math:`V` (T_k, d_v),

.. math:: \mathrm{Attention}(Q, K, V) = A V, \qquad
          A = \operatorname{softmax}\!\Big(\frac{Q K^\top}{\sqrt{d}}\Big),

the softmax taken along each row, so that row :math:`i` of :math:`A` is a
distribution over the keys (Vaswani et al., 2017). A *mask* :math:`M` (T_q, T_k)
of booleans says which keys each query may read: :math:`A_{ij} = 0` where
:math:`M_{ij}` is False, and the row is renormalised over the rest. The *causal*
mask :math:`M_{ij} = [j \le i]` lets position :math:`i` read only itself and the
past, which is what a model of :math:`p(c_{t+1} \mid c_{\le t})` needs.

Why :math:`1/\sqrt{d}`: for queries and keys of independent standard-normal
entries, :math:`q \cdot k` has variance :math:`d`, so without the scale the
scores grow with the width and the softmax saturates (one weight near 1, the
rest near 0, and gradients near 0). :func:`random_attention` and
:func:`softmax_entropy` measure it.

Attention sees a set, not a sequence: permuting the tokens permutes the outputs.
Order enters through positions, added to the tokens (:func:`sinusoidal_positions`)
or turning the queries and keys (:func:`apply_rotary`).

The masks here follow ``torch.nn.functional.scaled_dot_product_attention``:
**True means "may attend"**. ``torch.nn.MultiheadAttention`` reads a boolean
``attn_mask`` the other way round (True means "may not attend"); pass it
``~mask``. The chapter's models train on torch's fused kernels once the tests
have shown these functions equal to them.
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import nn

from genai_course.config import check_positive_int

# -- checks --------------------------------------------------------------------------------


def _check_float_tensor(t, name: str) -> None:
    """Raise ``TypeError`` naming ``name`` unless ``t`` is a tensor, ``ValueError``
    unless it is a floating-point one."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if not t.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got {t.dtype}")


def _check_like(t: torch.Tensor, name: str, like: torch.Tensor, like_name: str) -> None:
    if t.dtype != like.dtype or t.device != like.device:
        raise ValueError(
            f"{name} must have the dtype and device of {like_name} ({like.dtype} on "
            f"{like.device}), got {t.dtype} on {t.device}"
        )


def _check_scale(scale) -> None:
    if scale is None:
        return
    if not isinstance(scale, numbers.Real) or isinstance(scale, bool):
        raise TypeError(f"scale must be a real number or None, got {type(scale).__name__}")
    if not math.isfinite(scale):
        raise ValueError(f"scale must be finite (or None for 1/sqrt(d)), got {scale!r}")


def _check_qk(q, k) -> None:
    """Queries (..., Tq, d) and keys (..., Tk, d): same batch shape, width, dtype, device."""
    _check_float_tensor(q, "q")
    _check_float_tensor(k, "k")
    _check_like(k, "k", q, "q")
    if q.ndim < 2 or k.ndim < 2:
        raise ValueError(
            f"q and k must have shapes (..., Tq, d) and (..., Tk, d), got {tuple(q.shape)} "
            f"and {tuple(k.shape)}"
        )
    if q.shape[:-2] != k.shape[:-2] or q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"q (..., Tq, d) and k (..., Tk, d) must agree on the batch dims and d, got "
            f"{tuple(q.shape)} and {tuple(k.shape)}"
        )
    if q.shape[-1] == 0 or k.shape[-2] == 0:
        raise ValueError(
            f"q and k need d >= 1 and k at least one key, got {tuple(q.shape)} and "
            f"{tuple(k.shape)}"
        )


def _check_mask(mask, scores_shape: torch.Size, like: torch.Tensor) -> None:
    """``mask`` must be boolean, broadcast to the scores' shape (..., Tq, Tk), and leave
    every query at least one key (a row of -inf has no softmax)."""
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"mask must be a torch.Tensor or None, got {type(mask).__name__}")
    if mask.dtype != torch.bool:
        raise ValueError(
            f"mask must be a boolean tensor (True = may attend), got {mask.dtype}; "
            "for a mask of 0/1 numbers pass mask.bool()"
        )
    if mask.device != like.device:
        raise ValueError(f"mask must be on {like.device}, like q, got {mask.device}")
    try:
        fits = torch.broadcast_shapes(mask.shape, scores_shape) == scores_shape
    except RuntimeError:
        fits = False
    if not fits:
        raise ValueError(
            f"mask must broadcast to the scores' shape (..., Tq, Tk) = {tuple(scores_shape)}, "
            f"got {tuple(mask.shape)}"
        )
    # a check on the values: on a GPU it waits for the device (this module teaches, it
    # does not race)
    if not mask.any(-1).all():
        raise ValueError(
            "mask leaves a query with nothing to attend to: every row (..., i, :) needs at "
            "least one True"
        )


def _check_causal(causal, mask) -> None:
    if not isinstance(causal, bool):
        raise TypeError(f"causal must be True or False, got {type(causal).__name__}")
    if causal and mask is not None:
        raise ValueError(
            "give mask or causal=True, not both (for both, pass mask & causal_mask(T))"
        )


# -- masks and weights ---------------------------------------------------------------------


def _causal(num_queries: int, num_keys: int, device=None) -> torch.Tensor:
    # M_ij = [j <= i], aligned at the top left as torch's is_causal is
    return torch.ones(num_queries, num_keys, dtype=torch.bool, device=device).tril()


def causal_mask(length: int, device=None) -> torch.Tensor:
    r"""The causal mask :math:`M_{ij} = [j \le i]`, (T, T) booleans: position
    :math:`i` may attend to :math:`j` (True) only if :math:`j` is not in its future.
    True means "may attend", as for ``scaled_dot_product_attention``'s ``attn_mask``;
    ``torch.nn.MultiheadAttention`` wants ``~causal_mask(T)``."""
    check_positive_int("length", length)
    return _causal(length, length, device)  # (T, T)


def attention_weights(
    q: torch.Tensor, k: torch.Tensor, mask: torch.Tensor | None = None, scale: float | None = None
) -> torch.Tensor:
    r"""The attention weights :math:`A = \operatorname{softmax}(s\, Q K^\top)`, each row a
    distribution over the keys, with :math:`s` = ``scale`` (default :math:`1/\sqrt{d}`)
    and :math:`A_{ij} = 0` where ``mask`` is False: q (..., Tq, d) and k (..., Tk, d)
    to (..., Tq, Tk). ``mask`` is boolean, broadcastable to (..., Tq, Tk), True where a
    query may attend, with at least one True in each row."""
    _check_qk(q, k)
    _check_scale(scale)
    scores_shape = q.shape[:-1] + k.shape[-2:-1]  # (..., Tq, Tk)
    if mask is not None:
        _check_mask(mask, scores_shape, q)
    return _weights(q, k, mask, scale)


def _weights(q, k, mask, scale) -> torch.Tensor:
    s = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    # the scores s q_i . k_j, (..., Tq, Tk)
    scores = (q @ k.transpose(-2, -1)) * s
    if mask is not None:
        # exp(-inf) = 0: a masked key gets no weight, and the rest are renormalised
        scores = scores.masked_fill(~mask, -math.inf)
    return scores.softmax(dim=-1)  # (..., Tq, Tk)


def scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    causal: bool = False,
    scale: float | None = None,
) -> torch.Tensor:
    r"""Attention :math:`A V` with :math:`A` = :func:`attention_weights`: q (..., Tq, d),
    k (..., Tk, d), v (..., Tk, d_v) to (..., Tq, d_v). ``causal=True`` applies the mask
    :math:`[j \le i]` (for Tq != Tk aligned at the top left, as torch does). Equal to
    ``torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask,
    is_causal=causal, scale=scale)`` for boolean masks, without dropout; torch also takes
    float masks (added to the scores), this function only boolean ones."""
    _check_qk(q, k)
    _check_float_tensor(v, "v")
    _check_like(v, "v", q, "q")
    if v.ndim != k.ndim or v.shape[:-1] != k.shape[:-1]:
        raise ValueError(
            f"v must have shape (..., Tk, d_v) with the batch dims and Tk of k "
            f"{tuple(k.shape)}, got {tuple(v.shape)}"
        )
    _check_causal(causal, mask)
    _check_scale(scale)
    if causal:
        mask = _causal(q.shape[-2], k.shape[-2], q.device)  # (Tq, Tk)
    if mask is not None:
        _check_mask(mask, q.shape[:-1] + k.shape[-2:-1], q)
    return _weights(q, k, mask, scale) @ v  # (..., Tq, d_v)


# -- multi-head attention ------------------------------------------------------------------


class MultiHeadAttention(nn.Module):
    r"""Multi-head attention by hand, with the weights of ``torch.nn.MultiheadAttention``.

    Each of :math:`H` heads projects the tokens to queries, keys and values of width
    :math:`d = E / H` and attends on its own; the heads' outputs are concatenated and
    projected back:

    .. math:: \mathrm{head}_h = \mathrm{Attention}(X_q W^Q_h, X_k W^K_h, X_v W^V_h), \qquad
              \mathrm{MHA} = [\mathrm{head}_1, \dots, \mathrm{head}_H]\, W^O.

    The projections are ``q_proj``, ``k_proj``, ``v_proj`` and ``out_proj``, each an
    ``nn.Linear(E, E)`` (the rows of ``q_proj.weight`` for head :math:`h` are rows
    :math:`h d` to :math:`(h+1) d - 1`); :meth:`copy_from` loads a torch module's. Tensors
    are batch first, (B, T, E). There is no dropout on the weights.
    """

    def __init__(self, embed_dim: int, num_heads: int, bias: bool = True):
        super().__init__()
        check_positive_int("embed_dim", embed_dim)
        check_positive_int("num_heads", num_heads)
        if embed_dim % num_heads:
            raise ValueError(
                f"num_heads must divide embed_dim (each head gets embed_dim / num_heads "
                f"features), got embed_dim={embed_dim}, num_heads={num_heads}"
            )
        if not isinstance(bias, bool):
            raise TypeError(f"bias must be True or False, got {type(bias).__name__}")
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.head_dim = embed_dim // num_heads
        self.q_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.k_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.v_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self._init_like_torch()

    @torch.no_grad()
    def _init_like_torch(self) -> None:
        """torch's initialisation: the three in-projections Xavier-uniform as one
        (3E, E) matrix, the out-projection as a Linear, every bias zero."""
        w = nn.init.xavier_uniform_(torch.empty(3 * self.embed_dim, self.embed_dim))
        for proj, part in zip((self.q_proj, self.k_proj, self.v_proj), w.chunk(3), strict=True):
            proj.weight.copy_(part)
        for proj in (self.q_proj, self.k_proj, self.v_proj, self.out_proj):
            if proj.bias is not None:
                proj.bias.zero_()

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        return x.view(B, T, self.num_heads, self.head_dim).transpose(1, 2)  # (B, H, T, d)

    def _check_inputs(self, query, key, value) -> None:
        like = self.q_proj.weight
        for name, x in (("query", query), ("key", key), ("value", value)):
            _check_float_tensor(x, name)
            _check_like(x, name, like, "the weights")
            if x.ndim != 3 or x.shape[-1] != self.embed_dim:
                raise ValueError(
                    f"{name} must have shape (B, T, {self.embed_dim}) (batch first), got "
                    f"{tuple(x.shape)}"
                )
        if key.shape[:2] != value.shape[:2] or key.shape[0] != query.shape[0]:
            raise ValueError(
                f"key and value must have the same (B, Tk), and query the same B, got query "
                f"{tuple(query.shape)}, key {tuple(key.shape)}, value {tuple(value.shape)}"
            )

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor | None = None,
        value: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        causal: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Attend from ``query`` (B, Tq, E) to ``key`` (B, Tk, E) (default: ``query``,
        self-attention) and ``value`` (B, Tk, E) (default: ``key``). ``mask`` is boolean,
        True = may attend (the opposite of ``nn.MultiheadAttention``'s boolean
        ``attn_mask``), of shape (Tq, Tk), (B, Tq, Tk) (every head alike; (B, 1, Tk) masks
        padded keys) or (B, H, Tq, Tk); ``causal=True`` is :func:`causal_mask`. Returns the
        output (B, Tq, E) and the weights of each head, (B, H, Tq, Tk): their mean over
        dim 1 is what ``nn.MultiheadAttention`` returns by default."""
        key = query if key is None else key
        value = key if value is None else value
        self._check_inputs(query, key, value)
        _check_causal(causal, mask)
        if isinstance(mask, torch.Tensor) and mask.ndim == 3:
            mask = mask[:, None]  # (B, 1, Tq, Tk): the same for every head
        q = self._split_heads(self.q_proj(query))  # (B, H, Tq, d)
        k = self._split_heads(self.k_proj(key))  # (B, H, Tk, d)
        v = self._split_heads(self.v_proj(value))  # (B, H, Tk, d)
        if causal:
            mask = _causal(q.shape[-2], k.shape[-2], q.device)  # (Tq, Tk)
        A = attention_weights(q, k, mask)  # (B, H, Tq, Tk)
        heads = A @ v  # (B, H, Tq, d)
        B, H, Tq, d = heads.shape
        concat = heads.transpose(1, 2).reshape(B, Tq, H * d)  # (B, Tq, E)
        return self.out_proj(concat), A

    @torch.no_grad()
    def copy_from(self, mha: nn.MultiheadAttention) -> MultiHeadAttention:
        """Load the weights of a ``torch.nn.MultiheadAttention`` of the same sizes: its
        ``in_proj_weight`` (3E, E) and ``in_proj_bias`` (3E,) are the q, k, v projections
        stacked, and ``out_proj`` is ours. Its dropout, if any, is not copied (compare
        in eval mode)."""
        if not isinstance(mha, nn.MultiheadAttention):
            raise TypeError(f"mha must be a torch.nn.MultiheadAttention, got {type(mha).__name__}")
        ours = (self.embed_dim, self.num_heads, self.q_proj.bias is not None)
        theirs = (mha.embed_dim, mha.num_heads, mha.in_proj_bias is not None)
        extras = mha.bias_k is not None or mha.add_zero_attn or not mha._qkv_same_embed_dim
        if ours != theirs or extras:
            raise ValueError(
                f"mha must match (embed_dim, num_heads, bias): {ours} here, {theirs} in mha "
                "(and have kdim = vdim = embed_dim, no add_bias_kv, no add_zero_attn)"
            )
        projections = (self.q_proj, self.k_proj, self.v_proj)
        for proj, w in zip(projections, mha.in_proj_weight.chunk(3), strict=True):
            proj.weight.copy_(w)  # (E, E) each, in the order q, k, v
        if mha.in_proj_bias is not None:
            for proj, b in zip(projections, mha.in_proj_bias.chunk(3), strict=True):
                proj.bias.copy_(b)
            self.out_proj.bias.copy_(mha.out_proj.bias)
        self.out_proj.weight.copy_(mha.out_proj.weight)
        return self


# -- positions -----------------------------------------------------------------------------


def _check_even_dim(name: str, dim: int) -> None:
    if dim % 2:
        raise ValueError(
            f"{name} must be even (the features come in (sin, cos) pairs), got {dim}"
        )


def sinusoidal_positions(length: int, dim: int, *, device=None, dtype=None) -> torch.Tensor:
    r"""The sinusoidal position encodings of Vaswani et al. (2017), (T, dim): for
    position :math:`t` and :math:`i = 0, \dots, \mathrm{dim}/2 - 1`,

    .. math:: PE_{t, 2i} = \sin(t\, \omega_i), \quad PE_{t, 2i+1} = \cos(t\, \omega_i),
              \qquad \omega_i = 10000^{-2i/\mathrm{dim}}.

    Each pair turns at its own frequency, so :math:`PE_{t+k}` is a rotation of
    :math:`PE_t`, the same for every :math:`t`. ``dim`` must be even; ``dtype`` defaults
    to torch's default (float32). Computed in float64, then cast."""
    check_positive_int("length", length)
    check_positive_int("dim", dim)
    _check_even_dim("dim", dim)
    t = torch.arange(length, dtype=torch.float64)[:, None]  # (T, 1)
    # omega_i = 10000^(-2i/dim)
    omega = 10000.0 ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)  # (dim/2,)
    angle = t * omega  # (T, dim/2)
    pe = torch.stack([angle.sin(), angle.cos()], dim=-1).reshape(length, dim)  # (T, dim)
    return pe.to(device=device, dtype=dtype or torch.get_default_dtype())


def apply_rotary(
    x: torch.Tensor, positions: torch.Tensor | None = None, base: float = 10000.0
) -> torch.Tensor:
    r"""Rotary position embedding (RoPE, Su et al. 2021) of x (..., T, d), d even: each
    pair :math:`(x_{2i}, x_{2i+1})` of the token at position :math:`m` is turned by the
    angle :math:`m\, \theta_i`, :math:`\theta_i = \mathrm{base}^{-2i/d}`,

    .. math:: \begin{pmatrix} x'_{2i} \\ x'_{2i+1} \end{pmatrix} =
              \begin{pmatrix} \cos m\theta_i & -\sin m\theta_i \\
                              \sin m\theta_i & \cos m\theta_i \end{pmatrix}
              \begin{pmatrix} x_{2i} \\ x_{2i+1} \end{pmatrix}.

    Turned queries and keys have :math:`q'_m \cdot k'_n` depending on :math:`m - n`
    only: attention sees relative positions. ``positions`` (T,) or broadcastable to
    (..., T), integers or floats, default :math:`0, \dots, T-1`. The pairs are adjacent
    features, as in the paper (some libraries pair :math:`x_i` with :math:`x_{i+d/2}`
    instead: the same idea on permuted features). Returns a tensor shaped like ``x``."""
    _check_float_tensor(x, "x")
    if x.ndim < 2 or x.shape[-1] == 0:
        raise ValueError(f"x must have shape (..., T, d) with d >= 2, got {tuple(x.shape)}")
    _check_even_dim("x.shape[-1] (d)", x.shape[-1])
    if isinstance(base, bool) or not isinstance(base, numbers.Real) or not 1 < base < math.inf:
        raise ValueError(f"base must be a finite number > 1, got {base!r}")
    T, d = x.shape[-2], x.shape[-1]
    if positions is None:
        positions = torch.arange(T, device=x.device)
    if not isinstance(positions, torch.Tensor) or positions.dtype == torch.bool:
        raise ValueError(f"positions must be a tensor of numbers or None, got {positions!r}")
    if positions.is_complex() or positions.device != x.device:
        raise ValueError(
            f"positions must be real and on {x.device}, like x, got {positions.dtype} on "
            f"{positions.device}"
        )
    try:
        fits = torch.broadcast_shapes(positions.shape, x.shape[:-1]) == x.shape[:-1]
    except RuntimeError:
        fits = False
    if not fits:
        raise ValueError(
            f"positions must broadcast to x's (..., T) = {tuple(x.shape[:-1])}, got "
            f"{tuple(positions.shape)}"
        )
    # theta_i = base^(-2i/d), i = 0 .. d/2 - 1
    theta = base ** (-torch.arange(0, d, 2, device=x.device, dtype=x.dtype) / d)  # (d/2,)
    angle = positions.to(x.dtype)[..., None] * theta  # (..., T, d/2)
    cos, sin = angle.cos(), angle.sin()
    x_even, x_odd = x[..., 0::2], x[..., 1::2]  # (..., T, d/2) each
    # (x_2i, x_2i+1) -> (x_2i cos - x_2i+1 sin, x_2i sin + x_2i+1 cos)
    turned = torch.stack([x_even * cos - x_odd * sin, x_even * sin + x_odd * cos], dim=-1)
    return turned.flatten(-2)  # (..., T, d): the pairs interleaved again


# -- why the scale -------------------------------------------------------------------------


def softmax_entropy(weights: torch.Tensor) -> torch.Tensor:
    r"""The entropy in nats of each row of ``weights`` (..., T_k), rows of non-negative
    numbers summing to 1: :math:`H(a) = -\sum_j a_j \log a_j` with :math:`0 \log 0 = 0`,
    shape (...). :math:`\log T_k` for uniform weights, 0 for one-hot ones."""
    _check_float_tensor(weights, "weights")
    if weights.ndim == 0 or weights.shape[-1] == 0:
        raise ValueError(
            f"weights must have shape (..., Tk) with Tk >= 1, got {tuple(weights.shape)}"
        )
    tolerance = math.sqrt(torch.finfo(weights.dtype).eps)
    if (weights < 0).any() or not torch.allclose(
        weights.sum(-1), weights.new_ones(()), rtol=0, atol=tolerance
    ):
        raise ValueError("weights must be rows of non-negative numbers summing to 1")
    # a log a, with 0 log 0 = 0 (xlogy(0, 0) = 0)
    return -torch.xlogy(weights, weights).sum(-1)  # (...)


def random_attention(
    dim: int,
    num_keys: int,
    num_queries: int = 256,
    *,
    scaled: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""Attention weights of random queries and keys, (num_queries, num_keys): every
    entry of :math:`q_i` and :math:`k_j` standard normal in :math:`\mathbb{R}^{d}`,
    :math:`d` = ``dim``, so :math:`q \cdot k` has variance :math:`d`. With
    ``scaled=True`` the scores are divided by :math:`\sqrt{d}` (variance 1, whatever
    :math:`d`); without, the softmax saturates as :math:`d` grows. Float64, on the CPU."""
    check_positive_int("dim", dim)
    check_positive_int("num_keys", num_keys)
    check_positive_int("num_queries", num_queries)
    if not isinstance(scaled, bool):
        raise TypeError(f"scaled must be True or False, got {type(scaled).__name__}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {generator!r}")
    q = torch.randn(num_queries, dim, generator=generator, dtype=torch.float64)
    k = torch.randn(num_keys, dim, generator=generator, dtype=torch.float64)
    return _weights(q, k, None, None if scaled else 1.0)  # (num_queries, num_keys)

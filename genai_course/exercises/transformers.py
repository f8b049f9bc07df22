"""The transformers chapter (notebook ``transformers``): causal scaled dot-product
attention, and one merge of byte-pair encoding.
"""

from __future__ import annotations

import torch

from genai_course.attention import scaled_dot_product_attention
from genai_course.bpe import _merge
from genai_course.exercises.core import Exercise, f64, random_int, random_normal

# -- transformers.causal_attention ---------------------------------------------------------


def _causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    r""":math:`A V` with :math:`A = \operatorname{softmax}(Q K^\top / \sqrt{d})`, each row
    :math:`i` over the keys :math:`j \le i` only: q and k (T, d), v (T, d_v) to (T, d_v)."""
    return scaled_dot_product_attention(q, k, v, causal=True)  # (T, d_v)


def _draw_causal_attention(g: torch.Generator):
    t, d, d_v = random_int(g, 1, 8), random_int(g, 1, 6), random_int(g, 1, 5)
    q, k = random_normal(g, t, d, scale=1.5), random_normal(g, t, d, scale=1.5)  # (T, d) each
    return q, k, random_normal(g, t, d_v)  # v: (T, d_v)


CAUSAL_ATTENTION = Exercise(
    "transformers.causal_attention",
    "causal_attention(q, k, v): q and k (T, d), v (T, d_v) -> (T, d_v): scaled dot-product "
    "attention softmax(q k^T / sqrt(d)) v, in which position i attends only to the positions "
    "j <= i (itself and the past)",
    _causal_attention,
    _draw_causal_attention,
    fixed=[
        # T = 1: the one position attends to itself alone
        (f64(0.5, -1.0, 2.0)[None], f64(1.0, 0.0, -0.5)[None], f64(3.0, -2.0)[None]),
        # scores q.k / sqrt(2) of about +-63640: exp overflows (row 0) and underflows to
        # 0 / 0 (row 1); row 2 ties on its two past keys and rules out the third
        (
            torch.stack([f64(300.0, 0.0), f64(-300.0, 0.0), f64(0.0, 300.0)]),
            torch.stack([f64(300.0, 0.0), f64(300.0, 0.0), f64(0.0, -300.0)]),
            torch.stack([f64(1.0, 0.0), f64(0.0, 1.0), f64(5.0, -5.0)]),
        ),
        # d = 16: row 1's scores are (1/4, 0) with the 1/sqrt(d) and (1, 0) without it
        (
            torch.full((2, 16), 0.25, dtype=torch.float64),
            torch.stack([torch.full((16,), 0.25, dtype=torch.float64), torch.zeros(16).double()]),
            f64(1.0, 0.0)[:, None],
        ),
    ],
    hint="position i may attend to j <= i (the diagonal and below it: torch.tril), divide the "
    "scores by sqrt(d) before the softmax, and give the masked scores -inf and subtract each "
    "row's max (or use torch.softmax, which does) so that large scores do not overflow.",
)

# -- transformers.bpe_merge ----------------------------------------------------------------


def _bpe_merge(tokens: torch.Tensor, pair: tuple[int, int], new_id: int) -> torch.Tensor:
    """``tokens`` (N,) with every ``a`` followed by ``b``, ``(a, b) = pair``, replaced by
    ``new_id``, scanning left to right without overlaps: (N - number of merges,) int64."""
    merged = _merge(tokens.tolist(), tuple(pair), new_id)
    return torch.tensor(merged, dtype=torch.int64)  # (N - merges,)


def _draw_bpe_merge(g: torch.Generator):
    # a small alphabet, so that pairs repeat and overlap
    tokens = torch.randint(0, 4, (random_int(g, 0, 15),), generator=g)  # (N,) int64
    a = random_int(g, 0, 3)
    b = a if random_int(g, 0, 1) else random_int(g, 0, 3)  # (a, a) half the time
    return tokens, (a, b), random_int(g, 4, 9)


BPE_MERGE = Exercise(
    "transformers.bpe_merge",
    "bpe_merge(tokens, pair, new_id): tokens (N,) int64, pair a tuple (a, b) of ints, new_id "
    "an int -> a 1-D int64 tensor: tokens with every a followed by b replaced by new_id, "
    "scanning left to right without overlaps (with pair (a, a), [a, a, a] gives [new_id, a])",
    _bpe_merge,
    _draw_bpe_merge,
    fixed=[
        (torch.tensor([1, 1, 1]), (1, 1), 4),  # overlapping occurrences: merge the left one
        (torch.tensor([], dtype=torch.int64), (0, 1), 4),  # no tokens at all
        (torch.tensor([0, 1, 2, 3]), (1, 0), 5),  # the pair reversed occurs, the pair does not
    ],
    hint="walk through the tokens with an index: where tokens[i], tokens[i + 1] is the pair, "
    "emit new_id and jump past both (a token is never in two merges), else emit tokens[i]; "
    "return a 1-D int64 tensor even when it is empty (torch.tensor([]) is float).",
)

EXERCISES = (CAUSAL_ATTENTION, BPE_MERGE)

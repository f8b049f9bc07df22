"""The sequences chapter (notebook ``sequences``): one step of an LSTM cell, a
character model's cross-entropy in bits per character, and top-k sampling's
distribution.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from genai_course.decoding import top_k_probs
from genai_course.exercises.core import Exercise, f64, random_int, random_normal

# -- sequences.lstm_cell -------------------------------------------------------------------


def _lstm_cell(x, h, c, w_ih, w_hh, b):
    r"""``torch.nn.LSTMCell`` with the given weights and one bias ``b``:

    .. math:: (i, f, g, o) = W_{ih} x + W_{hh} h + b, \quad
       c_t = \sigma(f) \odot c + \sigma(i) \odot \tanh(g), \quad
       h_t = \sigma(o) \odot \tanh(c_t).

    Returns (h_t (B, H), c_t (B, H)).
    """
    cell = nn.LSTMCell(x.shape[1], h.shape[1]).to(torch.float64)
    with torch.no_grad():
        cell.weight_ih.copy_(w_ih)
        cell.weight_hh.copy_(w_hh)
        cell.bias_ih.copy_(b)
        cell.bias_hh.zero_()  # torch adds two biases; the exercise has one
        return cell(x, (h, c))


def _draw_lstm_cell(g: torch.Generator):
    batch, n_in, n_hidden = random_int(g, 1, 4), random_int(g, 1, 5), random_int(g, 1, 5)
    w_ih = random_normal(g, 4 * n_hidden, n_in, scale=0.5)  # (4H, I)
    w_hh = random_normal(g, 4 * n_hidden, n_hidden, scale=0.5)  # (4H, H)
    x = random_normal(g, batch, n_in)  # (B, I)
    h, c = random_normal(g, batch, n_hidden), random_normal(g, batch, n_hidden)  # (B, H) each
    return x, h, c, w_ih, w_hh, random_normal(g, 4 * n_hidden)  # b: (4H,)


LSTM_CELL = Exercise(
    "sequences.lstm_cell",
    "lstm_cell(x, h, c, w_ih, w_hh, b): x (B, I), h and c (B, H), w_ih (4H, I), "
    "w_hh (4H, H), b (4H,) (the two biases of torch.nn.LSTMCell, added) -> (new h, new c), "
    "gates in PyTorch's order i, f, g, o",
    _lstm_cell,
    _draw_lstm_cell,
    hint="check the order of the four blocks of pre-activations (input, forget, cell, "
    "output), which nonlinearity each gate takes, and that the new h uses the new c.",
)

# -- sequences.bits_per_char ---------------------------------------------------------------


def _bits_per_char(logits: torch.Tensor, targets: torch.Tensor) -> float:
    r""":math:`-\frac{1}{N \ln 2} \sum_n \log\operatorname{softmax}(\ell_n)_{y_n}`."""
    return F.cross_entropy(logits, targets).item() / math.log(2)


def _draw_bits_per_char(g: torch.Generator):
    n, v = random_int(g, 1, 20), random_int(g, 2, 10)
    return random_normal(g, n, v, scale=3), torch.randint(0, v, (n,), generator=g)


BITS_PER_CHAR = Exercise(
    "sequences.bits_per_char",
    "bits_per_char(logits, targets): logits (N, V), targets (N,) int64 -> the average "
    "cross-entropy in bits per character (a float)",
    _bits_per_char,
    _draw_bits_per_char,
    # logits whose softmax overflows, one target certain and one impossible
    fixed=[(torch.tensor([[1000.0, -1000.0], [-1000.0, 1000.0]], dtype=torch.float64),
            torch.tensor([1, 1]))],  # fmt: skip
    hint="a softmax of large logits overflows; work with the log-softmax, and convert "
    "nats to bits at the end.",
)

# -- sequences.top_k_probs -----------------------------------------------------------------


def _top_k_probs(logits: torch.Tensor, k: int) -> torch.Tensor:
    r"""The softmax of each row on its ``k`` largest logits (and any tied with the
    :math:`k`-th), renormalised, 0 elsewhere: (N, V)."""
    return top_k_probs(logits, k)


def _draw_top_k_probs(g: torch.Generator):
    n, v = random_int(g, 1, 5), random_int(g, 1, 10)
    logits = random_normal(g, n, v, scale=3)  # (N, V)
    if random_int(g, 0, 1):
        logits = logits.round()  # ties, as rounded logits make them
    return logits, random_int(g, 1, v)


TOP_K_PROBS = Exercise(
    "sequences.top_k_probs",
    "top_k_probs(logits, k): logits (N, V), k an int from 1 to V -> probabilities (N, V): "
    "each row's softmax restricted to its k largest logits (and any logit equal to the k-th "
    "largest), renormalised to sum to 1, and exactly 0 elsewhere",
    _top_k_probs,
    _draw_top_k_probs,
    fixed=[
        (torch.stack([f64(2.0, 1.0, 1.0, 0.0), f64(0.0, 1.0, 2.0, 3.0)]), 2),  # a tie at the k-th
        (f64(1000.0, 999.0, -1000.0)[None], 2),  # exp(1000) overflows
        (f64(0.5, -0.5, 2.0)[None], 3),  # k = V: the whole softmax
        (f64(0.5, -0.5, 2.0)[None], 1),  # k = 1: greedy
    ],
    hint="find the k-th largest logit of each row (torch.topk), rule out the logits below it "
    "(-inf before the softmax, or 0 after it and divide by the new sum), and keep the ties.",
)

EXERCISES = (LSTM_CELL, BITS_PER_CHAR, TOP_K_PROBS)

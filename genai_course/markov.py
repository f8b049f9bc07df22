r"""Text as a sequence of characters, and Markov models of it (the sequences chapter).

By the chain rule of probability, any distribution over a text
:math:`x_1 \dots x_T` factorises as

.. math:: p(x_1, \dots, x_T) = \prod_{t=1}^{T} p(x_t \mid x_1, \dots, x_{t-1}).

A Markov model of *order* :math:`k` (an :math:`(k+1)`-gram model) keeps only
the last :math:`k` characters of the history, and estimates each conditional
from counts with add-:math:`\alpha` smoothing,

.. math:: p(c \mid h) = \frac{N(h c) + \alpha}{N(h) + \alpha V},

where :math:`N(\cdot)` counts occurrences in the training text and :math:`V`
is the number of distinct characters. A context never seen in training gets
the uniform distribution, never a probability of zero.
"""

from __future__ import annotations

import math
import numbers
from collections import Counter

import torch

from genai_course.config import check_positive_int
from genai_course.decoding import check_decoding, next_token_probs


class CharVocab:
    """The characters of a text, in sorted order, with their indices.

    ``encode`` turns a string into a tensor of indices (int64) and ``decode``
    turns indices back into the string; a character outside the vocabulary
    raises ``ValueError`` naming it.
    """

    def __init__(self, text: str):
        if not isinstance(text, str) or not text:
            raise ValueError("text must be a non-empty string")
        self.chars: list[str] = sorted(set(text))
        self.index = {c: i for i, c in enumerate(self.chars)}

    def __len__(self) -> int:
        return len(self.chars)

    def __contains__(self, char: str) -> bool:
        return isinstance(char, str) and char in self.index

    def encode(self, text: str) -> torch.Tensor:
        """Indices of the characters of ``text``: (len(text),) int64."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a string, got {type(text).__name__}")
        try:
            return torch.tensor([self.index[c] for c in text], dtype=torch.int64)
        except KeyError as error:
            raise ValueError(
                f"character {error.args[0]!r} is not in the vocabulary of {len(self)} characters"
            ) from None

    def decode(self, ids) -> str:
        """The string of the indices ``ids`` (a sequence or 1-D tensor of ints)."""
        try:
            ids = torch.as_tensor(ids)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f"ids must be a 1-D sequence of integer indices, got {ids!r}") from None
        if ids.ndim == 1 and ids.numel() == 0:
            return ""
        if ids.ndim != 1 or ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
            raise ValueError("ids must be a 1-D sequence of integer indices")
        if len(ids) and (ids.min() < 0 or ids.max() >= len(self)):
            raise ValueError(f"ids must be in 0..{len(self) - 1}")
        return "".join(self.chars[i] for i in ids.tolist())


def perplexity(bits: float) -> float:
    r"""The perplexity of a model that scores ``bits`` bits per character,

    .. math:: \mathrm{PPL} = 2^{\text{bits/char}} = e^{\text{nats/char}},

    the number of equally likely characters a uniform guess would choose among
    to be as uncertain: a uniform model over :math:`V` characters has
    perplexity :math:`V`. ``bits`` is a number >= 0 (``inf`` gives ``inf``)."""
    if not isinstance(bits, numbers.Real) or isinstance(bits, bool):
        raise TypeError(f"bits must be a real number, got {type(bits).__name__}")
    if not bits >= 0:  # NaN fails this too
        raise ValueError(f"bits must be a number >= 0 (bits per character), got {bits!r}")
    try:
        return 2.0 ** float(bits)
    except OverflowError:  # more than about 1024 bits per character
        return math.inf


class NGramModel:
    """A character Markov model of order ``order`` (``order`` = 0: unigram,
    1: bigram, ...) with add-``smoothing`` estimates (see the module)."""

    def __init__(self, order: int, smoothing: float = 1.0):
        if not isinstance(order, numbers.Integral) or isinstance(order, bool) or order < 0:
            raise ValueError(f"order must be an int >= 0, got {order!r}")
        if (
            not isinstance(smoothing, numbers.Real)
            or isinstance(smoothing, bool)
            or not 0 < smoothing < math.inf
        ):
            raise ValueError(
                f"smoothing must be > 0 and finite (0 gives unseen pairs probability 0), "
                f"got {smoothing!r}"
            )
        self.order, self.smoothing = int(order), float(smoothing)
        self.vocab: CharVocab | None = None
        self._counts: dict[str, Counter] = {}  # context -> counts of the next character
        self._totals: dict[str, int] = {}  # context -> how often it was followed by anything

    def fit(self, text: str, vocab: CharVocab | None = None) -> NGramModel:
        """Count every (context, next character) pair of ``text``. ``vocab``
        (default: the characters of ``text``) fixes the alphabet, so that
        held-out text may contain characters the training text lacks."""
        if vocab is not None and not isinstance(vocab, CharVocab):
            raise TypeError(f"vocab must be a CharVocab or None, got {type(vocab).__name__}")
        self.vocab = vocab if vocab is not None else CharVocab(text)
        self.vocab.encode(text)  # every character must be in the vocabulary
        k = self.order
        if len(text) <= k:
            raise ValueError(f"text must be longer than order={k} characters")
        grams = Counter(text[i : i + k + 1] for i in range(len(text) - k))
        self._counts, self._totals = {}, {}
        for gram, n in grams.items():
            context = gram[:k]
            self._counts.setdefault(context, Counter())[gram[k]] = n
            self._totals[context] = self._totals.get(context, 0) + n
        return self

    def with_smoothing(self, smoothing: float) -> NGramModel:
        """This fitted model's counts with another ``smoothing``: comparing several
        values of it does not count the text again (the counts do not depend on it)."""
        vocab = self._fitted()
        model = NGramModel(self.order, smoothing)
        model.vocab, model._counts, model._totals = vocab, self._counts, self._totals
        return model

    def _fitted(self) -> CharVocab:
        if self.vocab is None:
            raise RuntimeError("the model has not been fitted: call fit(text) first")
        return self.vocab

    def probs(self, context: str) -> torch.Tensor:
        """:math:`p(\\cdot \\mid h)` over the vocabulary, (V,) float64, for the
        last ``order`` characters :math:`h` of ``context``."""
        vocab = self._fitted()
        if not isinstance(context, str):
            raise TypeError(f"context must be a string, got {type(context).__name__}")
        if len(context) < self.order:
            raise ValueError(f"context must have at least order={self.order} characters")
        h = context[len(context) - self.order :]
        counts = torch.zeros(len(vocab), dtype=torch.float64)
        for char, n in self._counts.get(h, {}).items():
            counts[vocab.index[char]] = n
        alpha = self.smoothing
        return (counts + alpha) / (self._totals.get(h, 0) + alpha * len(vocab))

    def transition_matrix(self) -> torch.Tensor:
        """Order 1 only: the (V, V) matrix whose row :math:`i` is
        :math:`p(\\cdot \\mid \\text{character } i)`; every row sums to 1."""
        vocab = self._fitted()
        if self.order != 1:
            raise ValueError(f"a transition matrix needs order=1, this model has {self.order}")
        return torch.stack([self.probs(c) for c in vocab.chars])

    def log_prob(self, text: str) -> torch.Tensor:
        """Natural-log probability of each character of ``text`` after the
        first ``order`` (which serve as its context): (len(text) - order,)."""
        vocab = self._fitted()
        vocab.encode(text)
        k, alpha, size = self.order, self.smoothing, len(vocab)
        if len(text) <= k:
            raise ValueError(f"text must be longer than order={k} characters")
        values = []
        for i in range(k, len(text)):
            h = text[i - k : i]
            n = self._counts.get(h, {}).get(text[i], 0)
            values.append(math.log((n + alpha) / (self._totals.get(h, 0) + alpha * size)))
        return torch.tensor(values, dtype=torch.float64)

    def bits_per_char(self, text: str) -> float:
        """The average negative log-probability, in bits, of the characters of
        ``text`` after the first ``order``:
        :math:`-\\frac{1}{T}\\sum_t \\log_2 p(x_t \\mid h_t)`."""
        return -self.log_prob(text).mean().item() / math.log(2)

    def sample(
        self,
        length: int,
        prompt: str = "",
        *,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        generator: torch.Generator | None = None,
    ) -> str:
        """``prompt`` followed by ``length`` sampled characters. Each is drawn
        from :math:`p(\\cdot \\mid h)^{1/T}`, renormalised (``temperature``
        :math:`T`): :math:`\\mathrm{softmax}(\\log p(\\cdot \\mid h) / T)`, computed in
        log space, so that a small :math:`T` tends to the most probable character
        (shared equally among ties) instead of underflowing to zeros; then, if
        given, cut to the ``top_k`` most probable characters or to the nucleus of
        mass ``top_p`` and renormalised (:func:`genai_course.decoding.next_token_probs`).
        The prompt needs at least ``order`` characters."""
        vocab = self._fitted()
        check_positive_int("length", length)
        check_decoding(len(vocab), temperature=temperature, top_k=top_k, top_p=top_p)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(
                f"generator must be a torch.Generator or None, got {type(generator).__name__}"
            )
        if not isinstance(prompt, str) or len(prompt) < self.order:
            raise ValueError(
                f"prompt must be a string of at least order={self.order} characters, got {prompt!r}"
            )
        vocab.encode(prompt)
        text = prompt
        for _ in range(length):
            log_p = torch.log(self.probs(text))  # (V,), finite: smoothing > 0
            # p^(1/T) / sum p^(1/T) = softmax(log p / T), shifted by its max so that the
            # most probable character gets exp(0) = 1 however small T is
            weights = next_token_probs(log_p, temperature=temperature, top_k=top_k, top_p=top_p)
            text += vocab.chars[torch.multinomial(weights, 1, generator=generator).item()]
        return text


def stationary_distribution(matrix: torch.Tensor) -> torch.Tensor:
    r"""The distribution :math:`\pi` with :math:`\pi P = \pi` of a Markov chain
    with transition matrix :math:`P` (rows sum to 1, all entries positive, as
    smoothing makes them): the solution of :math:`(P^\top - I)\pi = 0`,
    :math:`\sum_i \pi_i = 1`, by least squares."""
    try:
        p = torch.as_tensor(matrix)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"matrix must be a tensor or array, got {type(matrix).__name__}") from None
    if p.is_complex() or p.dtype == torch.bool:
        raise TypeError(f"matrix must be real, got {p.dtype}")
    p = p.to(torch.float64)
    if p.ndim != 2 or p.shape[0] != p.shape[1] or len(p) == 0:
        raise ValueError(f"matrix must be square and non-empty, got shape {tuple(p.shape)}")
    if (p < 0).any() or not torch.allclose(p.sum(1), torch.ones(len(p), dtype=p.dtype)):
        raise ValueError("matrix must be a transition matrix: entries >= 0, rows summing to 1")
    n = len(p)
    system = torch.cat([p.T - torch.eye(n, dtype=p.dtype), torch.ones(1, n, dtype=p.dtype)])
    target = torch.cat([torch.zeros(n, dtype=p.dtype), torch.ones(1, dtype=p.dtype)])
    return torch.linalg.lstsq(system, target[:, None]).solution[:, 0]

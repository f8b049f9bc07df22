r"""Byte-pair encoding: frequent strings as tokens, learned from a text (the transformers chapter).

A character model spends one prediction on every character, and most of them
are easy ("q" then "u"). Byte-pair encoding (Gage, 1994; Sennrich et al., 2016;
the byte-level variant of GPT-2, Radford et al., 2019) learns longer tokens
from the text itself with one rule, applied ``num_merges`` times:

1. count every pair of adjacent tokens :math:`(a, b)` in the text;
2. merge the most frequent pair into a new token :math:`ab`, everywhere.

The text starts as a sequence of characters, so that after :math:`K` merges
the vocabulary holds the characters and :math:`K` new tokens, and the text is
shorter by the number of merged pairs. The choices this module makes:

- **The base tokens are the characters of the training text** (sorted, with
  the same ids as :class:`genai_course.markov.CharVocab` of that text), then
  the 256 **byte tokens** ``<0x00>`` ... ``<0xFF>``. A character never seen in
  training is encoded as the bytes of its UTF-8 spelling (the *byte fallback*
  of SentencePiece and Llama), so that ``decode(encode(s)) == s`` for every
  string ``s``: nothing maps to an "unknown" token and nothing is lost. The
  byte tokens never take part in a merge (the training text has none).
- **Merges stay inside a word.** The text is first cut into *words*, each a
  run of letters and digits, or a run of other non-space characters, with the
  whitespace before it attached (``"\nROMEO:"`` gives ``"\nROMEO"`` and
  ``":"``). Pairs are counted over the distinct words, weighted by how often
  each occurs: the same counts as over the whole text, less the pairs across
  word boundaries, and far fewer to update (the standard fast approach).
- **Ties** between pairs of equal count go to the pair of smallest ids
  :math:`(a, b)`: among characters, the alphabetically first; among merged
  tokens, the one merged first. Training is deterministic.
- **Training stops early** when no pair occurs twice: merging a pair that
  occurs once saves one token in the training text and costs a vocabulary
  entry. ``len(bpe.merges)`` may then be less than ``num_merges``.
- Overlapping pairs count each time: ``"aaa"`` holds the pair (a, a) twice,
  though one merge of it can apply (as in Sennrich et al.'s code).
- **Every merge makes a new token**, with the next id, even when another
  merge already spelt the same string (``("a", "ab")`` and ``("aa", "b")``):
  the vocabulary grows by exactly one per merge.

Encoding a new text cuts it into words the same way and, within each word,
applies the learned merges in the order they were learned.
"""

from __future__ import annotations

import math
import numbers
import re
from collections import Counter, defaultdict

import torch

NUM_BYTES = 256  # byte tokens <0x00> ... <0xFF>, after the characters

# a word: whitespace (possibly none) then a run of letters, digits and "_" or a run of
# other non-space characters; or the whitespace at the end of the text. Every character
# falls in exactly one word, so joining the words gives the text back.
_WORD = re.compile(r"\s*\w+|\s*[^\s\w]+|\s+")


def split_words(text: str) -> list[str]:
    """The words of ``text`` that merges stay within (see the module):
    ``"".join(split_words(text)) == text``."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a string, got {type(text).__name__}")
    return _WORD.findall(text)


def _merge(tokens: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """``tokens`` with every occurrence of ``pair``, scanned left to right, replaced
    by ``new_id`` (in "aaa", (a, a) merges once, at the left)."""
    merged, i = [], 0
    while i < len(tokens):
        if i + 1 < len(tokens) and (tokens[i], tokens[i + 1]) == pair:
            merged.append(new_id)
            i += 2
        else:
            merged.append(tokens[i])
            i += 1
    return merged


def _pairs(tokens: list[int]) -> list[tuple[int, int]]:
    return list(zip(tokens, tokens[1:], strict=False))  # (t_1, t_2), (t_2, t_3), ...


class BPE:
    """A byte-pair encoding: the base characters ``chars`` and the merge rule
    ``merge_ids``, a list of pairs of token ids in the order they were learned.

    Token ids: ``0 .. len(chars) - 1`` are the characters, the next 256 (from
    ``first_byte``) are the byte tokens, and merge :math:`k` (from 0) makes token
    ``first_merge + k``, where ``first_merge = len(chars) + 256``.
    ``vocab[i]`` is the string of token ``i`` (``"<0x41>"`` for a byte token);
    ``merges`` spells the merge rule as pairs of strings. Build one with
    :func:`train_bpe`."""

    def __init__(self, chars: list[str], merge_ids: list[tuple[int, int]]):
        if (
            not isinstance(chars, (list, tuple))
            or not all(isinstance(c, str) and len(c) == 1 for c in chars)
            or list(chars) != sorted(set(chars))
        ):
            raise ValueError("chars must be a list of distinct single characters, sorted")
        self.chars: list[str] = list(chars)
        self.index = {c: i for i, c in enumerate(self.chars)}
        self.first_byte = len(self.chars)  # the id of <0x00>
        self.first_merge = self.first_byte + NUM_BYTES  # the id of the first merged token
        self.vocab: list[str] = self.chars + [f"<0x{b:02X}>" for b in range(NUM_BYTES)]
        self.merge_ids: list[tuple[int, int]] = []
        self.merges: list[tuple[str, str]] = []
        self._rank: dict[tuple[int, int], int] = {}  # pair -> its place in the merge order
        for pair in merge_ids:
            self._add_merge(pair)

    def _add_merge(self, pair) -> int:
        new_id = len(self.vocab)
        if (
            not isinstance(pair, tuple)
            or len(pair) != 2
            or not all(isinstance(t, int) and self._mergeable(t) for t in pair)
        ):
            raise ValueError(
                f"merge_ids must hold pairs of ids of characters or earlier merges (less than "
                f"{new_id}, not byte tokens), got {pair!r}"
            )
        if pair in self._rank:
            raise ValueError(f"merge_ids holds the pair {pair!r} twice")
        self._rank[pair] = len(self.merge_ids)
        self.merge_ids.append(pair)
        a, b = pair
        self.merges.append((self.vocab[a], self.vocab[b]))
        self.vocab.append(self.vocab[a] + self.vocab[b])
        return new_id

    def _mergeable(self, token: int) -> bool:
        return 0 <= token < self.first_byte or self.first_merge <= token < len(self.vocab)

    def __len__(self) -> int:
        return len(self.vocab)

    def _base_tokens(self, word: str) -> list[int]:
        # each character's id, or the ids of its UTF-8 bytes if training never saw it
        # ("surrogatepass" lets a lone surrogate, a legal Python string, through too)
        tokens = []
        for c in word:
            if c in self.index:
                tokens.append(self.index[c])
            else:
                tokens.extend(self.first_byte + b for b in c.encode("utf-8", "surrogatepass"))
        return tokens

    def _encode_word(self, word: str) -> list[int]:
        tokens = self._base_tokens(word)
        # apply the merges in the order they were learned: the earliest-learned pair
        # present goes first (no pair learned earlier can appear afterwards, since
        # a pair that contains the new token was learned after it)
        while len(tokens) > 1:
            ranked = [(self._rank[p], p) for p in _pairs(tokens) if p in self._rank]
            if not ranked:
                break
            rank, pair = min(ranked)
            tokens = _merge(tokens, pair, self.first_merge + rank)
        return tokens

    def encode(self, text: str) -> torch.Tensor:
        """The token ids of ``text``: (number of tokens,) int64. Any string can be
        encoded: an unseen character becomes the byte tokens of its UTF-8 spelling."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a string, got {type(text).__name__}")
        done: dict[str, list[int]] = {}  # each distinct word is encoded once
        ids = []
        for word in split_words(text):
            if word not in done:
                done[word] = self._encode_word(word)
            ids.extend(done[word])
        return torch.tensor(ids, dtype=torch.int64)

    def decode(self, ids) -> str:
        """The string of the token ids ``ids`` (a sequence or 1-D tensor of ints).
        Byte tokens are joined and read as UTF-8; a run of them that is not
        valid UTF-8 (never made by :meth:`encode`) reads as U+FFFD."""
        try:
            ids = torch.as_tensor(ids)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f"ids must be a 1-D sequence of integer ids, got {ids!r}") from None
        if ids.ndim == 1 and ids.numel() == 0:
            return ""
        if ids.ndim != 1 or ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
            raise TypeError("ids must be a 1-D sequence of integer ids")
        if ids.min() < 0 or ids.max() >= len(self):
            raise ValueError(f"ids must be in 0..{len(self) - 1}, got {ids.min()}..{ids.max()}")
        pieces, pending = [], bytearray()  # pending: a run of byte tokens not yet decoded
        for i in ids.tolist():
            if self.first_byte <= i < self.first_merge:
                pending.append(i - self.first_byte)
                continue
            pieces.append(_utf8(bytes(pending)))
            pending.clear()
            pieces.append(self.vocab[i])
        pieces.append(_utf8(bytes(pending)))
        return "".join(pieces)


def _utf8(data: bytes) -> str:
    """``data`` read as UTF-8 (lone surrogates allowed, as encoded), each invalid
    stretch read as U+FFFD."""
    pieces = []
    while data:
        try:
            pieces.append(data.decode("utf-8", "surrogatepass"))
            break
        except UnicodeDecodeError as error:
            pieces.append(data[: error.start].decode("utf-8", "surrogatepass") + "\ufffd")
            data = data[error.end :]
    return "".join(pieces)


# -- training ------------------------------------------------------------------------------


def _best_pair(pair_counts: dict[tuple[int, int], int]) -> tuple[int, int]:
    # the most frequent pair; among equals, the smallest ids (a, b)
    return max(pair_counts, key=lambda p: (pair_counts[p], -p[0], -p[1]))


def train_bpe(text: str, num_merges: int) -> BPE:
    """Learn ``num_merges`` merges from ``text`` (see the module for the rule): each
    step merges the most frequent adjacent pair of tokens, counted within words.
    Stops early if no pair occurs twice. Deterministic."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a string, got {type(text).__name__}")
    if not text:
        raise ValueError("text must be a non-empty string")
    if not isinstance(num_merges, numbers.Integral) or isinstance(num_merges, bool):
        raise TypeError(f"num_merges must be an int, got {type(num_merges).__name__}")
    if num_merges < 0:
        raise ValueError(f"num_merges must be an int >= 0, got {num_merges!r}")
    bpe = BPE(sorted(set(text)), [])
    word_counts = Counter(split_words(text))
    words = [bpe._base_tokens(w) for w in word_counts]  # each distinct word, as token ids
    freqs = list(word_counts.values())  # how often each occurs
    # N(a, b): the number of times the pair occurs in the text, within words
    pair_counts: Counter[tuple[int, int]] = Counter()
    where = defaultdict(set)  # pair -> the words that hold it (or once did)
    for i, tokens in enumerate(words):
        for pair in _pairs(tokens):
            pair_counts[pair] += freqs[i]
            where[pair].add(i)
    for _ in range(num_merges):
        if not pair_counts:
            break
        best = _best_pair(pair_counts)
        if pair_counts[best] < 2:
            break
        new_id = bpe._add_merge(best)
        # update the counts of the words that change: remove their old pairs, add the new
        for i in where.pop(best):
            old = words[i]
            new = _merge(old, best, new_id)
            if len(new) == len(old):
                continue  # the word lost the pair to an earlier merge
            for pair in _pairs(old):
                pair_counts[pair] -= freqs[i]
                if pair_counts[pair] == 0:
                    del pair_counts[pair]
            for pair in _pairs(new):
                pair_counts[pair] += freqs[i]
                where[pair].add(i)
            words[i] = new
    return bpe


# -- comparing tokenisations ---------------------------------------------------------------


def chars_per_token(bpe: BPE, text: str) -> float:
    """The average number of characters a token of ``bpe`` covers in ``text``:
    ``len(text) / len(bpe.encode(text))`` (1 for a character vocabulary, except
    for characters that fall back to several byte tokens)."""
    if not isinstance(bpe, BPE):
        raise TypeError(f"bpe must be a BPE, got {type(bpe).__name__}")
    if not isinstance(text, str):
        raise TypeError(f"text must be a string, got {type(text).__name__}")
    if not text:
        raise ValueError("text must be a non-empty string")
    return len(text) / len(bpe.encode(text))


def bits_per_char_from_tokens(nats_per_token: float, num_tokens: int, num_chars: int) -> float:
    r"""A loss of ``nats_per_token`` (the mean cross-entropy, in nats, over
    ``num_tokens`` tokens) as bits per character of the ``num_chars`` characters
    those tokens spell:

    .. math:: \text{bits/char} = \frac{-\log p(x)}{N_\text{chars} \ln 2}
              = \frac{\bar{\ell}_\text{token} \, N_\text{tokens}}{N_\text{chars} \ln 2}.

    Why per character: the total :math:`-\log p(x)` is the cost of the text
    itself, whatever pieces it is cut into, but a tokenisation with longer
    tokens cuts it into fewer of them, each harder to predict. A BPE model has
    a larger loss per token than a character model even when it predicts the
    text better; per token the numbers measure different things. Divided by the
    number of characters, the same for both, they compare. (A model of tokens
    gives :math:`-\log p` of one tokenisation of the text; the text's own
    probability sums over all tokenisations, so this is an upper bound on the
    model's bits per character.) Count as characters exactly those the scored
    tokens spell: the first token of a sequence, never predicted, is not."""
    if not isinstance(nats_per_token, numbers.Real) or isinstance(nats_per_token, bool):
        raise TypeError(
            f"nats_per_token must be a real number, got {type(nats_per_token).__name__}"
        )
    if not 0 <= nats_per_token < math.inf:
        raise ValueError(f"nats_per_token must be finite and >= 0, got {nats_per_token!r}")
    for name, value in (("num_tokens", num_tokens), ("num_chars", num_chars)):
        if not isinstance(value, numbers.Integral) or isinstance(value, bool):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
        if value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    # total nats of the text, divided by its characters and by ln 2 (nats -> bits)
    return float(nats_per_token) * int(num_tokens) / (int(num_chars) * math.log(2))

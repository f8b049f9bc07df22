import math
from collections import Counter

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from genai_course.bpe import (
    BPE,
    NUM_BYTES,
    bits_per_char_from_tokens,
    chars_per_token,
    split_words,
    train_bpe,
)
from genai_course.data import load_shakespeare
from genai_course.markov import CharVocab

# any string a Python program can hold, lone surrogates included
any_text = st.text(st.characters(exclude_categories=()), max_size=40)
# a small alphabet: many repeated pairs, many ties between their counts
small_text = st.text(alphabet="ab c\n", min_size=1, max_size=80)


@pytest.fixture(scope="module")
def shakespeare_bpe():
    return train_bpe(load_shakespeare("train")[:200_000], 128)


@pytest.fixture(scope="module")
def small_bpe():
    return train_bpe("the cat sat on the mat; the rat sat on the cat.", 20)


# -- an independent reference: recount every pair of every word at every step ----------


def reference_merge(tokens, pair, new_id):
    out, i = [], 0
    while i < len(tokens):
        if tuple(tokens[i : i + 2]) == pair:  # "aaa" merges (a, a) once, at the left
            out.append(new_id)
            i += 2
        else:
            out.append(tokens[i])
            i += 1
    return out


def reference_train(text, num_merges):
    chars = sorted(set(text))
    words = [[chars.index(c) for c in w] for w in split_words(text)]  # every occurrence
    merges, new_id = [], len(chars) + NUM_BYTES
    for _ in range(num_merges):
        counts = Counter(p for w in words for p in zip(w, w[1:], strict=False))
        if not counts or max(counts.values()) < 2:
            break
        best = min(counts, key=lambda p: (-counts[p], p))  # most frequent, then smallest ids
        merges.append(best)
        words = [reference_merge(w, best, new_id) for w in words]
        new_id += 1
    return merges


def reference_encode(bpe, text):
    # replay every merge in the order learned, on each word
    ids = []
    for word in split_words(text):
        tokens = [bpe.chars.index(c) for c in word]
        for k, pair in enumerate(bpe.merge_ids):
            tokens = reference_merge(tokens, pair, bpe.first_merge + k)
        ids += tokens
    return ids


@settings(max_examples=60, deadline=None)
@given(small_text, st.integers(0, 12))
def test_training_matches_the_reference(text, num_merges):
    bpe = train_bpe(text, num_merges)
    assert bpe.merge_ids == reference_train(text, num_merges)
    assert bpe.encode(text).tolist() == reference_encode(bpe, text)
    assert len(bpe) == len(set(text)) + NUM_BYTES + len(bpe.merges)


# -- the merge rule by hand ---------------------------------------------------------------


def test_the_wikipedia_example():
    # aaabdaaabac: (a, a) occurs 4 times -> ZabdZabac; (a, b) twice -> ZYdZYac;
    # (Z, Y) twice -> XdXac; then no pair occurs twice, so training stops
    bpe = train_bpe("aaabdaaabac", 10)
    assert bpe.merges == [("a", "a"), ("a", "b"), ("aa", "ab")]
    assert bpe.chars == ["a", "b", "c", "d"]
    x = 4 + NUM_BYTES + 2  # the third merged token, "aaab"
    assert bpe.encode("aaabdaaabac").tolist() == [x, 3, x, 0, 2]
    assert [bpe.vocab[i] for i in bpe.encode("aaabdaaabac").tolist()] == [
        "aaab", "d", "aaab", "a", "c",
    ]  # fmt: skip
    assert len(bpe) == 4 + NUM_BYTES + 3


def test_ties_go_to_the_smallest_ids():
    # "abcd abcd": (a,b), (b,c), (c,d) each occur twice. Ids: " "=0, a=1, b=2, c=3, d=4.
    # (a, b) = (1, 2) first; then (ab, c) and (c, d) tie, and c=3 < ab=261: (c, d);
    # then (ab, cd); (" ", abcd) occurs once, so training stops
    bpe = train_bpe("abcd abcd", 10)
    assert bpe.merges == [("a", "b"), ("c", "d"), ("ab", "cd")]
    assert bpe.merge_ids == [(1, 2), (3, 4), (261, 262)]
    assert [bpe.vocab[i] for i in bpe.encode("abcd abcd").tolist()] == ["abcd", " ", "abcd"]


def test_merges_stay_within_words():
    # in "a a a a" the pair ("a", " ") occurs 3 times, but crosses a word boundary
    assert split_words("a a a a") == ["a", " a", " a", " a"]
    assert train_bpe("a a a a", 5).merges == [(" ", "a")]
    assert split_words("\nROMEO: Hi,  you") == ["\nROMEO", ":", " Hi", ",", "  you"]


def test_training_stops_when_no_pair_occurs_twice():
    bpe = train_bpe("abcd", 10)
    assert bpe.merges == [] and len(bpe) == 4 + NUM_BYTES
    # (a, b) occurs twice; then (ab, ab) once
    assert train_bpe("abab", 10).merges == [("a", "b")]


def test_zero_merges_is_the_character_vocabulary():
    text = "to be, or not to be"
    bpe, chars = train_bpe(text, 0), CharVocab(text)
    assert bpe.merges == [] and bpe.vocab[: len(chars)] == chars.chars
    assert len(bpe) == len(chars) + NUM_BYTES
    assert torch.equal(bpe.encode(text), chars.encode(text))


def test_training_is_deterministic_and_grows_by_one_per_merge(shakespeare_bpe):
    text = load_shakespeare("train")[:200_000]
    again = train_bpe(text, 32)
    # the first 32 merges of a longer training are the same merges
    assert again.merge_ids == shakespeare_bpe.merge_ids[:32]
    assert again.merges == train_bpe(text, 32).merges
    base = len(set(text)) + NUM_BYTES
    assert len(shakespeare_bpe.merges) == 128 and len(shakespeare_bpe) == base + 128
    assert len(again) == base + 32
    assert shakespeare_bpe.merges[0] == (" ", "t")  # the most frequent pair in Shakespeare


# -- lossless encoding --------------------------------------------------------------------


@settings(max_examples=80, deadline=None)
@given(any_text)
def test_round_trip_on_any_string(small_bpe, shakespeare_bpe, text):
    for bpe in (small_bpe, shakespeare_bpe):
        ids = bpe.encode(text)
        assert ids.dtype == torch.int64 and ids.ndim == 1
        assert bpe.decode(ids) == text
        assert bpe.decode(ids.tolist()) == text


def test_unseen_characters_fall_back_to_bytes(small_bpe):
    ids = small_bpe.encode("é").tolist()  # not in the training text: its 2 UTF-8 bytes
    assert [small_bpe.vocab[i] for i in ids] == ["<0xC3>", "<0xA9>"]
    assert small_bpe.decode(ids) == "é"
    assert small_bpe.decode(ids[:1]) == "\ufffd"  # half a character is not UTF-8
    assert small_bpe.decode([]) == "" and small_bpe.encode("").tolist() == []


def test_a_bpe_rebuilt_from_its_merges_encodes_the_same(shakespeare_bpe):
    text = load_shakespeare("valid")[:5000]
    copy = BPE(shakespeare_bpe.chars, shakespeare_bpe.merge_ids)
    assert copy.vocab == shakespeare_bpe.vocab
    assert torch.equal(copy.encode(text), shakespeare_bpe.encode(text))


# -- comparing tokenisations ---------------------------------------------------------------


def test_encoding_shortens_the_validation_text(shakespeare_bpe):
    valid = load_shakespeare("valid")
    ratios = []
    for k in (0, 16, 64, 128):
        bpe = BPE(shakespeare_bpe.chars, shakespeare_bpe.merge_ids[:k])
        ratios.append(chars_per_token(bpe, valid))
    assert ratios[0] == 1.0  # every character of the valid split is in the train split
    assert all(a < b for a, b in zip(ratios, ratios[1:], strict=False))
    assert ratios[-1] > 1.5


def test_bits_per_char_by_hand():
    # 3 tokens at 2 nats each spell 6 characters: 6 nats / 6 chars = 1 nat = 1/ln 2 bits
    assert bits_per_char_from_tokens(2.0, 3, 6) == pytest.approx(1 / math.log(2))
    # a uniform model over 4 characters: ln 4 nats per character token = 2 bits per char
    assert bits_per_char_from_tokens(math.log(4), 10, 10) == pytest.approx(2.0)
    # the same text, scored as a total, by characters or by (fewer, longer) tokens
    total = 12.5
    assert bits_per_char_from_tokens(total / 5, 5, 20) == pytest.approx(
        bits_per_char_from_tokens(total / 20, 20, 20)
    )
    assert chars_per_token(train_bpe("aaabdaaabac", 10), "aaabdaaabac") == 11 / 5


# -- errors name the argument --------------------------------------------------------------


def test_errors_name_the_argument(small_bpe):
    cases = [
        (TypeError, "text must be a string", lambda: train_bpe(b"abc", 3)),
        (ValueError, "text must be a non-empty string", lambda: train_bpe("", 3)),
        (TypeError, "num_merges must be an int", lambda: train_bpe("abc", 2.0)),
        (TypeError, "num_merges must be an int", lambda: train_bpe("abc", True)),
        (ValueError, "num_merges must be an int >= 0", lambda: train_bpe("abc", -1)),
        (TypeError, "text must be a string", lambda: small_bpe.encode(["a"])),
        (ValueError, "ids must be in 0", lambda: small_bpe.decode([0, len(small_bpe)])),
        (ValueError, "ids must be in 0", lambda: small_bpe.decode(torch.tensor([-1]))),
        (TypeError, "ids must be a 1-D sequence", lambda: small_bpe.decode([0.5])),
        (TypeError, "ids must be a 1-D sequence", lambda: small_bpe.decode([[0, 1]])),
        (TypeError, "ids must be a 1-D sequence", lambda: small_bpe.decode("ab")),
        (ValueError, "chars must be", lambda: BPE(["b", "a"], [])),
        (ValueError, "merge_ids must hold", lambda: BPE(["a"], [(0, 1)])),  # a byte token
        (ValueError, "merge_ids must hold", lambda: BPE(["a"], [(0, 300)])),
        (ValueError, "merge_ids holds the pair", lambda: BPE(["a"], [(0, 0), (0, 0)])),
        (TypeError, "bpe must be a BPE", lambda: chars_per_token("bpe", "abc")),
        (ValueError, "text must be a non-empty", lambda: chars_per_token(small_bpe, "")),
        (TypeError, "nats_per_token must be", lambda: bits_per_char_from_tokens("1", 1, 1)),
        (ValueError, "nats_per_token must be", lambda: bits_per_char_from_tokens(-1.0, 1, 1)),
        (ValueError, "nats_per_token must be", lambda: bits_per_char_from_tokens(math.nan, 1, 1)),
        (ValueError, "num_tokens must be", lambda: bits_per_char_from_tokens(1.0, 0, 1)),
        (TypeError, "num_chars must be an int", lambda: bits_per_char_from_tokens(1.0, 1, 2.5)),
    ]
    for error, message, call in cases:
        with pytest.raises(error, match=message):
            call()

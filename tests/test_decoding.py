import math
import re
from fractions import Fraction

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import special

from genai_course.decoding import (
    check_decoding,
    greedy_probs,
    next_token_probs,
    sample_tokens,
    temperature_probs,
    top_k_probs,
    top_p_probs,
)


def logits_of(*probs: float) -> torch.Tensor:
    """Logits whose softmax is ``probs``: their logarithms, float64."""
    return torch.tensor(probs, dtype=torch.float64).log()


def close(got: torch.Tensor, *want: float) -> None:
    torch.testing.assert_close(got, torch.tensor(want, dtype=torch.float64), rtol=0, atol=1e-12)


# -- each rule against a hand computation -------------------------------------------------


def test_temperature_raises_the_probabilities_to_the_power_one_over_tau():
    a = logits_of(0.5, 0.25, 0.25)
    close(temperature_probs(a), 0.5, 0.25, 0.25)
    close(temperature_probs(a, 0.5), 2 / 3, 1 / 6, 1 / 6)  # (1/4, 1/16, 1/16) / (3/8)
    close(temperature_probs(a, 1e13), 1 / 3, 1 / 3, 1 / 3)  # flat, to round-off
    # large logits: exp(1000) overflows; shifting by the largest does not
    close(temperature_probs(torch.tensor([1000.0, 1000.0, -math.inf], dtype=torch.float64)),
          0.5, 0.5, 0.0)  # fmt: skip


def test_greedy_puts_everything_on_the_first_largest_logit():
    close(greedy_probs(torch.tensor([1.0, 3.0, 2.0], dtype=torch.float64)), 0, 1, 0)
    close(greedy_probs(torch.tensor([3.0, 1.0, 3.0], dtype=torch.float64)), 1, 0, 0)  # a tie


def test_top_k_keeps_the_k_largest_and_renormalises():
    a = logits_of(0.4, 0.3, 0.2, 0.1)
    close(top_k_probs(a, 1), 1, 0, 0, 0)
    close(top_k_probs(a, 2), 4 / 7, 3 / 7, 0, 0)
    close(top_k_probs(a, 3), 4 / 9, 3 / 9, 2 / 9, 0)
    close(top_k_probs(a, 4), 0.4, 0.3, 0.2, 0.1)  # k = V: every token
    # the order of the vocabulary does not matter
    close(top_k_probs(logits_of(0.1, 0.3, 0.2, 0.4), 2), 0, 3 / 7, 0, 4 / 7)
    # with temperature: (0.16, 0.09) / 0.25
    close(top_k_probs(a, 2, temperature=0.5), 0.64, 0.36, 0, 0)


def test_top_k_keeps_every_token_tied_with_the_kth():
    a = logits_of(0.4, 0.2, 0.2, 0.2)
    close(top_k_probs(a, 2), 0.4, 0.2, 0.2, 0.2)  # three tie for second place: all kept
    close(top_k_probs(a, 1), 1, 0, 0, 0)
    close(top_k_probs(logits_of(0.3, 0.3, 0.4), 2), 0.3, 0.3, 0.4)


def test_nucleus_keeps_the_smallest_set_that_reaches_top_p():
    a = logits_of(0.5, 0.3, 0.15, 0.05)  # running mass 0.5, 0.8, 0.95, 1
    close(top_p_probs(a, 0.01), 1, 0, 0, 0)  # the most likely token alone
    close(top_p_probs(a, 0.45), 1, 0, 0, 0)
    close(top_p_probs(a, 0.6), 5 / 8, 3 / 8, 0, 0)  # 0.5 falls short: the 0.3 crosses 0.6
    close(top_p_probs(a, 0.85), 0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0)
    close(top_p_probs(a, 0.96), 0.5, 0.3, 0.15, 0.05)
    close(top_p_probs(a, 1.0), 0.5, 0.3, 0.15, 0.05)  # the whole distribution
    close(top_p_probs(logits_of(0.05, 0.3, 0.15, 0.5), 0.6), 0, 3 / 8, 0, 5 / 8)


def test_nucleus_keeps_ties_together():
    a = logits_of(0.4, 0.2, 0.2, 0.2)
    close(top_p_probs(a, 0.35), 1, 0, 0, 0)
    close(top_p_probs(a, 0.45), 0.4, 0.2, 0.2, 0.2)  # one 0.2 would do; all three are kept


def test_nucleus_applies_to_the_tempered_distribution():
    a = logits_of(0.5, 0.3, 0.2)
    close(top_p_probs(a, 0.85), 0.5, 0.3, 0.2)  # running mass 0.5, 0.8: 0.8 < 0.85
    # tau = 1/2: (0.25, 0.09, 0.04) / 0.38, running mass 0.658, 0.895: two tokens reach 0.85
    close(top_p_probs(a, 0.85, temperature=0.5), 0.25 / 0.34, 0.09 / 0.34, 0)


def test_the_rules_combine_in_order_temperature_top_k_nucleus():
    a = logits_of(0.4, 0.3, 0.2, 0.1)
    # top-3 then nucleus 0.7 of (4, 3, 2) / 9: running mass 0.444, 0.778 -> two tokens
    close(next_token_probs(a, top_k=3, top_p=0.7), 4 / 7, 3 / 7, 0, 0)
    close(next_token_probs(a, temperature=0.5, top_k=2), 0.64, 0.36, 0, 0)
    close(next_token_probs(a, greedy=True), 1, 0, 0, 0)
    torch.testing.assert_close(next_token_probs(a), temperature_probs(a), rtol=0, atol=0)


# -- on many logits, against independent references -----------------------------------------


@st.composite
def logits_and_shape(draw, max_v=12):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=max_v))
    values = draw(hnp.arrays(np.float64, shape, elements=st.floats(-20, 20, width=32)))
    if draw(st.booleans()):  # ties, as rounded logits make them
        values = np.round(values)
    return torch.from_numpy(values)


def kept_by_rank(a: np.ndarray, k: int) -> np.ndarray:
    # a token is in the top k when fewer than k tokens have a strictly larger logit
    greater = (a[..., None, :] > a[..., :, None]).sum(-1)  # (..., V)
    return greater < k


def renormalised(p: np.ndarray, keep: np.ndarray) -> np.ndarray:
    kept = np.where(keep, p, 0.0)
    return kept / kept.sum(-1, keepdims=True)


def nucleus_reference(p: np.ndarray, top_p: float) -> np.ndarray:
    """Row by row in exact arithmetic: walk down the sorted probabilities until
    the mass reaches top_p, then keep every token tied with the last one."""
    keep = np.zeros(p.shape, dtype=bool)
    for index in np.ndindex(p.shape[:-1]):
        row = p[index]
        mass, last = Fraction(0), None
        for c in sorted(range(len(row)), key=lambda c: -row[c]):
            if mass >= Fraction(top_p):
                break
            mass, last = mass + Fraction(row[c]), row[c]
        keep[index] = row >= last
    return keep


def partial_sums(p: np.ndarray) -> np.ndarray:
    return np.cumsum(-np.sort(-p, axis=-1), axis=-1)


@given(logits=logits_and_shape(), data=st.data())
@settings(max_examples=150, deadline=None)
def test_top_k_against_a_rank_count_and_torch_topk(logits, data):
    v = logits.shape[-1]
    k = data.draw(st.integers(1, v), label="k")
    tau = data.draw(st.sampled_from([0.3, 1.0, 2.5]), label="tau")
    got = top_k_probs(logits, k, temperature=tau)
    a = logits.numpy()
    keep = kept_by_rank(a, k)
    want = renormalised(special.softmax(a / tau, axis=-1), keep)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-12)
    assert (got.numpy()[~keep] == 0).all()
    torch.testing.assert_close(got.sum(-1), torch.ones(logits.shape[:-1], dtype=got.dtype))
    # torch.topk's k tokens are always kept (with ties, others may be kept too)
    top = logits.topk(k, dim=-1).indices
    assert (got.gather(-1, top) > 0).all()
    assert ((got > 0).sum(-1) >= k).all()


@given(logits=logits_and_shape(), top_p=st.floats(1e-3, 1.0), tau=st.sampled_from([0.5, 1.0]))
@settings(max_examples=150, deadline=None)
def test_nucleus_against_an_exact_walk_down_the_sorted_probabilities(logits, top_p, tau):
    # the probabilities to cut (the softmax itself is checked against scipy below): which
    # are tied must be the same here and in the reference, so round-off cannot split a tie
    p = temperature_probs(logits, tau).numpy()
    # a running sum within round-off of top_p could fall on either side: not a fair case
    assume(top_p == 1.0 or np.abs(partial_sums(p) - top_p).min() > 1e-9)
    got = top_p_probs(logits, top_p, temperature=tau).numpy()
    keep = np.ones(p.shape, dtype=bool) if top_p == 1.0 else nucleus_reference(p, top_p)
    np.testing.assert_allclose(got, renormalised(p, keep), rtol=1e-10, atol=1e-12)
    assert (got[~keep] == 0).all()
    np.testing.assert_allclose(got.sum(-1), 1.0, rtol=1e-12)
    # the kept mass reaches top_p; without the least likely kept token it would not
    # (tokens tied with it aside), and the kept set is the most likely tokens
    kept_mass = np.where(keep, p, 0).sum(-1)
    assert (kept_mass >= top_p - 1e-9).all()
    smallest = np.where(keep, p, np.inf).min(-1, keepdims=True)
    assert (np.where(keep & (p > smallest), p, 0).sum(-1) < top_p + 1e-9).all()
    assert (np.where(~keep, p, -np.inf).max(-1) <= smallest[..., 0]).all()


@given(logits=logits_and_shape(), tau=st.floats(0.05, 20))
@settings(max_examples=80, deadline=None)
def test_temperature_and_greedy_against_scipy_and_numpy(logits, tau):
    a = logits.numpy()
    np.testing.assert_allclose(
        temperature_probs(logits, tau).numpy(), special.softmax(a / tau, axis=-1), rtol=1e-9,
        atol=1e-15,
    )  # fmt: skip
    one_hot = np.eye(a.shape[-1])[np.argmax(a, axis=-1)]
    np.testing.assert_array_equal(greedy_probs(logits).numpy(), one_hot)


@given(logits=logits_and_shape())
@settings(max_examples=40, deadline=None)
def test_k_equal_to_v_and_p_equal_to_one_keep_the_whole_distribution(logits):
    whole = temperature_probs(logits)
    torch.testing.assert_close(top_k_probs(logits, logits.shape[-1]), whole, rtol=0, atol=0)
    torch.testing.assert_close(top_p_probs(logits, 1.0), whole, rtol=0, atol=0)


def test_float32_and_batches_keep_dtype_and_shape():
    logits = torch.randn(2, 3, 7, generator=torch.Generator().manual_seed(0))
    for probs in (top_k_probs(logits, 3), top_p_probs(logits, 0.7), greedy_probs(logits)):
        assert probs.shape == (2, 3, 7) and probs.dtype == torch.float32
        torch.testing.assert_close(probs.sum(-1), torch.ones(2, 3))
    assert (top_k_probs(logits, 3) > 0).sum(-1).eq(3).all()


# -- the sampler -----------------------------------------------------------------------------


def test_sampling_is_seeded_and_draws_each_row_from_its_probabilities():
    probs = torch.tensor([[0.7, 0.2, 0.1, 0.0], [0.0, 0.0, 0.0, 1.0]], dtype=torch.float64)
    draws = sample_tokens(probs.expand(4000, 2, 4), torch.Generator().manual_seed(0))
    again = sample_tokens(probs.expand(4000, 2, 4), torch.Generator().manual_seed(0))
    assert draws.shape == (4000, 2) and draws.dtype == torch.int64 and draws.equal(again)
    assert (draws[:, 1] == 3).all()  # certain
    freq = torch.bincount(draws[:, 0], minlength=4) / 4000
    assert freq[3] == 0  # impossible, never drawn
    se = (probs[0] * (1 - probs[0]) / 4000).sqrt()  # binomial standard errors
    assert ((freq - probs[0]).abs() <= 5 * se + 1e-12).all()


def test_sample_of_a_one_dimensional_row_is_one_index():
    draw = sample_tokens(torch.tensor([0.0, 1.0]), torch.Generator().manual_seed(0))
    assert draw.shape == () and draw.item() == 1


# -- bad input: a clear error that names the argument ----------------------------------------

A = torch.tensor([0.5, 1.0, -1.0], dtype=torch.float64)
BAD = [
    (lambda v: top_k_probs(A, v), "top_k", [0, -1, 4, 1.5, 2.0, True, "2", None, np.float64(2)]),
    (lambda v: next_token_probs(A, top_k=v), "top_k", [0, 4, 1.5, True]),
    (
        lambda v: top_p_probs(A, v),
        "top_p",
        [0, 0.0, -0.1, 1.0001, 2, math.nan, math.inf, True, "0.9", None, torch.tensor(0.5)],
    ),
    (lambda v: next_token_probs(A, top_p=v), "top_p", [0.0, 1.5, math.nan, False]),
    (
        lambda v: temperature_probs(A, v),
        "temperature",
        [0, 0.0, -1.0, math.nan, math.inf, True, "1", None],
    ),
    (lambda v: top_k_probs(A, 2, temperature=v), "temperature", [0, -0.5]),
    (lambda v: top_p_probs(A, 0.9, temperature=v), "temperature", [0, math.inf]),
    (lambda v: next_token_probs(A, greedy=v), "greedy", [1, "yes", None]),
    (lambda v: next_token_probs(A, greedy=True, **v), "greedy",
     [{"temperature": 0.5}, {"top_k": 2}, {"top_p": 0.9}]),  # fmt: skip
    (
        temperature_probs,
        "logits",
        [
            [0.5, 1.0],
            np.zeros(3),
            torch.tensor([1, 2]),
            torch.tensor(1.0),
            torch.zeros(0),
            torch.tensor([1.0, math.nan]),
            torch.tensor([1.0, math.inf]),
            torch.tensor([-math.inf, -math.inf]),
        ],
    ),
    (greedy_probs, "logits", [torch.tensor([math.nan, 1.0]), torch.tensor([3])]),
    (
        sample_tokens,
        "probs",
        [
            [0.5, 0.5],
            torch.tensor([1, 0]),
            torch.tensor(1.0),
            torch.zeros(0),
            torch.tensor([0.5, -0.1]),
            torch.tensor([0.0, 0.0]),
            torch.tensor([0.5, math.nan]),
            torch.tensor([math.inf, 1.0]),
        ],
    ),
    (lambda v: sample_tokens(torch.tensor([0.5, 0.5]), v), "generator", [0, "seed"]),
]


@pytest.mark.parametrize(("call", "argument", "values"), BAD, ids=[f"{b[1]}-{i}" for i, b in
                                                                   enumerate(BAD)])  # fmt: skip
def test_bad_values_are_refused_by_name(call, argument, values):
    for value in values:
        with pytest.raises((ValueError, TypeError)) as error:
            call(value)
        assert re.search(rf"\b{argument}\b", str(error.value)), (value, str(error.value))


def test_the_options_are_checked_together_before_any_logits():
    check_decoding(5, temperature=0.7, top_k=5, top_p=1.0)
    with pytest.raises(ValueError, match="top_k must be an int from 1 to 5"):
        check_decoding(5, top_k=6)
    with pytest.raises(TypeError, match="top_k must be an int"):
        check_decoding(5, top_k=2.0)
    with pytest.raises(ValueError, match=r"top_p must be a number in \(0, 1\]"):
        check_decoding(5, top_p=0)
    with pytest.raises(ValueError, match="temperature must be a number > 0"):
        check_decoding(5, temperature=0)  # the appendix's mistake: tau = 0 is not greedy

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from genai_course.markov import CharVocab, NGramModel, perplexity, stationary_distribution

texts = st.text(alphabet="abc d", min_size=8, max_size=60)


# -- the vocabulary -------------------------------------------------------------------


@given(texts)
def test_vocab_round_trip(text):
    vocab = CharVocab(text)
    ids = vocab.encode(text)
    assert ids.dtype == torch.int64 and len(ids) == len(text)
    assert vocab.decode(ids) == text
    assert vocab.chars == sorted(set(text))


def test_vocab_errors_name_the_problem():
    vocab = CharVocab("to be or not")
    with pytest.raises(ValueError, match="character 'z' is not in the vocabulary"):
        vocab.encode("zebra")
    with pytest.raises(ValueError, match=r"ids must be in 0\.\.6"):
        vocab.decode([0, 7])
    with pytest.raises(ValueError, match="non-empty string"):
        CharVocab("")
    with pytest.raises(TypeError, match="text must be a string"):
        vocab.encode(["t", "o"])


# -- counts and probabilities -----------------------------------------------------------


def test_counts_on_a_hand_made_text():
    # counted by hand: in "abab ab", "a" is followed by b three times; "b" by "a" and " "
    text = "abab ab"
    model = NGramModel(1, smoothing=0.5).fit(text)
    assert model.vocab.chars == [" ", "a", "b"]
    # N(a .) = 3 (b, b, b), so p(b | a) = (3 + 0.5) / (3 + 1.5)
    torch.testing.assert_close(
        model.probs("a"), torch.tensor([0.5, 0.5, 3.5], dtype=torch.float64) / 4.5
    )
    # N(b .) = 2 (a, " "): p = (1.5, 1.5, 0.5) / 3.5
    torch.testing.assert_close(
        model.probs("b"), torch.tensor([1.5, 1.5, 0.5], dtype=torch.float64) / 3.5
    )
    # unigram: the character frequencies, smoothed
    unigram = NGramModel(0, smoothing=1.0).fit(text)
    torch.testing.assert_close(
        unigram.probs(""), torch.tensor([2.0, 4.0, 4.0], dtype=torch.float64) / 10
    )


@given(texts, st.integers(0, 4), st.floats(0.01, 5))
def test_every_context_has_a_distribution(text, order, alpha):
    if len(text) <= order:
        return
    model = NGramModel(order, smoothing=alpha).fit(text)
    for i in range(order, len(text)):
        p = model.probs(text[:i])
        assert (p > 0).all()
        assert abs(p.sum().item() - 1) < 1e-12
    unseen = model.probs("d" * 5)  # possibly never seen: uniform, not zero
    assert (unseen > 0).all()


def test_log_prob_and_bits_per_char_agree_with_probs():
    text = "the cat sat on the mat, the rat sat on the cat"
    model = NGramModel(2, smoothing=0.1).fit(text)
    held_out = "the mat sat"
    expected = [
        math.log(model.probs(held_out[:i])[model.vocab.index[held_out[i]]].item())
        for i in range(2, len(held_out))
    ]
    torch.testing.assert_close(
        model.log_prob(held_out), torch.tensor(expected, dtype=torch.float64)
    )
    assert model.bits_per_char(held_out) == pytest.approx(-np.mean(expected) / math.log(2))
    # a bigger alphabet for the held-out text: unseen characters are allowed, and cost more
    wide = NGramModel(2, smoothing=0.1).fit(text, vocab=CharVocab(text + "xyz"))
    assert wide.bits_per_char("the xat") > wide.bits_per_char("the cat")


@given(texts, st.integers(0, 3), st.floats(0.01, 5))
def test_with_smoothing_is_fitting_again_with_that_smoothing(text, order, alpha):
    if len(text) <= order:
        return
    counted = NGramModel(order, smoothing=1.0).fit(text)
    refitted = NGramModel(order, smoothing=alpha).fit(text)
    resmoothed = counted.with_smoothing(alpha)
    assert resmoothed.smoothing == alpha and counted.smoothing == 1.0  # a new model
    torch.testing.assert_close(resmoothed.log_prob(text), refitted.log_prob(text), rtol=0, atol=0)


def test_a_uniform_model_costs_log2_v_bits():
    text = "abcdefgh" * 10
    model = NGramModel(3, smoothing=1.0).fit(text[:4], vocab=CharVocab(text))  # nearly no data
    assert model.bits_per_char("hgfedcba") == pytest.approx(math.log2(8), abs=0.2)


def test_perplexity_is_the_number_of_equally_likely_characters():
    # uniform over V characters: log2 V bits each, perplexity V
    for v in (1, 2, 8, 76):
        assert perplexity(math.log2(v)) == pytest.approx(v, rel=1e-12)
    text = "abcdefgh" * 10
    model = NGramModel(0, smoothing=1.0).fit(text)  # every character 10 times: uniform
    assert perplexity(model.bits_per_char("hgfedcba")) == pytest.approx(8, rel=1e-12)
    # by hand: p = 1/2, 1/4, 1/4 for three characters is 1.5 bits each on average,
    # 2 ** 1.5 = 2.83: fewer than 3 choices, more than 2; equal to e ** (nats per char)
    model = NGramModel(0, smoothing=1e-12).fit("aabc")
    bits = model.bits_per_char("abc")
    assert bits == pytest.approx(5 / 3, rel=1e-9)  # (1 + 2 + 2) / 3
    assert perplexity(bits) == pytest.approx(2 ** (5 / 3), rel=1e-9)
    assert perplexity(bits) == pytest.approx(math.exp(bits * math.log(2)), rel=1e-12)
    assert perplexity(0) == 1.0 and perplexity(np.float32(1.0)) == 2.0
    assert perplexity(math.inf) == math.inf and perplexity(5000.0) == math.inf


@pytest.mark.parametrize("bad", [-0.1, math.nan, -math.inf, True, "2", None, [1.0]])
def test_perplexity_refuses_what_is_not_bits_per_character(bad):
    with pytest.raises((ValueError, TypeError), match="bits must be"):
        perplexity(bad)


def test_transition_matrix_and_stationary_distribution():
    text = "abracadabra, a bad cab"
    model = NGramModel(1).fit(text)
    matrix = model.transition_matrix()
    assert matrix.shape == (len(model.vocab), len(model.vocab))
    torch.testing.assert_close(matrix.sum(1), torch.ones(len(matrix), dtype=torch.float64))
    pi = stationary_distribution(matrix)
    torch.testing.assert_close(pi @ matrix, pi)
    # against NumPy: the left eigenvector of eigenvalue 1, normalised
    values, vectors = np.linalg.eig(matrix.numpy().T)
    v = np.real(vectors[:, np.argmin(abs(values - 1))])
    np.testing.assert_allclose(pi.numpy(), v / v.sum(), atol=1e-10)
    with pytest.raises(ValueError, match="needs order=1"):
        NGramModel(2).fit(text).transition_matrix()
    with pytest.raises(ValueError, match="transition matrix"):
        stationary_distribution(torch.tensor([[0.5, 0.6], [0.5, 0.5]]))


# -- sampling -------------------------------------------------------------------------


def test_sampling_is_reproducible_and_respects_the_prompt():
    text = "to be or not to be that is the question " * 5
    model = NGramModel(3, smoothing=0.01).fit(text)
    first = model.sample(40, "to ", generator=torch.Generator().manual_seed(0))
    again = model.sample(40, "to ", generator=torch.Generator().manual_seed(0))
    assert first == again and first.startswith("to ") and len(first) == 43
    # every context of three letters has one continuation here; nearly no smoothing and
    # a low temperature follow it, so the text comes back from the prompt on
    alphabet = "abcdefghij" * 5
    model = NGramModel(3, smoothing=0.01).fit(alphabet)
    rng = torch.Generator().manual_seed(1)
    assert model.sample(20, "cde", temperature=0.1, generator=rng) == alphabet[2:25]


def old_sample(model, length, prompt, temperature, generator):
    """NGramModel.sample as it was before the decoding options: what its defaults keep."""
    text = prompt
    for _ in range(length):
        log_p = torch.log(model.probs(text))
        weights = torch.softmax((log_p - log_p.max()) / temperature, dim=0)
        text += model.vocab.chars[torch.multinomial(weights, 1, generator=generator).item()]
    return text


@pytest.mark.parametrize("temperature", [1.0, 0.3, 2.0])
def test_sampling_draws_exactly_what_it_drew_before_the_decoding_options(temperature):
    model = NGramModel(2, smoothing=0.1).fit("to be or not to be that is the question " * 3)
    rng = torch.Generator().manual_seed(2)
    new = model.sample(200, "to", temperature=temperature, generator=rng)
    old = old_sample(model, 200, "to", temperature, torch.Generator().manual_seed(2))
    assert new == old


def test_top_k_and_nucleus_sampling_from_an_n_gram():
    model = NGramModel(0, smoothing=1.0).fit("aaaaaabbbc")  # p = 7/13, 4/13, 2/13
    n, rng = 3000, torch.Generator().manual_seed(0)
    assert set(model.sample(n, top_k=1, generator=rng)) == {"a"}
    two = model.sample(n, top_k=2, generator=rng)
    assert "c" not in two and abs(two.count("a") / n - 7 / 11) < 5 * (0.25 / n) ** 0.5
    # 7/13 = 0.54 falls short of 0.6: the nucleus is {a, b}, renormalised to (7, 4) / 11
    nucleus = model.sample(n, top_p=0.6, generator=rng)
    assert "c" not in nucleus and abs(nucleus.count("a") / n - 7 / 11) < 5 * (0.25 / n) ** 0.5
    assert set(model.sample(n, top_p=0.5, generator=rng)) == {"a"}
    with pytest.raises(ValueError, match="top_k must be an int from 1 to 3"):
        model.sample(5, top_k=4)
    with pytest.raises(ValueError, match="top_p must be a number in"):
        model.sample(5, top_p=0.0)


def test_temperature_flattens_or_sharpens():
    text = "aaaaaaaaab" * 20
    model = NGramModel(0, smoothing=1.0).fit(text)
    rng = torch.Generator().manual_seed(0)
    hot = model.sample(2000, temperature=100.0, generator=rng).count("b") / 2000
    cold = model.sample(2000, temperature=0.2, generator=rng).count("b") / 2000
    assert 0.4 < hot < 0.6  # nearly uniform over {a, b}
    assert cold < 0.01  # nearly always the most probable


def test_small_temperatures_tend_to_the_most_probable_character():
    # twenty characters: even the most probable next one has p < 0.2, and p ** (1 / T)
    # underflowed to 0 for every character at T = 1e-3; in log space it is the argmax
    text = "abcdefghijklmnopqrst" * 3 + "ab"
    model = NGramModel(1, smoothing=1.0).fit(text)
    greedy = "a"
    for _ in range(30):
        greedy += model.vocab.chars[int(model.probs(greedy).argmax())]
    assert greedy.startswith("abcdefghijklmnopqrstabc")
    for temperature in (1e-3, 1e-30, 1e-300, 5e-324):
        rng = torch.Generator().manual_seed(0)
        assert model.sample(30, "a", temperature=temperature, generator=rng) == greedy


def test_tied_characters_share_the_limit_of_a_small_temperature():
    model = NGramModel(0, smoothing=1.0).fit("aabbc")  # p(a) = p(b) = 3/8, p(c) = 2/8
    rng = torch.Generator().manual_seed(0)
    sample = model.sample(2000, temperature=1e-3, generator=rng)
    assert "c" not in sample and abs(sample.count("a") / 2000 - 0.5) < 5 * (0.25 / 2000) ** 0.5


def test_temperature_raises_the_probabilities_to_the_power_one_over_t():
    model = NGramModel(0, smoothing=1.0).fit("aaaaaabbbc")
    p = model.probs("")  # (7, 4, 2) / 13
    for temperature in (0.5, 2.0):
        weights = p ** (1 / temperature) / (p ** (1 / temperature)).sum()
        n = 4000
        sample = model.sample(
            n, temperature=temperature, generator=torch.Generator().manual_seed(1)
        )
        freq = torch.tensor([sample.count(c) / n for c in model.vocab.chars], dtype=torch.float64)
        standard_error = (weights * (1 - weights) / n).sqrt()
        assert ((freq - weights).abs() <= 5 * standard_error).all()


@pytest.mark.parametrize("temperature", [True, "1", None, torch.tensor(1.0)])
def test_temperature_must_be_a_real_number(temperature):
    model = NGramModel(1).fit("abab")
    with pytest.raises(TypeError, match="temperature must be a real number"):
        model.sample(3, "a", temperature=temperature)


def test_numpy_temperatures_and_orders_are_numbers():
    model = NGramModel(np.int64(1), smoothing=np.float32(0.5)).fit("abcab")
    assert model.order == 1 and model.smoothing == 0.5
    one = model.sample(
        5, "a", temperature=np.float32(0.5), generator=torch.Generator().manual_seed(0)
    )
    two = model.sample(5, "a", temperature=0.5, generator=torch.Generator().manual_seed(0))
    assert one == two


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda m: m.sample(10, "ab", temperature=0), "temperature must be a number > 0"),
        (lambda m: m.sample(10, "ab", temperature=math.inf), "temperature must be a number > 0"),
        (lambda m: m.sample(10, "ab", temperature=math.nan), "temperature must be a number > 0"),
        (lambda m: m.sample(10, "ab", temperature=-1.0), "temperature must be a number > 0"),
        (lambda m: m.sample(10, "a"), "prompt must be a string of at least order=2"),
        (lambda m: m.sample(0, "ab"), "length must"),
        (lambda m: m.sample(5, "aq"), "character 'q'"),
        (lambda m: m.log_prob("ab"), "longer than order=2"),
    ],
)
def test_bad_arguments_are_named(call, message):
    model = NGramModel(2).fit("abcabcabd")
    with pytest.raises(ValueError, match=message):
        call(model)


def test_model_arguments_are_checked():
    with pytest.raises(ValueError, match="order must be an int >= 0"):
        NGramModel(-1)
    with pytest.raises(ValueError, match="smoothing must be > 0"):
        NGramModel(2, smoothing=0)
    with pytest.raises(RuntimeError, match="call fit"):
        NGramModel(1).probs("a")
    with pytest.raises(RuntimeError, match="call fit"):
        NGramModel(1).with_smoothing(0.1)
    with pytest.raises(ValueError, match="smoothing must be > 0"):
        NGramModel(1).fit("abab").with_smoothing(-1.0)
    for smoothing in (math.inf, math.nan, True):  # inf gave probabilities inf / inf = NaN
        with pytest.raises(ValueError, match="smoothing must be > 0 and finite"):
            NGramModel(1, smoothing=smoothing)
    with pytest.raises(TypeError, match="vocab must be a CharVocab"):
        NGramModel(1).fit("abab", vocab="ab")
    with pytest.raises(TypeError, match="context must be a string"):
        NGramModel(1).fit("abab").probs(["a"])
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        NGramModel(1).fit("abab").sample(3, "a", generator=0)


def test_decode_and_the_stationary_distribution_refuse_what_is_not_real():
    vocab = CharVocab("abcd")
    assert vocab.decode([]) == "" and vocab.decode(np.array([3, 0])) == "da"
    for ids in ([True, False], torch.tensor([1 + 1j]), [0.5]):
        with pytest.raises(ValueError, match="ids must be a 1-D sequence of integer indices"):
            vocab.decode(ids)
    with pytest.raises(TypeError, match="ids must be"):
        vocab.decode("ab")
    with pytest.raises(TypeError, match="matrix must be real"):  # was cast to real, silently
        stationary_distribution(torch.tensor([[0.5 + 1j, 0.5], [0.5, 0.5]]))
    with pytest.raises(ValueError, match="matrix must be square and non-empty"):
        stationary_distribution(torch.empty(0, 0))

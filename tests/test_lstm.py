import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from genai_course.lstm import (
    LSTM,
    CharLSTM,
    LSTMCell,
    RNNCell,
    generate,
    tbptt_step,
    text_chunks,
)
from genai_course.markov import CharVocab
from genai_course.train import fit

TOLERANCE = {torch.float32: 1e-6, torch.float64: 1e-10}


def copy_cell(ours, theirs):
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(ours, name).copy_(getattr(theirs, name))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("ours_cls, theirs_cls", [(RNNCell, nn.RNNCell), (LSTMCell, nn.LSTMCell)])
def test_cells_equal_torch(ours_cls, theirs_cls, dtype):
    torch.manual_seed(0)
    theirs = theirs_cls(5, 7).to(dtype)
    ours = ours_cls(5, 7).to(dtype)
    copy_cell(ours, theirs)
    x = torch.randn(3, 5, dtype=dtype)
    state = torch.randn(3, 7, dtype=dtype)
    if ours_cls is LSTMCell:
        state = (state, torch.randn(3, 7, dtype=dtype))
    for s in (None, state):
        a, b = ours(x, s), theirs(x, s)
        torch.testing.assert_close(a, b, atol=TOLERANCE[dtype], rtol=0)


@settings(max_examples=30)
@given(
    st.integers(1, 3),  # layers
    st.integers(1, 4),  # batch
    st.integers(1, 6),  # steps
    st.booleans(),  # batch_first
    st.booleans(),  # initial state given
    st.sampled_from([torch.float32, torch.float64]),
)
def test_lstm_equals_torch_outputs_states_and_gradients(
    layers, batch, steps, batch_first, with_state, dtype
):
    torch.manual_seed(layers * 100 + batch * 10 + steps)
    theirs = nn.LSTM(4, 6, layers, batch_first=batch_first).to(dtype)
    ours = LSTM(4, 6, layers, batch_first=batch_first).to(dtype).copy_from(theirs)
    shape = (batch, steps, 4) if batch_first else (steps, batch, 4)
    x = torch.randn(shape, dtype=dtype)
    state = None
    if with_state:
        state = (
            torch.randn(layers, batch, 6, dtype=dtype),
            torch.randn(layers, batch, 6, dtype=dtype),
        )
    results = []
    for model in (ours, theirs):
        xi = x.clone().requires_grad_()
        out, (h, c) = model(xi, state)
        # a loss that touches every output and both final states
        loss = (out * torch.linspace(-1, 1, out.numel(), dtype=dtype).reshape(out.shape)).sum()
        loss = loss + (h**2).sum() + c.sin().sum()
        loss.backward()
        grads = [xi.grad] + [p.grad for p in model.parameters()]
        results.append((out, h, c, grads))
    tol = TOLERANCE[dtype]
    for a, b in zip(results[0][:3], results[1][:3], strict=True):
        torch.testing.assert_close(a, b, atol=tol, rtol=0)
    # parameters come in the same order: per layer weight_ih, weight_hh, bias_ih, bias_hh
    for ga, gb in zip(results[0][3], results[1][3], strict=True):
        torch.testing.assert_close(ga, gb, atol=tol, rtol=0)


def test_copy_from_refuses_other_sizes():
    with pytest.raises(ValueError, match="sizes"):
        LSTM(4, 6, 2).copy_from(nn.LSTM(4, 6, 1))
    with pytest.raises(ValueError, match="unidirectional"):
        LSTM(4, 6).copy_from(nn.LSTM(4, 6, bidirectional=True))
    with pytest.raises(TypeError, match="torch.nn.LSTM"):
        LSTM(4, 6).copy_from(nn.GRU(4, 6))


def test_shapes_and_errors():
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 5\)"):
        LSTMCell(5, 3)(torch.randn(2, 4))
    with pytest.raises(ValueError, match="hidden_size"):
        RNNCell(3, 0)
    with pytest.raises(ValueError, match="3-D"):
        LSTM(3, 4)(torch.randn(2, 3))
    model = CharLSTM(10, embed_dim=4, hidden_size=8, num_layers=2)
    logits, (h, c) = model(torch.randint(0, 10, (3, 7)))
    assert logits.shape == (3, 7, 10) and h.shape == c.shape == (2, 3, 8)
    with pytest.raises(ValueError, match="integer indices"):
        model(torch.randn(3, 7))
    with pytest.raises(ValueError, match="dropout"):
        CharLSTM(10, dropout=1.0)


def test_lstm_cell_state_must_be_a_pair():
    cell = LSTMCell(5, 7)
    x, h, c = torch.randn(3, 5), torch.randn(3, 7), torch.randn(3, 7)
    # a (2, 3, 7) tensor used to be split silently into h and c
    for bad in (torch.stack([h, c]), h, (h,), [h, c, c]):
        with pytest.raises(TypeError, match=r"state must be a pair \(h, c\)"):
            cell(x, bad)
    with pytest.raises(ValueError, match=r"state\[1\] \(c\) must have shape \(3, 7\)"):
        cell(x, (h, torch.randn(2, 7)))
    with pytest.raises(TypeError, match=r"state\[0\] \(h\) must be a torch.float32 tensor"):
        cell(x, (h.double(), c))
    torch.testing.assert_close(cell(x, [h, c]), cell(x, (h, c)))  # a list is a pair too
    # the stack of cells checks its (h0, c0) as well
    with pytest.raises(TypeError, match="state must be a pair"):
        LSTM(5, 7, 2)(x[:, None], torch.zeros(2, 2, 3, 7))
    with pytest.raises(ValueError, match=r"state\[0\] \(h\) must have shape \(2, 3, 7\)"):
        LSTM(5, 7, 2)(x[:, None], (torch.zeros(1, 3, 7), torch.zeros(2, 3, 7)))


def test_inputs_of_the_wrong_kind_are_named():
    with pytest.raises(TypeError, match="x must be a torch.float32 tensor"):
        LSTMCell(5, 3)(torch.randn(2, 5, dtype=torch.float64))
    with pytest.raises(TypeError, match="h must be a torch.Tensor"):
        RNNCell(5, 3)(torch.randn(2, 5), [[0.0] * 3] * 2)
    with pytest.raises(ValueError, match="at least one time step"):
        LSTM(5, 3)(torch.randn(2, 0, 5))
    model = CharLSTM(10, embed_dim=4, hidden_size=8, num_layers=1)
    with pytest.raises(ValueError, match=r"ids must be in 0\.\.9"):
        model(torch.tensor([[0, 10]]))  # an IndexError deep inside the embedding before
    with pytest.raises(ValueError, match="ids must be integer indices"):
        model(torch.tensor([[True, False]]))
    logits, _ = model(torch.tensor([[1, 2]], dtype=torch.int16))  # any integer dtype
    torch.testing.assert_close(logits, model(torch.tensor([[1, 2]]))[0])
    with pytest.raises(ValueError, match="ids must be integer indices"):
        text_chunks(torch.tensor([1 + 1j] * 40), batch_size=2, seq_len=3)


def test_dropout_acts_in_training_mode_only():
    torch.manual_seed(0)
    model = CharLSTM(10, embed_dim=4, hidden_size=8, num_layers=2, dropout=0.5)
    ids = torch.randint(0, 10, (3, 7))
    assert not torch.equal(model(ids)[0], model(ids)[0])  # fresh masks each call
    model.eval()
    assert torch.equal(model(ids)[0], model(ids)[0])
    plain = CharLSTM(10, embed_dim=4, hidden_size=8, num_layers=2)
    plain.load_state_dict(model.state_dict())
    plain.eval()
    torch.testing.assert_close(plain(ids)[0], model(ids)[0], rtol=0, atol=0)


def test_vanishing_gradient_in_a_plain_rnn():
    # with small recurrent weights, the gradient of the last state with respect to
    # earlier inputs shrinks geometrically with the distance
    torch.manual_seed(0)
    cell = RNNCell(3, 16)
    with torch.no_grad():
        cell.weight_hh.mul_(0.5)
    xs = torch.randn(30, 1, 3, requires_grad=True)
    h = None
    for x in xs:
        h = cell(x, h)
    (grad,) = torch.autograd.grad(h.sum(), xs)
    norms = grad.flatten(1).norm(dim=1)  # (30,): distance 29 down to 0
    assert norms[-1] > 1e3 * norms[0]


# -- generation -----------------------------------------------------------------------


def trained_on(text, steps=300):
    torch.manual_seed(0)
    vocab = CharVocab(text)
    model = CharLSTM(len(vocab), embed_dim=8, hidden_size=32, num_layers=1)
    ids = vocab.encode(text * 4)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        logits, _ = model(ids[None, :-1])
        loss = nn.functional.cross_entropy(logits[0], ids[1:])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model, vocab, loss.item()


def test_generation_is_seeded_and_learns_a_pattern():
    text = "abcabdabcabd "
    model, vocab, loss = trained_on(text)
    assert loss < 0.3  # the pattern is learned (log 6 = 1.8 for a uniform guess)
    one = generate(model, vocab, "ab", 30, generator=torch.Generator().manual_seed(0))
    two = generate(model, vocab, "ab", 30, generator=torch.Generator().manual_seed(0))
    assert one == two and one.startswith("ab") and len(one) == 32
    greedy = generate(model, vocab, "abcab", 8, top_k=1)
    assert greedy == "abcab" + (text * 2)[5:13]
    assert model.training  # mode restored


def test_generate_at_a_tiny_temperature_is_greedy():
    model, vocab, _ = trained_on("abcabdabcabd ", steps=100)
    greedy = generate(model, vocab, "ab", 12, top_k=1)
    for temperature in (1e-3, 1e-300):  # logits / 1e-300 overflowed to inf, softmax to NaN
        rng = torch.Generator().manual_seed(0)
        assert generate(model, vocab, "ab", 12, temperature=temperature, generator=rng) == greedy


def test_temperature_and_top_k_limits():
    model, vocab, _ = trained_on("abcabdabcabd ", steps=100)
    rng = torch.Generator().manual_seed(0)
    hot = generate(model, vocab, "a", 400, temperature=50.0, generator=rng)[1:]
    assert len(set(hot)) == len(vocab)  # near-uniform: every character appears
    for bad in (0, -1.0):
        with pytest.raises(ValueError, match="temperature must be a number > 0"):
            generate(model, vocab, "a", 5, temperature=bad)
    with pytest.raises(ValueError, match="prompt must be a non-empty string"):
        generate(model, vocab, "", 5)
    with pytest.raises(ValueError, match="top_k must be None or an int from 1 to 5"):
        generate(model, vocab, "a", 5, top_k=6)
    with pytest.raises(ValueError, match="character 'z'"):
        generate(model, vocab, "z", 5)


def old_generate(model, vocab, prompt, length, temperature=1.0, top_k=None, generator=None):
    """generate as it was before the decoding module: the reference its defaults keep."""
    model.eval()
    logits, state = model(vocab.encode(prompt)[None])
    out = []
    for _ in range(length):
        last = logits[0, -1].double()
        if top_k is not None:
            last = last.masked_fill(last < last.topk(top_k).values[-1], -math.inf)
        probs = nn.functional.softmax((last - last.max()) / temperature, dim=0)
        next_id = torch.multinomial(probs, 1, generator=generator)
        out.append(next_id.item())
        logits, state = model(next_id[None], state)
    model.train()
    return prompt + vocab.decode(out)


@pytest.mark.parametrize(("temperature", "top_k"), [(1.0, None), (0.5, None), (1.5, 3), (1.0, 1)])
def test_generate_draws_exactly_what_it_drew_before_the_decoding_options(temperature, top_k):
    model, vocab, _ = trained_on("abcabdabcabd ", steps=30)
    new = generate(model, vocab, "ab", 60, temperature, top_k, torch.Generator().manual_seed(3))
    old = old_generate(model, vocab, "ab", 60, temperature, top_k, torch.Generator().manual_seed(3))
    assert new == old
    # top_p = 1 keeps the whole distribution: the same draws again
    same = generate(
        model, vocab, "ab", 60, temperature, top_k, torch.Generator().manual_seed(3), top_p=1.0
    )
    assert same == old


def test_greedy_and_a_tiny_nucleus_take_the_argmax():
    model, vocab, _ = trained_on("abcabdabcabd ", steps=30)
    greedy = generate(model, vocab, "ab", 20, greedy=True)
    # the argmax by hand, one step at a time
    text = "ab"
    model.eval()
    for _ in range(20):
        logits, _ = model(vocab.encode(text)[None])
        text += vocab.chars[int(logits[0, -1].argmax())]
    model.train()
    assert greedy == text and model.training
    assert generate(model, vocab, "ab", 20, top_k=1) == greedy
    rng = torch.Generator().manual_seed(0)
    assert generate(model, vocab, "ab", 20, top_p=1e-6, generator=rng) == greedy


def test_nucleus_sampling_draws_from_the_smallest_set_that_reaches_top_p():
    model, vocab, _ = trained_on("abcabdabcabd ", steps=30)
    for top_p in (0.3, 0.7, 0.95):
        got = generate(model, vocab, "ab", 40, 1.3, None, torch.Generator().manual_seed(5),
                       top_p=top_p)  # fmt: skip
        # the reference: walk down the sorted probabilities until their mass reaches top_p
        model.eval()
        rng, text = torch.Generator().manual_seed(5), "ab"
        logits, state = model(vocab.encode(text)[None])
        for _ in range(40):
            last = logits[0, -1].double()
            probs = nn.functional.softmax((last - last.max()) / 1.3, dim=0)
            keep, mass = torch.zeros(len(probs), dtype=torch.bool), 0.0
            for c in probs.argsort(descending=True).tolist():
                keep[c], mass = True, mass + probs[c].item()
                if mass >= top_p:
                    break
            kept = probs.masked_fill(~keep, 0.0)
            next_id = torch.multinomial(kept / kept.sum(), 1, generator=rng)
            text += vocab.chars[next_id.item()]
            logits, state = model(next_id[None], state)
        model.train()
        assert got == text


def test_decoding_options_are_checked_by_name():
    model, vocab, _ = trained_on("abcab", steps=1)
    for bad in (0, 1.5, math.nan, "0.9"):
        with pytest.raises((ValueError, TypeError), match="top_p"):
            generate(model, vocab, "a", 5, top_p=bad)
    with pytest.raises(ValueError, match="greedy=True takes the argmax"):
        generate(model, vocab, "a", 5, temperature=0.5, greedy=True)
    with pytest.raises(TypeError, match="greedy must be True or False"):
        generate(model, vocab, "a", 5, greedy=1)
    assert model.training


# -- training with truncated backpropagation through time -----------------------------


def test_text_chunks_are_consecutive_streams():
    ids = torch.arange(103)
    chunks = text_chunks(ids, batch_size=4, seq_len=5)  # streams of 25: chunks at 0, 5, 10, 15
    assert chunks.shape == (4, 4, 6)
    assert chunks[0, 1].tolist() == [25, 26, 27, 28, 29, 30]
    assert chunks[1, 1].tolist() == [30, 31, 32, 33, 34, 35]  # continues the row above
    assert (chunks[1:, :, 0] == chunks[:-1, :, -1]).all()
    with pytest.raises(ValueError, match="too few"):
        text_chunks(torch.arange(10), batch_size=4, seq_len=5)


def test_fit_with_tbptt_learns_a_text_in_order():
    torch.manual_seed(0)
    text = "the quick brown fox jumps over the lazy dog. " * 40
    vocab = CharVocab(text)
    chunks = text_chunks(vocab.encode(text), batch_size=4, seq_len=20)
    model = CharLSTM(len(vocab), embed_dim=8, hidden_size=48, num_layers=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    seen = []
    step = tbptt_step(model, optimizer)

    def recording_step(chunk, position):
        seen.append(position.item())
        return step(chunk, position)

    history = fit(
        model,
        optimizer,
        (chunks, torch.arange(len(chunks))),
        step=recording_step,
        epochs=8,
        batch_size=1,
        shuffle=False,
    )
    assert seen == list(range(len(chunks))) * 8  # in order, every epoch
    bits = history.epochs["bits per char"]
    assert bits[-1] < 0.5 < bits[0]  # a repeated sentence becomes nearly certain
    assert history.epochs["loss"][-1] == pytest.approx(bits[-1] * math.log(2))


@pytest.mark.parametrize("clip", [math.nan, math.inf, 0.0, -1.0, True, "1"])
def test_tbptt_step_refuses_a_clip_that_is_not_a_positive_number(clip):
    # clip = nan made every weight NaN after the first step
    model = CharLSTM(5, embed_dim=4, hidden_size=8, num_layers=1)
    with pytest.raises(ValueError, match="clip must be a finite number > 0, or None"):
        tbptt_step(model, torch.optim.SGD(model.parameters(), lr=0.1), clip=clip)


@pytest.mark.parametrize("clip", [0.01, 1e9, None])
def test_tbptt_step_clips_the_gradient_norm_to_clip(clip):
    torch.manual_seed(0)
    chunk = text_chunks(torch.randint(0, 5, (60,)), batch_size=2, seq_len=9)[:1]  # (1, 2, 10)
    model = CharLSTM(5, embed_dim=4, hidden_size=8, num_layers=1)
    start = [p.detach().clone() for p in model.parameters()]
    # the reference: the gradient by hand, scaled to norm clip if longer (None: not scaled)
    logits, _ = model(chunk[0, :, :-1])
    loss = nn.functional.cross_entropy(logits.reshape(-1, 5), chunk[0, :, 1:].reshape(-1))
    grads = torch.autograd.grad(loss, list(model.parameters()))
    norm = torch.cat([g.flatten() for g in grads]).norm()
    scale = 1.0 if clip is None else min(1.0, clip / (norm.item() + 1e-6))
    step = tbptt_step(model, torch.optim.SGD(model.parameters(), lr=0.1), clip=clip)
    step(chunk, torch.tensor([0]))
    for p, p0, g in zip(model.parameters(), start, grads, strict=True):
        torch.testing.assert_close(p.detach(), p0 - 0.1 * scale * g)


def test_tbptt_carries_the_state_and_restarts_it_at_position_zero():
    torch.manual_seed(0)
    chunks = text_chunks(torch.randint(0, 5, (200,)), batch_size=2, seq_len=9)  # (S, 2, 10)
    model = CharLSTM(5, embed_dim=4, hidden_size=8, num_layers=1)
    step = tbptt_step(model, torch.optim.SGD(model.parameters(), lr=0.0))  # weights fixed
    losses = [step(chunks[s][None], torch.tensor([s]))["loss"].item() for s in (0, 1, 0, 1)]
    with torch.no_grad():
        logits, _ = model(chunks[1][:, :-1])  # chunk 1 from a zero state
    from_zeros = torch.nn.functional.cross_entropy(
        logits.reshape(-1, 5), chunks[1][:, 1:].reshape(-1)
    )
    assert losses[2] == losses[0] and losses[3] == losses[1]  # position 0 starts afresh
    assert abs(losses[1] - from_zeros.item()) > 1e-4  # chunk 1 saw chunk 0's state

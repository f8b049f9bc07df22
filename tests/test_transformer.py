"""The character GPT: its block against PyTorch's, causality, generation with and without the
key-value cache, windows and held-out bits per token, and the errors it names."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from genai_course.bpe import bits_per_char_from_tokens, train_bpe
from genai_course.markov import CharVocab
from genai_course.transformer import (
    POSITIONS,
    Block,
    CharGPT,
    KVCache,
    attention_maps,
    bits_per_token,
    generate,
    generate_ids,
    text_bits_per_char,
    text_windows,
    window_loss,
)


def small_gpt(position="learned", context=12, layers=2, dtype=torch.float64) -> CharGPT:
    torch.manual_seed(0)
    return CharGPT(11, context, 16, layers, 4, 0.0, position).to(dtype).eval()


def test_a_block_equals_torchs_pre_norm_encoder_layer_with_a_causal_mask():
    torch.manual_seed(0)
    dim, heads, T = 16, 4, 7
    block = Block(dim, heads, 0.0, rotary=False).double().eval()
    for p in block.parameters():  # random biases and norms too, not only their defaults
        nn.init.normal_(p, std=0.3)
    layer = nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout=0.0, activation="gelu",
                                       batch_first=True, norm_first=True)  # fmt: skip
    layer = layer.double().eval()
    with torch.no_grad():
        layer.self_attn.in_proj_weight.copy_(block.attn.qkv.weight)
        layer.self_attn.in_proj_bias.copy_(block.attn.qkv.bias)
        layer.self_attn.out_proj.weight.copy_(block.attn.proj.weight)
        layer.self_attn.out_proj.bias.copy_(block.attn.proj.bias)
        for ours, theirs in ((block.mlp[0], layer.linear1), (block.mlp[2], layer.linear2),
                             (block.norm1, layer.norm1), (block.norm2, layer.norm2)):  # fmt: skip
            theirs.weight.copy_(ours.weight)
            theirs.bias.copy_(ours.bias)
    x = torch.randn(3, T, dim, dtype=torch.float64)
    mask = nn.Transformer.generate_square_subsequent_mask(T, dtype=torch.float64)
    expected = layer(x, src_mask=mask, is_causal=True)
    got = block(x, torch.arange(T), 0, None)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-10)


@pytest.mark.parametrize("position", POSITIONS)
def test_no_position_sees_the_future(position):
    model = small_gpt(position)
    ids = torch.randint(11, (2, 12))
    changed = ids.clone()
    changed[:, 8:] = (ids[:, 8:] + 1) % 11
    torch.testing.assert_close(model(ids)[:, :8], model(changed)[:, :8], rtol=0, atol=1e-12)
    assert not torch.allclose(model(ids)[:, 8:], model(changed)[:, 8:])


def test_without_positions_one_block_sees_a_bag_of_tokens():
    """The last token of one block attends to all the tokens as a set (a second block would
    read states that causal attention made order-dependent)."""
    model = small_gpt("none", layers=1)
    ids = torch.randint(11, (1, 10))
    shuffled = torch.cat([ids[:, :-1][:, torch.randperm(9)], ids[:, -1:]], dim=1)
    torch.testing.assert_close(model(ids)[:, -1], model(shuffled)[:, -1], rtol=0, atol=1e-10)
    learned = small_gpt("learned", layers=1)
    assert not torch.allclose(learned(ids)[:, -1], learned(shuffled)[:, -1])


@pytest.mark.parametrize("position", POSITIONS)
def test_attention_maps_are_the_weights_the_blocks_use(position):
    """Each map, times the block's values and through its projection, gives the block's own
    attention output: the maps are what the fused kernel computed."""
    model = small_gpt(position)
    ids = torch.randint(11, (9,))
    maps = attention_maps(model, ids)
    assert len(maps) == 2 and maps[0].shape == (4, 9, 9)
    torch.testing.assert_close(maps[1].sum(-1), torch.ones(4, 9, dtype=torch.float64))
    assert (maps[1].triu(1) == 0).all()  # nothing from the future
    positions = torch.arange(9)
    block = model.blocks[0]
    x = block.norm1(model.embed(ids[None], positions))
    _, _, v = block.attn.queries_keys_values(x, positions)
    by_hand = block.attn.proj((maps[0][None] @ v).transpose(1, 2).reshape(1, 9, 16))
    torch.testing.assert_close(by_hand, block.attn(x, positions, 0, None), rtol=0, atol=1e-12)


def test_the_output_layer_is_the_token_embedding():
    model = small_gpt()
    assert model.head.weight is model.tokens.weight


@pytest.mark.parametrize("position", POSITIONS)
def test_cached_logits_equal_the_whole_windows(position):
    model = small_gpt(position)
    ids = torch.randint(11, (2, 12))
    cache = KVCache()
    pieces = [model(ids[:, :5], cache), model(ids[:, 5:6], cache), model(ids[:, 6:], cache)]
    assert cache.length == 12
    torch.testing.assert_close(torch.cat(pieces, dim=1), model(ids), rtol=0, atol=1e-10)


@pytest.mark.parametrize("position", POSITIONS)
def test_generation_with_the_cache_gives_the_same_tokens(position):
    model = small_gpt(position)
    prompt = torch.randint(11, (4,))
    runs = [generate_ids(model, prompt, 25, use_cache=use_cache, top_k=6,
                         generator=torch.Generator().manual_seed(3))
            for use_cache in (True, False)]  # fmt: skip  # 25 tokens: past the context of 12
    assert torch.equal(runs[0], runs[1]) and len(runs[0]) == 29
    assert torch.equal(runs[0][:4], prompt)


def test_generate_decodes_text_through_the_vocabulary():
    from genai_course.markov import CharVocab

    vocab = CharVocab("abcdefghij ")
    model = small_gpt()
    text = generate(model, vocab, "abc", 9, greedy=True)
    assert text.startswith("abc") and len(text) == 12 and set(text) <= set("abcdefghij ")


def test_windows_make_every_token_but_the_first_a_target_once():
    ids = torch.arange(23)
    windows = text_windows(ids, 5)
    assert windows.shape == (4, 6)
    targets = windows[:, 1:].flatten()
    assert torch.equal(targets, torch.arange(1, 21))


def test_bits_per_token_scores_every_token_once():
    """With attention and MLP silenced (and no positions), each logit depends on the current
    token only: the held-out bits are a bigram model's, whatever the windows."""
    model = small_gpt("none")
    with torch.no_grad():
        for block in model.blocks:
            for layer in (block.attn.proj, block.mlp[2]):
                layer.weight.zero_()
                layer.bias.zero_()
    ids = torch.randint(11, (57,))
    logits = model(ids[:-1, None])[:, 0]  # each token read alone
    expected = F.cross_entropy(logits, ids[1:]).item() / math.log(2)
    for stride in (1, 5, 12):
        assert bits_per_token(model, ids, stride=stride) == pytest.approx(expected, abs=1e-12)


TEXT = "the cat sat on the mat; the rat ate the hat. " * 6


def test_bits_per_char_are_bits_per_token_for_characters():
    vocab = CharVocab(TEXT)
    torch.manual_seed(0)
    model = CharGPT(len(vocab), 12, 16, 1, 4).to(torch.float64).eval()
    expected = bits_per_token(model, vocab.encode(TEXT))
    assert text_bits_per_char(model, vocab, TEXT) == pytest.approx(expected, rel=1e-12)


def test_bits_per_char_of_tokens_count_the_characters_they_spell():
    bpe = train_bpe(TEXT, 20)
    ids = bpe.encode(TEXT)
    assert len(ids) < len(TEXT) / 2  # tokens of several characters
    torch.manual_seed(0)
    model = CharGPT(len(bpe), 12, 16, 1, 4).to(torch.float64).eval()
    nats = bits_per_token(model, ids) * math.log(2)  # per scored token: all but the first
    spelled = len(TEXT) - len(bpe.decode(ids[:1]))
    expected = bits_per_char_from_tokens(nats, len(ids) - 1, spelled)
    assert text_bits_per_char(model, bpe, TEXT) == pytest.approx(expected, rel=1e-12)
    with pytest.raises(TypeError, match="text must be a string"):
        text_bits_per_char(model, bpe, ids)
    with pytest.raises(TypeError, match="tokenizer must have encode and decode"):
        text_bits_per_char(model, "abc", TEXT)


def test_training_lowers_the_loss_on_a_repeated_text():
    torch.manual_seed(0)
    model = CharGPT(5, 8, 16, 1, 2)
    windows = text_windows(torch.tensor([0, 1, 2, 3, 4] * 40), 8)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):
        loss = window_loss(model, windows).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dim": 18}, r"dim \(18\) must be a multiple of num_heads \(4\)"),
        ({"dim": 12, "position": "rotary"}, "dim / num_heads must be even"),
        ({"position": "absolute"}, "position must be one of 'learned'"),
        ({"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
        ({"context": 0}, "context must be a positive int, got 0"),
    ],
)
def test_bad_sizes_are_named(kwargs, message):
    sizes = {"vocab_size": 11, "context": 8, "dim": 16, "num_layers": 1, "num_heads": 4}
    with pytest.raises(ValueError, match=message):
        CharGPT(**{**sizes, **kwargs})


def test_bad_inputs_are_named():
    model = small_gpt()
    with pytest.raises(TypeError, match="ids must be an int64 tensor"):
        model(torch.zeros(1, 3))
    with pytest.raises(ValueError, match=r"ids must have shape \(B, T\)"):
        model(torch.zeros(3, dtype=torch.int64))
    with pytest.raises(ValueError, match="at most context = 12 tokens; got 13 after 0"):
        model(torch.zeros(1, 13, dtype=torch.int64))
    cache = KVCache()
    model(torch.zeros(1, 10, dtype=torch.int64), cache)
    with pytest.raises(ValueError, match="got 3 after 10 cached"):
        model(torch.zeros(1, 3, dtype=torch.int64), cache)
    with pytest.raises(ValueError, match="stride must be at most the context"):
        bits_per_token(model, torch.zeros(40, dtype=torch.int64), stride=13)
    with pytest.raises(ValueError, match="prompt must be a non-empty 1-D tensor"):
        generate_ids(model, torch.zeros(0, dtype=torch.int64), 3)
    with pytest.raises(ValueError, match="top_k"):
        generate_ids(model, torch.zeros(2, dtype=torch.int64), 3, top_k=0)

r"""A decoder-only transformer: a character GPT, with a key-value cache for generation.

The model reads a window of at most ``context`` tokens and predicts each next one,
:math:`p(c_{t+1} \mid c_{\le t})`, as the LSTM does, but with attention instead of a state
carried from step to step. A block is pre-norm (the layer norm before each sub-layer, which
trains deep stacks without warm-up, Xiong et al. 2020):

.. math:: h \leftarrow h + \mathrm{Attn}(\mathrm{LN}(h)), \qquad
          h \leftarrow h + \mathrm{MLP}(\mathrm{LN}(h)),

the MLP four times as wide as the model with a GELU between, and the output layer shares its
weights with the token embedding (weight tying, Press & Wolf 2017), as in GPT-2.

Attention runs on PyTorch's fused ``scaled_dot_product_attention``: the chapter writes it by hand
in :mod:`genai_course.attention` and checks it against this kernel. Positions enter in one of four
ways (``POSITIONS``): a learned vector per position added to the token's (GPT-2), the fixed
sinusoids of Vaswani et al. (2017) added the same way, rotary embeddings that turn queries and
keys by an angle proportional to their position (Su et al. 2021), or none at all, which leaves
attention blind to order.

A :class:`KVCache` keeps each layer's keys and values of the tokens read so far, so that
generating one more token computes one new row instead of the whole window again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from genai_course.attention import (
    apply_rotary,
    attention_weights,
    causal_mask,
    sinusoidal_positions,
)
from genai_course.config import check_positive_int
from genai_course.decoding import check_decoding, next_token_probs, sample_tokens

POSITIONS = ("learned", "sinusoidal", "rotary", "none")


@dataclass
class KVCache:
    """Each layer's keys and values, (B, heads, P, head_dim), of the P tokens read so far."""

    keys: list[torch.Tensor] = field(default_factory=list)
    values: list[torch.Tensor] = field(default_factory=list)

    @property
    def length(self) -> int:
        return self.keys[0].shape[2] if self.keys else 0


class SelfAttention(nn.Module):
    """Causal multi-head self-attention on torch's fused kernel; with a cache, the new tokens
    attend to the cached ones and to themselves (causally)."""

    def __init__(self, dim: int, num_heads: int, dropout: float, rotary: bool):
        super().__init__()
        self.num_heads, self.dropout, self.rotary = num_heads, dropout, rotary
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def queries_keys_values(self, x: torch.Tensor, positions: torch.Tensor):
        """The heads' queries, keys and values of ``x`` (B, T, D), each (B, heads, T, D / heads),
        the queries and keys turned by their ``positions`` if the model is rotary."""
        B, T, D = x.shape
        q, k, v = (t.view(B, T, self.num_heads, -1).transpose(1, 2)
                   for t in self.qkv(x).split(D, dim=-1))  # fmt: skip
        if self.rotary:
            q, k = apply_rotary(q, positions), apply_rotary(k, positions)
        return q, k, v

    def forward(self, x: torch.Tensor, positions: torch.Tensor, layer: int,
                cache: KVCache | None) -> torch.Tensor:  # fmt: skip
        B, T, D = x.shape
        q, k, v = self.queries_keys_values(x, positions)
        if cache is not None:
            if layer < len(cache.keys):
                k = torch.cat([cache.keys[layer], k], dim=2)
                v = torch.cat([cache.values[layer], v], dim=2)
                cache.keys[layer], cache.values[layer] = k, v
            else:
                cache.keys.append(k)
                cache.values.append(v)
        past = k.shape[2] - T
        dropout = self.dropout if self.training else 0.0
        if past == 0:
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True)
        else:  # new token i (at position past + i) sees the keys at positions <= past + i
            seen = torch.arange(past + T, device=x.device)[None] <= past + torch.arange(
                T, device=x.device)[:, None]  # fmt: skip
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=seen, dropout_p=dropout)
        return self.proj(out.transpose(1, 2).reshape(B, T, D))


class Block(nn.Module):
    """One pre-norm transformer block: attention, then a 4x-wide GELU MLP, each residual."""

    def __init__(self, dim: int, num_heads: int, dropout: float, rotary: bool):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, num_heads, dropout, rotary)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, h, positions, layer, cache):
        h = h + self.drop(self.attn(self.norm1(h), positions, layer, cache))
        return h + self.drop(self.mlp(self.norm2(h)))


def _check_sizes(vocab_size, context, dim, num_layers, num_heads, dropout, position) -> None:
    for name, value in (("vocab_size", vocab_size), ("context", context), ("dim", dim),
                        ("num_layers", num_layers), ("num_heads", num_heads)):  # fmt: skip
        check_positive_int(name, value)
    if dim % num_heads:
        raise ValueError(f"dim ({dim}) must be a multiple of num_heads ({num_heads})")
    if position == "rotary" and (dim // num_heads) % 2:
        raise ValueError(f"rotary positions turn pairs of coordinates: dim / num_heads must be "
                         f"even, got {dim} / {num_heads}")  # fmt: skip
    if isinstance(dropout, bool) or not isinstance(dropout, int | float) or not 0 <= dropout < 1:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
    if position not in POSITIONS:
        raise ValueError(f"position must be one of {', '.join(map(repr, POSITIONS))}, "
                         f"got {position!r}")  # fmt: skip


class CharGPT(nn.Module):
    """A decoder-only transformer over ``vocab_size`` tokens: ``forward(ids)`` (B, T) with
    T <= ``context`` gives the logits of each next token, (B, T, vocab_size)."""

    def __init__(self, vocab_size: int, context: int, dim: int, num_layers: int, num_heads: int,
                 dropout: float = 0.0, position: str = "learned"):  # fmt: skip
        super().__init__()
        _check_sizes(vocab_size, context, dim, num_layers, num_heads, dropout, position)
        self.vocab_size, self.context, self.position = vocab_size, context, position
        self.tokens = nn.Embedding(vocab_size, dim)
        if position == "learned":
            self.positions = nn.Embedding(context, dim)
        elif position == "sinusoidal":
            self.register_buffer("table", sinusoidal_positions(context, dim), persistent=False)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(dim, num_heads, dropout, position == "rotary")
                                    for _ in range(num_layers))  # fmt: skip
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab_size, bias=False)
        self.head.weight = self.tokens.weight  # tied: one matrix reads and writes tokens
        self._init_weights(num_layers)

    def _init_weights(self, num_layers: int) -> None:
        """GPT-2's: N(0, 0.02) weights, zero biases, and the projections that write into the
        residual stream scaled by 1/sqrt(2 num_layers), so its variance does not grow with
        depth."""
        for module in self.modules():
            if isinstance(module, nn.Linear | nn.Embedding):
                nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
        for block in self.blocks:
            for residual in (block.attn.proj, block.mlp[2]):
                nn.init.normal_(residual.weight, std=0.02 / math.sqrt(2 * num_layers))

    def embed(self, ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """The tokens' vectors (B, T, dim), with their positions' added where they are. The
        sinusoids have entries of size 1 and the token vectors of about 0.02 (GPT-2's
        initialisation): for those, the token vectors are multiplied by sqrt(dim) first."""
        h = self.tokens(ids)
        if self.position == "learned":
            h = h + self.positions(positions)
        elif self.position == "sinusoidal":  # the tokens scaled up to the sinusoids' size, as
            h = h * math.sqrt(h.shape[-1]) + self.table[positions]  # Vaswani et al. do
        return h

    def forward(self, ids: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """Logits (B, T, vocab_size) of the token after each of ``ids`` (B, T). With ``cache``,
        ``ids`` follow the tokens it holds (at positions ``cache.length`` onwards), and their
        keys and values are added to it."""
        if not isinstance(ids, torch.Tensor) or ids.dtype != torch.int64:
            got = ids.dtype if isinstance(ids, torch.Tensor) else type(ids).__name__
            raise TypeError(f"ids must be an int64 tensor of token indices (B, T), got {got}")
        if ids.ndim != 2 or ids.shape[1] == 0:
            raise ValueError(f"ids must have shape (B, T) with T >= 1, got {tuple(ids.shape)}")
        start = 0 if cache is None else cache.length
        if start + ids.shape[1] > self.context:
            raise ValueError(f"the model reads at most context = {self.context} tokens; got "
                             f"{ids.shape[1]} after {start} cached")  # fmt: skip
        positions = torch.arange(start, start + ids.shape[1], device=ids.device)
        h = self.drop(self.embed(ids, positions))
        for layer, block in enumerate(self.blocks):
            h = block(h, positions, layer, cache)
        return self.head(self.norm(h))


@torch.no_grad()
def attention_maps(model: CharGPT, ids: torch.Tensor) -> list[torch.Tensor]:
    """What each head of each block looks at when the model reads ``ids`` (T,): one (heads,
    T, T) tensor of attention weights per block (row t: how token t spreads its attention over
    tokens 0..t), recomputed by hand (:func:`genai_course.attention.attention_weights`) from
    the block's own queries and keys, in eval mode."""
    if not isinstance(model, CharGPT):
        raise TypeError(f"model must be a CharGPT, got {type(model).__name__}")
    if not isinstance(ids, torch.Tensor) or ids.ndim != 1 or not 0 < len(ids) <= model.context:
        raise ValueError(f"ids must be a 1-D tensor of 1 to context = {model.context} tokens")
    was_training = model.training
    model.eval()
    positions = torch.arange(len(ids), device=ids.device)
    h = model.embed(ids[None], positions)
    maps = []
    for layer, block in enumerate(model.blocks):
        q, k, _ = block.attn.queries_keys_values(block.norm1(h), positions)
        maps.append(attention_weights(q, k, causal_mask(len(ids), device=ids.device))[0])
        h = block(h, positions, layer, None)
    model.train(was_training)
    return maps


# -- training and evaluation -------------------------------------------------------------------


def text_windows(ids: torch.Tensor, context: int) -> torch.Tensor:
    """The text ``ids`` (N,) as windows of ``context + 1`` tokens, each starting where the last
    one's inputs end, (W, context + 1): every token but the first is a target exactly once."""
    check_positive_int("context", context)
    if not isinstance(ids, torch.Tensor) or ids.ndim != 1 or len(ids) < context + 1:
        raise ValueError(f"ids must be a 1-D tensor of at least context + 1 = {context + 1} "
                         f"tokens")  # fmt: skip
    return ids.unfold(0, context + 1, context)


def token_nats(model: CharGPT, windows: torch.Tensor) -> torch.Tensor:
    """The nats of each of the last ``T`` tokens of ``windows`` (B, T + 1) given the ones
    before: (B, T)."""
    logits = model(windows[:, :-1])
    return F.cross_entropy(logits.transpose(1, 2), windows[:, 1:], reduction="none")


def window_loss(model: CharGPT, windows: torch.Tensor) -> torch.Tensor:
    """Each window's mean cross-entropy in nats per token, (B,): the loss ``fit`` averages."""
    return token_nats(model, windows).mean(dim=1)


@torch.no_grad()
def bits_per_token(model: CharGPT, ids: torch.Tensor, stride: int | None = None,
                   batch_size: int = 64) -> float:  # fmt: skip
    r"""Held-out bits per token of ``ids`` (N,), :math:`-\frac{1}{N-1}\sum_t \log_2
    p(c_{t+1} \mid \text{up to context tokens before})`, in eval mode. The model reads windows
    of ``context`` tokens ``stride`` apart (default half the context); each token is scored in
    the first window that holds it past the previous window's end, so that beyond the first
    window every token is predicted from at least ``context - stride`` tokens before it."""
    if not isinstance(model, CharGPT):
        raise TypeError(f"model must be a CharGPT, got {type(model).__name__}")
    C = model.context
    stride = max(C // 2, 1) if stride is None else stride
    check_positive_int("stride", stride)
    if stride > C:
        raise ValueError(f"stride must be at most the context ({C}), got {stride}")
    if not isinstance(ids, torch.Tensor) or ids.ndim != 1 or len(ids) < C + 1:
        raise ValueError(f"ids must be a 1-D tensor of at least context + 1 = {C + 1} tokens")
    last = len(ids) - 1 - C
    starts = torch.tensor([*range(0, last, stride), last], device=ids.device)
    previous_end = torch.cat([starts.new_zeros(1), starts[:-1] + C])  # its last target
    targets = starts[:, None] + 1 + torch.arange(C, device=ids.device)  # (K, C)
    counted = targets > previous_end[:, None]  # every target 1..N-1 exactly once
    was_training = model.training
    model.eval()
    total = 0.0
    for i in range(0, len(starts), batch_size):
        windows = ids[starts[i:i + batch_size, None] + torch.arange(C + 1, device=ids.device)]
        total += token_nats(model, windows)[counted[i:i + batch_size]].sum().item()
    model.train(was_training)
    return total / (len(ids) - 1) / math.log(2)


def text_bits_per_char(model: CharGPT, tokenizer, text: str, stride: int | None = None) -> float:
    """Held-out bits per *character* of ``text`` under a model of ``tokenizer``'s tokens (a
    :class:`~genai_course.markov.CharVocab` or a :class:`~genai_course.bpe.BPE`): the bits of
    every token but the first (:func:`bits_per_token`), over the characters those tokens
    spell. For characters it is the bits per token; for longer tokens it is what compares
    with them (:func:`~genai_course.bpe.bits_per_char_from_tokens`)."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a string, got {type(text).__name__}")
    if not (hasattr(tokenizer, "encode") and hasattr(tokenizer, "decode")):
        raise TypeError(f"tokenizer must have encode and decode (a CharVocab or a BPE), got "
                        f"{type(tokenizer).__name__}")  # fmt: skip
    ids = tokenizer.encode(text)
    scored_chars = len(text) - len(tokenizer.decode(ids[:1]))
    bits = bits_per_token(model, ids.to(model.head.weight.device), stride) * (len(ids) - 1)
    return bits / scored_chars


# -- generation --------------------------------------------------------------------------------


@torch.no_grad()
def generate_ids(model: CharGPT, prompt: torch.Tensor, length: int, *, use_cache: bool = True,
                 generator: torch.Generator | None = None, greedy: bool = False,
                 temperature: float = 1.0, top_k: int | None = None,
                 top_p: float | None = None) -> torch.Tensor:  # fmt: skip
    """``prompt`` (P,) followed by ``length`` sampled tokens, (P + length,), in eval mode, each
    from the last ``context`` tokens under the decoding rule (:mod:`genai_course.decoding`).

    With ``use_cache`` the keys and values of the tokens read are kept, so each new token costs
    one row of attention per layer, not the whole window. Beyond the context the window slides:
    positions change, so the cache is rebuilt from the window at every step and saves nothing
    there. Either way the tokens are the same (a test checks it)."""
    if not isinstance(model, CharGPT):
        raise TypeError(f"model must be a CharGPT, got {type(model).__name__}")
    if not isinstance(prompt, torch.Tensor) or prompt.ndim != 1 or len(prompt) == 0:
        raise ValueError("prompt must be a non-empty 1-D tensor of token indices")
    check_positive_int("length", length)
    options = {"greedy": greedy, "temperature": temperature, "top_k": top_k, "top_p": top_p}
    check_decoding(model.vocab_size, **options)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    ids = prompt.to(device)[None]  # (1, P)
    cache = KVCache() if use_cache else None
    logits = model(ids[:, -model.context:], cache)
    for _ in range(length):
        probs = next_token_probs(logits[0, -1].double(), **options).cpu()
        next_id = sample_tokens(probs[None], generator=generator).to(device)  # (1,)
        ids = torch.cat([ids, next_id[None]], dim=1)
        if cache is None or cache.length == model.context:  # no cache, or the window slides
            cache = None if cache is None else KVCache()
            logits = model(ids[:, -model.context:], cache)
        else:
            logits = model(next_id[None], cache)
    model.train(was_training)
    return ids[0]


def generate(model: CharGPT, vocab, prompt: str, length: int, **options) -> str:
    """``prompt`` followed by ``length`` sampled tokens, as text: ``vocab`` (a character
    vocabulary or a BPE) encodes the prompt and decodes the result; ``options`` as
    :func:`generate_ids`."""
    if not isinstance(prompt, str) or not prompt:
        raise ValueError("prompt must be a non-empty string: the model needs a first token")
    if len(vocab) != model.vocab_size:
        raise ValueError(f"vocab has {len(vocab)} tokens but the model {model.vocab_size}")
    ids = generate_ids(model, vocab.encode(prompt), length, **options)
    return vocab.decode(ids.tolist())

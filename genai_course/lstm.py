r"""Recurrent networks, written from their equations (the sequences chapter).

A recurrent cell reads a sequence one step at a time and carries a state.
The plain (Elman) cell has one state vector,

.. math:: h_t = \tanh(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh}),

and the LSTM (Hochreiter and Schmidhuber, 1997) adds a *cell* state
:math:`c_t` that is changed only by gated addition,

.. math::
   i_t &= \sigma(W_{ii} x_t + b_{ii} + W_{hi} h_{t-1} + b_{hi}) &&\text{input gate}\\
   f_t &= \sigma(W_{if} x_t + b_{if} + W_{hf} h_{t-1} + b_{hf}) &&\text{forget gate}\\
   g_t &= \tanh(W_{ig} x_t + b_{ig} + W_{hg} h_{t-1} + b_{hg}) &&\text{candidate}\\
   o_t &= \sigma(W_{io} x_t + b_{io} + W_{ho} h_{t-1} + b_{ho}) &&\text{output gate}\\
   c_t &= f_t \odot c_{t-1} + i_t \odot g_t, \qquad h_t = o_t \odot \tanh(c_t).

The four gates' weights are stacked in the order :math:`i, f, g, o` in one
matrix, with PyTorch's parameter names, so that :meth:`LSTM.copy_from` can
load a ``torch.nn.LSTM`` and the two can be compared number for number.
The chapter's model, :class:`CharLSTM`, is built on ``torch.nn.LSTM``
(cuDNN on a GPU) once the two have been shown equal.
"""

from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F
from torch import nn

from genai_course.config import check_positive_int
from genai_course.decoding import check_decoding, next_token_probs, sample_tokens
from genai_course.markov import CharVocab


def _check_tensor(t, name: str, like: torch.Tensor) -> None:
    """Raise ``TypeError`` naming ``name`` unless ``t`` is a tensor of the dtype and
    on the device of ``like`` (the weights it meets)."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype != like.dtype or t.device != like.device:
        raise TypeError(
            f"{name} must be a {like.dtype} tensor on {like.device}, like the weights; "
            f"got {t.dtype} on {t.device}"
        )


def _check_shape(t: torch.Tensor, name: str, shape: tuple[int, ...]) -> None:
    if tuple(t.shape) != shape:
        raise ValueError(f"{name} must have shape {shape}, got {tuple(t.shape)}")


def _check_state(state, shape: tuple[int, ...], like: torch.Tensor) -> None:
    """Raise ``TypeError``/``ValueError`` naming ``state`` unless it is a pair
    ``(h, c)`` of tensors of ``shape``, with the dtype and device of ``like``."""
    if not isinstance(state, tuple | list) or len(state) != 2:
        what = type(state).__name__
        if isinstance(state, tuple | list):
            what += f" of length {len(state)}"
        raise TypeError(f"state must be a pair (h, c) of tensors, or None; got a {what}")
    for name, part in zip(("state[0] (h)", "state[1] (c)"), state, strict=True):
        _check_tensor(part, name, like)
        _check_shape(part, name, shape)


def _check_integer_ids(ids, name: str = "ids") -> None:
    """Raise ``TypeError`` unless ``ids`` is a tensor, ``ValueError`` unless of integers."""
    if not isinstance(ids, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor of integer indices, got {type(ids).__name__}"
        )
    if ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
        raise ValueError(f"{name} must be integer indices, got a {ids.dtype} tensor")


def _uniform_init(module: nn.Module, hidden_size: int) -> None:
    """PyTorch's initialisation of recurrent layers: every weight and bias
    uniform on :math:`[-1/\\sqrt{H}, 1/\\sqrt{H}]`."""
    bound = 1 / math.sqrt(hidden_size)
    for p in module.parameters():
        nn.init.uniform_(p, -bound, bound)


class _Cell(nn.Module):
    """Weights ``weight_ih`` (G H, I), ``weight_hh`` (G H, H) and biases
    ``bias_ih``, ``bias_hh`` (G H,) for ``G`` stacked gates."""

    gates = 1

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        check_positive_int("input_size", input_size)
        check_positive_int("hidden_size", hidden_size)
        self.input_size, self.hidden_size = input_size, hidden_size
        rows = self.gates * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(rows, input_size))
        self.weight_hh = nn.Parameter(torch.empty(rows, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(rows))
        self.bias_hh = nn.Parameter(torch.empty(rows))
        _uniform_init(self, hidden_size)

    def _check_input(self, x) -> None:
        _check_tensor(x, "x", self.weight_ih)
        if x.ndim != 2 or x.shape[1] != self.input_size:
            raise ValueError(f"x must have shape (batch, {self.input_size}), got {tuple(x.shape)}")

    def _preactivation(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return x @ self.weight_ih.T + self.bias_ih + h @ self.weight_hh.T + self.bias_hh

    def _zeros(self, x: torch.Tensor) -> torch.Tensor:
        return x.new_zeros(len(x), self.hidden_size)


class RNNCell(_Cell):
    r"""The plain recurrent cell, :math:`h' = \tanh(W_{ih} x + b_{ih} + W_{hh} h + b_{hh})`:
    ``x`` (B, input_size) and ``h`` (B, hidden_size; zeros if None) to ``h'``."""

    def forward(self, x: torch.Tensor, h: torch.Tensor | None = None) -> torch.Tensor:
        self._check_input(x)
        if h is None:
            h = self._zeros(x)
        _check_tensor(h, "h", self.weight_hh)
        _check_shape(h, "h", (len(x), self.hidden_size))
        return torch.tanh(self._preactivation(x, h))


class LSTMCell(_Cell):
    """One LSTM step (the module's equations): ``x`` (B, input_size) and the
    state, a pair ``(h, c)`` of (B, hidden_size) tensors (zeros if None), to
    ``(h', c')``. One tensor is not a state: ``TypeError`` naming ``state``."""

    gates = 4

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        self._check_input(x)
        if state is None:
            state = (self._zeros(x), self._zeros(x))
        _check_state(state, (len(x), self.hidden_size), self.weight_hh)
        h, c = state
        i, f, g, o = self._preactivation(x, h).chunk(4, dim=1)  # (B, H) each
        i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
        c = f * c + i * g  # the cell state: forget some, add some
        h = o * torch.tanh(c)
        return h, c


class LSTM(nn.Module):
    """A stack of ``num_layers`` :class:`LSTMCell` run over a sequence, with
    the interface of ``torch.nn.LSTM``: input (B, T, input_size) if
    ``batch_first`` else (T, B, input_size), optional state ``(h0, c0)``
    (num_layers, B, hidden_size) each; returns the last layer's outputs
    (B, T, hidden_size) (or (T, B, ...)) and the final ``(h_n, c_n)``."""

    def __init__(
        self, input_size: int, hidden_size: int, num_layers: int = 1, batch_first: bool = True
    ):
        super().__init__()
        check_positive_int("num_layers", num_layers)
        self.hidden_size, self.num_layers, self.batch_first = hidden_size, num_layers, batch_first
        self.cells = nn.ModuleList(
            LSTMCell(input_size if layer == 0 else hidden_size, hidden_size)
            for layer in range(num_layers)
        )

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        _check_tensor(x, "x", self.cells[0].weight_ih)
        if x.ndim != 3:
            raise ValueError(f"x must be a batch of sequences (3-D), got shape {tuple(x.shape)}")
        steps = x.unbind(1 if self.batch_first else 0)  # T tensors of (B, input_size)
        if not steps:
            raise ValueError(f"x must have at least one time step, got shape {tuple(x.shape)}")
        if state is not None:
            shape = (self.num_layers, len(steps[0]), self.hidden_size)
            _check_state(state, shape, self.cells[0].weight_hh)
        h_n, c_n = [], []
        for layer, cell in enumerate(self.cells):
            layer_state = None if state is None else (state[0][layer], state[1][layer])
            outputs = []
            for x_t in steps:
                layer_state = cell(x_t, layer_state)
                outputs.append(layer_state[0])
            steps = outputs  # this layer's outputs are the next layer's inputs
            h_n.append(layer_state[0])
            c_n.append(layer_state[1])
        output = torch.stack(steps, dim=1 if self.batch_first else 0)
        return output, (torch.stack(h_n), torch.stack(c_n))

    @torch.no_grad()
    def copy_from(self, lstm: nn.LSTM) -> LSTM:
        """Load the weights of a ``torch.nn.LSTM`` of the same sizes (its
        ``weight_ih_l{k}`` and friends become layer ``k``'s cell weights)."""
        if not isinstance(lstm, nn.LSTM):
            raise TypeError(f"lstm must be a torch.nn.LSTM, got {type(lstm).__name__}")
        ours = (self.cells[0].input_size, self.hidden_size, self.num_layers)
        theirs = (lstm.input_size, lstm.hidden_size, lstm.num_layers)
        if ours != theirs or lstm.bidirectional or lstm.proj_size or not lstm.bias:
            raise ValueError(
                f"sizes (input, hidden, layers) differ: {ours} here, {theirs} in lstm "
                "(which must also be unidirectional, with biases and no projection)"
            )
        for k, cell in enumerate(self.cells):
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(cell, name).copy_(getattr(lstm, f"{name}_l{k}"))
        return self


class CharLSTM(nn.Module):
    """The chapter's character model: an embedding of each character
    (``embed_dim``), a ``torch.nn.LSTM`` (``hidden_size``, ``num_layers``) and
    a linear layer to the logits of the next character. ``forward(ids, state)``
    takes indices (B, T) and returns logits (B, T, vocab_size) and the state.
    ``dropout`` zeroes that fraction of the LSTM's outputs, between layers and
    before the linear layer, in training mode only (a regulariser for large
    models on a small corpus)."""

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int = 32,
        hidden_size: int = 256,
        num_layers: int = 2,
        dropout: float = 0.0,
    ):
        super().__init__()
        if not isinstance(dropout, int | float) or not 0 <= dropout < 1:
            raise ValueError(f"dropout must be a number in [0, 1), got {dropout!r}")
        for name, value in (
            ("vocab_size", vocab_size),
            ("embed_dim", embed_dim),
            ("hidden_size", hidden_size),
            ("num_layers", num_layers),
        ):
            check_positive_int(name, value)
        self.vocab_size = vocab_size
        self.embed = nn.Embedding(vocab_size, embed_dim)
        self.lstm = nn.LSTM(embed_dim, hidden_size, num_layers, batch_first=True, dropout=dropout)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, vocab_size)

    def forward(
        self, ids: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        _check_integer_ids(ids)
        if ids.ndim != 2 or ids.shape[1] == 0:
            raise ValueError(f"ids must be integer indices of shape (B, T), got {tuple(ids.shape)}")
        # in range: checked on the CPU, where it costs a pass over B x T integers; on a GPU
        # it would wait for the device at every step (an id out of range there trips the
        # embedding's device-side assertion instead)
        on_cpu = ids.device.type == "cpu"
        if on_cpu and ids.numel() and (ids.min() < 0 or ids.max() >= self.vocab_size):
            raise ValueError(
                f"ids must be in 0..{self.vocab_size - 1}, got values from {ids.min().item()} "
                f"to {ids.max().item()}"
            )
        if state is not None:
            shape = (self.lstm.num_layers, len(ids), self.lstm.hidden_size)
            _check_state(state, shape, self.lstm.weight_hh_l0)
        output, state = self.lstm(self.embed(ids.long()), state)  # (B, T, hidden)
        return self.head(self.drop(output)), state


def text_chunks(ids: torch.Tensor, batch_size: int, seq_len: int) -> torch.Tensor:
    """Cut a long sequence of indices into ``batch_size`` parallel streams of
    equal length (the remainder is dropped), and each stream into chunks of
    ``seq_len + 1`` indices that overlap by one (inputs and next-character
    targets): (num_chunks, batch_size, seq_len + 1). Row ``b`` of chunk ``s``
    continues row ``b`` of chunk ``s - 1``."""
    check_positive_int("batch_size", batch_size)
    check_positive_int("seq_len", seq_len)
    _check_integer_ids(ids)
    if ids.ndim != 1:
        raise ValueError(
            f"ids must be a 1-D tensor of integer indices, got shape {tuple(ids.shape)}"
        )
    stream = len(ids) // batch_size
    num_chunks = (stream - 1) // seq_len
    if num_chunks < 1:
        raise ValueError(
            f"ids has {len(ids)} indices: too few for batch_size={batch_size} streams of "
            f"chunks of seq_len + 1 = {seq_len + 1}"
        )
    streams = ids[: stream * batch_size].reshape(batch_size, stream)  # (B, stream)
    starts = torch.arange(num_chunks) * seq_len  # (S,)
    offsets = starts[:, None] + torch.arange(seq_len + 1)  # (S, seq_len + 1)
    return streams[:, offsets].transpose(0, 1)  # (S, B, seq_len + 1)


def tbptt_step(model: CharLSTM, optimizer: torch.optim.Optimizer, clip: float = 1.0):
    """A ``fit`` step for truncated backpropagation through time, on data
    ``(text_chunks(...), torch.arange(num_chunks))`` with ``batch_size=1`` and
    ``shuffle=False``: each call gets one chunk (1, B, T + 1) and its position.
    The LSTM state of the previous chunk is carried in, detached, so the model
    sees the text as one long sequence while gradients stop at the chunk
    boundary; it starts from zeros at the first chunk (and after a resume).
    Gradients are clipped to norm ``clip`` (a finite number > 0; None: not
    clipped). Reports the loss in nats and bits per character."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a CharLSTM (a torch.nn.Module), got {type(model).__name__}")
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(
            f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}"
        )
    if clip is not None and (
        not isinstance(clip, numbers.Real) or isinstance(clip, bool) or not 0 < clip < math.inf
    ):
        raise ValueError(f"clip must be a finite number > 0, or None for no clipping; got {clip!r}")
    state = None

    def step(chunk: torch.Tensor, position: torch.Tensor) -> dict[str, torch.Tensor]:
        nonlocal state
        _check_integer_ids(chunk, "chunk")
        if chunk.ndim != 3 or chunk.shape[0] != 1 or chunk.shape[2] < 2:
            raise ValueError(
                f"chunk must have shape (1, B, T + 1) with T >= 1 (batch_size=1 of text_chunks), "
                f"got {tuple(chunk.shape)}"
            )
        if not isinstance(position, torch.Tensor) or position.numel() != 1:
            raise ValueError(f"position must be a tensor of one chunk index, got {position!r}")
        if state is not None:  # zeroed at position 0, without reading position back
            keep = (position != 0).to(state[0].dtype)  # (1,): 0 at the start of the text
            state = tuple(s * keep for s in state)
        chunk = chunk[0].long()  # (B, T + 1)
        logits, new_state = model(chunk[:, :-1], state)  # (B, T, V)
        state = tuple(s.detach() for s in new_state)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), chunk[:, 1:].reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        return {"loss": loss.detach(), "bits per char": loss.detach() / math.log(2)}

    return step


@torch.no_grad()
def bits_per_char(model: CharLSTM, ids: torch.Tensor) -> float:
    r"""Held-out bits per character of ``ids`` (N,), read as one sequence in
    eval mode: :math:`-\frac{1}{N-1}\sum_t \log_2 p(c_{t+1} \mid c_{\le t})`."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a CharLSTM (a torch.nn.Module), got {type(model).__name__}")
    _check_integer_ids(ids)
    if ids.ndim != 1 or len(ids) < 2:
        raise ValueError("ids must be a 1-D tensor of at least two character indices")
    was_training = model.training
    model.eval()
    logits, _ = model(ids[None, :-1])  # (1, N - 1, V)
    model.train(was_training)
    return F.cross_entropy(logits[0], ids[1:].long()).item() / math.log(2)


@torch.no_grad()
def generate(
    model: CharLSTM,
    vocab: CharVocab,
    prompt: str,
    length: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
    *,
    top_p: float | None = None,
    greedy: bool = False,
) -> str:
    """``prompt`` followed by ``length`` characters sampled from ``model``:
    each from :math:`\\mathrm{softmax}(\\ell / T)` over the ``top_k`` largest
    logits (all if None), then cut to the nucleus of mass ``top_p`` (all if
    None), in eval mode, with the largest logit subtracted first so that a small
    :math:`T` tends to the argmax; ``greedy=True`` takes the argmax itself
    (:mod:`genai_course.decoding` has the rules). ``generator`` (on the CPU)
    fixes the draws."""
    if not isinstance(model, CharLSTM):
        raise TypeError(f"model must be a CharLSTM, got {type(model).__name__}")
    if not isinstance(vocab, CharVocab):
        raise TypeError(f"vocab must be a CharVocab, got {type(vocab).__name__}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(
            f"generator must be a torch.Generator or None, got {type(generator).__name__}"
        )
    if not isinstance(prompt, str) or not prompt:
        raise ValueError("prompt must be a non-empty string: the model needs a first character")
    check_positive_int("length", length)
    if top_k is not None and (
        not isinstance(top_k, int) or isinstance(top_k, bool) or not 1 <= top_k <= len(vocab)
    ):
        raise ValueError(f"top_k must be None or an int from 1 to {len(vocab)}, got {top_k!r}")
    if len(vocab) != model.vocab_size:
        raise ValueError(f"vocab has {len(vocab)} characters but the model {model.vocab_size}")
    options = {"greedy": greedy, "temperature": temperature, "top_k": top_k, "top_p": top_p}
    check_decoding(len(vocab), **options)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    ids = vocab.encode(prompt)[None].to(device)  # (1, len(prompt))
    logits, state = model(ids)
    out = []
    for _ in range(length):
        last = logits[0, -1].double()  # (V,)
        probs = next_token_probs(last, **options).cpu()  # (V,)
        next_id = sample_tokens(probs[None], generator=generator)  # (1,)
        out.append(next_id.item())
        logits, state = model(next_id[None].to(device), state)
    model.train(was_training)
    return prompt + vocab.decode(out)

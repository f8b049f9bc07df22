"""Char-LSTM training throughput: the conventional DataLoader loop against the book's recipe.

Both train the model of the char-LSTM recipe (``RECIPES["char_lstm"]``: ``CharLSTM`` with
embedding 32 and one LSTM layer of 256) on the training split of the Shakespeare corpus, with
the recipe's quick settings (``batch_size`` sequences of ``seq_len`` characters a step, Adam's
learning rate, gradients clipped to norm 1), from the same initial weights; after every epoch
both score the validation bits per character. Only the loop differs:

- *conventional*, as in the character-RNN tutorials most code copies: a ``Dataset`` of
  ``seq_len``-character windows whose ``__getitem__`` encodes one window's characters to
  indices with a dictionary, a shuffling ``DataLoader``, and every batch started from a zero
  LSTM state;
- *book*: the recipe's trainer ``train_char_lstm`` (``genai_course.train.fit`` with
  ``lstm.tbptt_step`` over ``lstm.text_chunks``): the encoded text on the device, consecutive
  chunks whose LSTM state is carried from one to the next (truncated backpropagation through
  time), fused Adam.

Both see every character once an epoch, in the same number of steps. Reported: training
characters per second (median, min and max over ``--repeats`` alternating runs), the ratio, and
the validation bits per character each run reaches.

    python -m benchmarks.lstm_throughput [--epochs 1] [--repeats 3]
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from benchmarks.harness import Benchmark, compare, main
from genai_course.config import seed_everything
from genai_course.data import load_shakespeare
from genai_course.lstm import bits_per_char
from genai_course.markov import CharVocab
from genai_course.train.recipes import RECIPES, LSTMSettings, build_char_lstm, char_lstm_data

RECIPE = RECIPES["char_lstm"]


class TextWindows(Dataset):
    """Window ``i`` of ``seq_len + 1`` characters, encoded on access: the conventional pipeline."""

    def __init__(self, text: str, vocab: CharVocab, seq_len: int):
        self.text, self.index, self.seq_len = text, vocab.index, seq_len  # index: char -> int

    def __len__(self) -> int:
        return (len(self.text) - 1) // self.seq_len

    def __getitem__(self, i: int) -> torch.Tensor:
        window = self.text[i * self.seq_len : (i + 1) * self.seq_len + 1]
        return torch.tensor([self.index[char] for char in window])  # (seq_len + 1,)


@dataclass(frozen=True)
class Data:
    text: str  # the training text, what the conventional Dataset encodes on access
    vocab: CharVocab  # the characters of the whole text
    chunks: torch.Tensor  # (C, B, T + 1) the encoded training text, what the recipe reads


def load(settings: LSTMSettings, device: torch.device) -> Data:
    vocab, chunks = char_lstm_data(settings)
    return Data(load_shakespeare("train")[: settings.train_size], vocab, chunks)


def conventional(data: Data, settings: LSTMSettings, seed: int, device: torch.device) -> float:
    """The DataLoader loop; returns the validation bits per character after the last epoch."""
    vocab = data.vocab
    seed_everything(seed)
    # the text the recipe scores, encoded as the recipe encodes it: in the timed run
    valid = vocab.encode(load_shakespeare("valid")).to(device)  # (N,)
    model = build_char_lstm(settings, len(vocab)).to(device)  # the recipe's initial weights
    windows = TextWindows(data.text, vocab, settings.seq_len)
    loader = DataLoader(windows, batch_size=settings.batch_size, shuffle=True, drop_last=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    for _ in range(settings.epochs):
        model.train()
        for window in loader:
            window = window.to(device)  # (B, T + 1)
            optimizer.zero_grad()
            logits, _ = model(window[:, :-1])  # (B, T, V), from a zero state
            loss = F.cross_entropy(logits.reshape(-1, len(vocab)), window[:, 1:].reshape(-1))
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), settings.clip)
            optimizer.step()
        valid_bpc = bits_per_char(model, valid)  # what the recipe evaluates every epoch
    return valid_bpc


def book(data: Data, settings: LSTMSettings, seed: int, device: torch.device) -> float:
    """The recipe; returns the validation bits per character it measured after the last epoch."""
    trained = RECIPE.train(settings, data=(data.vocab, data.chunks), seed=seed, device=device.type)
    return trained.history.epochs["valid bits/char"][-1]


def measure(epochs: int = 1, repeats: int = 3, device: str | None = None) -> dict:
    """Train with both loops, alternating; print the table and return its summary."""
    settings = replace(RECIPE.quick, epochs=epochs)
    return compare(Benchmark(
        "char-LSTM on Shakespeare", "characters", "valid bits/char", RECIPE, settings, load,
        units=lambda data: len(data.text), conventional=conventional, book=book,
    ), repeats, device)  # fmt: skip


if __name__ == "__main__":
    main(measure, __doc__)

"""Char-LSTM training throughput: the conventional DataLoader loop against the book's ``fit``.

Both train the chapter 7 ``CharLSTM`` (embedding 32, one LSTM layer of 256) on the training split
of the Shakespeare corpus, in batches of 64 sequences of 100 characters, with Adam (lr 3e-3) and
gradients clipped to norm 1, from the same initial weights. Only the loop differs:

- *conventional*, as in the character-RNN tutorials most code copies: a ``Dataset`` of
  100-character windows whose ``__getitem__`` encodes one window's characters to indices with a
  dictionary, a shuffling ``DataLoader``, and every batch started from a zero LSTM state;
- *book*: ``genai_course.train.fit`` with ``lstm.tbptt_step`` over ``lstm.text_chunks``: the
  encoded text on the device, consecutive chunks whose LSTM state is carried from one to the
  next (truncated backpropagation through time), fused Adam.

Both see every character once an epoch in 145 steps. Reported: training characters per second
(median, min and max over ``--repeats`` alternating runs), the ratio, and the validation bits per
character each run reaches.

    python benchmarks/lstm_throughput.py [--epochs 1] [--repeats 3]
"""

from __future__ import annotations

import argparse
import math

import torch
import torch.nn.functional as F
from harness import alternate, report
from torch import nn
from torch.utils.data import DataLoader, Dataset

from genai_course.data import load_shakespeare
from genai_course.device import get_device
from genai_course.lstm import CharLSTM, tbptt_step, text_chunks
from genai_course.markov import CharVocab
from genai_course.train import fit

BATCH, SEQ_LEN, LR, CLIP = 64, 100, 3e-3, 1.0


class TextWindows(Dataset):
    """Window ``i`` of ``SEQ_LEN + 1`` characters, encoded on access: the conventional pipeline."""

    def __init__(self, text: str, vocab: CharVocab):
        self.text, self.index = text, vocab.index  # character -> index

    def __len__(self) -> int:
        return (len(self.text) - 1) // SEQ_LEN

    def __getitem__(self, i: int) -> torch.Tensor:
        window = self.text[i * SEQ_LEN : (i + 1) * SEQ_LEN + 1]
        return torch.tensor([self.index[char] for char in window])  # (SEQ_LEN + 1,)


def train_conventional(model, text, vocab, epochs, device) -> None:
    loader = DataLoader(TextWindows(text, vocab), batch_size=BATCH, shuffle=True, drop_last=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    model.train()
    for _ in range(epochs):
        for window in loader:
            window = window.to(device)  # (B, SEQ_LEN + 1)
            optimizer.zero_grad()
            logits, _ = model(window[:, :-1])  # from a zero state
            loss = F.cross_entropy(logits.reshape(-1, len(vocab)), window[:, 1:].reshape(-1))
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), CLIP)
            optimizer.step()


def train_book(model, text, vocab, epochs, device) -> None:
    chunks = text_chunks(vocab.encode(text), BATCH, SEQ_LEN)  # (S, B, SEQ_LEN + 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR, fused=True)
    step = tbptt_step(model, optimizer, clip=CLIP)
    data = (chunks, torch.arange(len(chunks)))
    fit(model, optimizer, data, step=step, epochs=epochs, batch_size=1, shuffle=False)


def measure(epochs: int = 1, repeats: int = 3, device: str | None = None) -> dict:
    """Train with both loops, alternating; print the table and return its summary."""
    device = get_device(device)
    train_text, valid_text = load_shakespeare("train"), load_shakespeare("valid")
    vocab = CharVocab(load_shakespeare())
    valid = vocab.encode(valid_text).to(device)
    torch.manual_seed(0)
    initial = CharLSTM(len(vocab), embed_dim=32, hidden_size=256, num_layers=1).state_dict()

    def loop(train):
        def run(repeat: int) -> float:
            torch.manual_seed(repeat)
            model = CharLSTM(len(vocab), embed_dim=32, hidden_size=256, num_layers=1).to(device)
            model.load_state_dict(initial)
            train(model, train_text, vocab, epochs, device)
            model.eval()
            with torch.no_grad():
                logits, _ = model(valid[None, :-1])  # the validation text as one sequence
            return F.cross_entropy(logits[0], valid[1:]).item() / math.log(2)

        return run

    loops = {
        "conventional DataLoader": loop(train_conventional),
        "book (fit, TBPTT)": loop(train_book),
    }
    result = alternate(loops, len(train_text) * epochs, repeats, device)
    title = f"char-LSTM on Shakespeare, {epochs} epoch(s), {repeats} repeats, {device}"
    return report(title, "characters", "valid bits/char", result)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default=None, help="cpu, cuda or mps (default: the best)")
    args = parser.parse_args()
    measure(args.epochs, args.repeats, args.device)

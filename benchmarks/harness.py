"""What the throughput benchmarks share: one model's two loops, alternated, timed and reported.

A benchmark module describes one model as a :class:`Benchmark`: the recipe and the settings
both loops train with, how to load their data, the conventional ``DataLoader`` loop written out
by hand, and the book's loop, a call to the recipe's trainer. :func:`compare` does the rest:

1. it loads the data once, before anything is timed (the recipe takes it as ``data=``);
2. it runs each loop once untimed (a warm-up: the code paged in, the kernels chosen, the
   allocator's pools filled), then the two in turn, ``repeats`` times, in this process, so
   that a slow spell of the machine hits both (:func:`alternate`); repeat ``r`` trains both
   from the recipe's initial weights under seed ``r`` (the conventional loop builds its model
   with the recipe's builder after ``seed_everything(r)``, as the trainer does);
3. it prints the table and returns its summary (:func:`report`), which ``benchmarks.results``
   writes to the book's Results page;
4. it runs the book's loop once more under ``torch.profiler`` and adds where its time goes
   (:func:`where_time_goes`).

A run's timed region is the training and the quality figure the trained model reaches: the
recipe loads the held-out data it scores (a few hundredths of a second) and evaluates after
every epoch, so the conventional loop does the same.
"""

from __future__ import annotations

import argparse
import inspect
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import Dataset

from genai_course.device import get_device
from genai_course.train.recipes import Recipe, Settings

Loop = Callable[[Any, Settings, int, torch.device], float]
"""``loop(data, settings, seed, device)``: train from the recipe's initial weights under
``seed``; return the quality figure the trained model reaches."""


@dataclass(frozen=True)
class Benchmark:
    """One model's comparison: what :func:`compare` needs."""

    title: str  # the model and its data, the table's heading: "VAE 784-400-20 on Fashion-MNIST"
    unit: str  # what the rates count: "examples", "images", "characters"
    quality: str  # the figure each run reaches, with its unit: "test -ELBO (nats)"
    recipe: Recipe  # the model's recipe: the book's loop is its trainer
    settings: Settings  # what both loops train with: the recipe's, the epochs changed
    load: Callable[[Settings, torch.device], Any]  # the training data of both loops, untimed
    units: Callable[[Any], int]  # how many units one epoch trains on, given the data
    conventional: Loop  # the hand-written DataLoader loop
    book: Loop  # the same training through ``recipe.train``


class ImagesOnAccess(Dataset):
    """One uint8 image at a time, converted on access: the conventional pipeline
    (``ToTensor`` and a transform, in a ``Dataset`` the ``DataLoader`` collates)."""

    def __init__(self, images: torch.Tensor, transform: Callable[[torch.Tensor], torch.Tensor]):
        self.images, self.transform = images.numpy(), transform  # (N, 28, 28) uint8

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        grey = torch.from_numpy(self.images[i]).float().div(255)  # (28, 28) in [0, 1]
        return self.transform(grey)


# kinds of operator, by the names torch.profiler gives them (the part after "aten::")
KINDS = {
    "matrix multiplies and convolutions": ("mm", "addmm", "bmm", "conv", "_conv", "mkldnn_conv",
                                           "mkldnn_rnn", "_slow_conv", "slow_conv", "cudnn",
                                           "_cudnn", "lstm", "_thnn_fused_lstm"),
    "the optimizer": ("_fused_adam", "optimizer."),
    "random numbers": ("uniform_", "normal_", "bernoulli", "random_", "randperm", "multinomial"),
}  # fmt: skip


def where_time_goes(run: Callable[[], object]) -> dict[str, float]:
    """Run ``run()`` once under ``torch.profiler``; return the share of its wall time that each
    kind of operator in ``KINDS`` takes (self time: an operator's own, without the operators it
    calls), the other operators (elementwise, copies, reductions), and what no operator takes
    (Python, the loop, dispatch). On the CPU only: the profiler's overhead inflates the last."""
    from torch.profiler import ProfilerActivity, profile

    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        run()
    wall = (time.perf_counter() - start) * 1e6  # microseconds, as the profiler counts
    shares = dict.fromkeys([*KINDS, "other operators"], 0.0)
    for event in profiler.key_averages():
        op = event.key.split("::")[-1].lower()
        kind = next((k for k, prefixes in KINDS.items() if op.startswith(prefixes)), None)
        shares[kind or "other operators"] += event.self_cpu_time_total / wall
    shares["outside operators (Python, the loop)"] = max(0.0, 1 - sum(shares.values()))
    return shares


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def alternate(
    loops: dict[str, Callable[[int], float]], units: int, repeats: int, device: torch.device,
    between: Callable[[], float] | None = None,
) -> dict:  # fmt: skip
    """Run every loop once per repeat, in turn; ``units`` is what one run processes (examples,
    characters). Returns, per loop, the rates (units/s) and quality figures of every repeat,
    the ratio of the last loop's rate to the first's, per repeat, and, if given, what
    ``between()`` measured after each repeat (untimed: a reference rate of the machine at the
    time, against which the loops' rates can be set repeat by repeat)."""
    runs = {name: {"rates": [], "quality": []} for name in loops}
    measured = []
    for repeat in range(repeats):
        for name, train in loops.items():
            synchronize(device)
            start = time.perf_counter()
            quality = train(repeat)
            synchronize(device)
            runs[name]["rates"].append(units / (time.perf_counter() - start))
            runs[name]["quality"].append(quality)
        if between is not None:
            measured.append(between())
    first, last = (runs[name]["rates"] for name in (next(iter(loops)), list(loops)[-1]))
    ratios = [b / a for a, b in zip(first, last, strict=True)]
    return {"loops": runs, "ratios": ratios, "between": measured}


def report(title: str, unit: str, quality: str, result: dict) -> dict:
    """Print the table of ``alternate``'s result; return its summary (medians and spreads)."""
    print(title)
    print(f"{'loop':<26}{unit + '/s (median, min-max)':>34}{quality:>20}")
    summary = {"title": title, "unit": unit, "quality": quality, "loops": {}}
    for name, run in result["loops"].items():
        rates = run["rates"]
        median = statistics.median(rates)
        spread = f"{min(rates):,.0f}-{max(rates):,.0f}"
        figure = statistics.median(run["quality"])
        print(f"{name:<26}{median:>16,.0f} ({spread:>15}){figure:>20.3f}")
        summary["loops"][name] = {
            "median": median, "min": min(rates), "max": max(rates), "quality": figure,
            "rates": rates,
        }  # fmt: skip
    ratios = result["ratios"]
    summary["ratio"] = {"median": statistics.median(ratios), "per_repeat": ratios}
    print(
        f"ratio (last / first): median {statistics.median(ratios):.2f} "
        f"(per repeat {', '.join(f'{r:.2f}' for r in ratios)})\n"
    )
    return summary


def compare(
    benchmark: Benchmark, repeats: int, device: str | None = None,
    between: Callable[[], float] | None = None,
) -> dict:  # fmt: skip
    """Load the data, run the conventional loop and the book's in turn ``repeats`` times
    (``between()`` after each repeat, see :func:`alternate`), print the table and return its
    summary, with what ``between`` measured."""
    device, settings = get_device(device), benchmark.settings
    data = benchmark.load(settings, device)  # before anything is timed

    def on_the_data(loop: Loop) -> Callable[[int], float]:  # seed -> quality figure
        return lambda seed: loop(data, settings, seed, device)

    loops = {
        "conventional DataLoader": on_the_data(benchmark.conventional),
        f"book ({benchmark.recipe.train.__name__})": on_the_data(benchmark.book),
    }
    for train in loops.values():  # the warm-up, untimed
        train(0)
    result = alternate(loops, benchmark.units(data) * settings.epochs, repeats, device, between)
    title = f"{benchmark.title}, {settings.epochs} epoch(s), {repeats} repeats, {device}"
    summary = report(title, benchmark.unit, benchmark.quality, result)
    summary["between"] = result["between"]
    if device.type == "cpu":
        book = list(loops.values())[-1]
        summary["time"] = where_time_goes(lambda: book(0))
        shares = ", ".join(f"{kind} {share:.0%}" for kind, share in summary["time"].items())
        print(f"where the book's loop spends its time: {shares}\n")
    return summary


def main(measure: Callable[..., dict], doc: str) -> None:
    """Run ``measure`` from the command line: a flag for each of its keyword arguments
    (``train_size``: ``--train-size``), with its default; ``doc``'s first line describes it."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    for name, parameter in inspect.signature(measure).parameters.items():
        default = parameter.default
        if name == "device":
            parser.add_argument("--device", help="cpu, cuda or mps (default: the best)")
        else:
            parser.add_argument("--" + name.replace("_", "-"), type=type(default),
                                default=default, help=f"default: {default}")  # fmt: skip
    measure(**vars(parser.parse_args()))

"""What the throughput benchmarks share: alternate the loops, time them, summarise, print.

Each loop is a function ``train(repeat) -> quality`` that trains one model from the same start
and returns a quality figure of the result (a test loss, a Fréchet distance). The loops run in
turn, ``repeats`` times, in one process, so that a slow spell of the machine hits all of them.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def alternate(
    loops: dict[str, Callable[[int], float]], units: int, repeats: int, device: torch.device
) -> dict:
    """Run every loop once per repeat, in turn; ``units`` is what one run processes (examples,
    characters). Returns, per loop, the rates (units/s) and quality figures of every repeat,
    and the ratio of the last loop's rate to the first's, per repeat."""
    runs = {name: {"rates": [], "quality": []} for name in loops}
    for repeat in range(repeats):
        for name, train in loops.items():
            synchronize(device)
            start = time.perf_counter()
            quality = train(repeat)
            synchronize(device)
            runs[name]["rates"].append(units / (time.perf_counter() - start))
            runs[name]["quality"].append(quality)
    first, last = (runs[name]["rates"] for name in (next(iter(loops)), list(loops)[-1]))
    return {"loops": runs, "ratios": [b / a for a, b in zip(first, last, strict=True)]}


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
            "median": median, "min": min(rates), "max": max(rates), "quality": figure
        }  # fmt: skip
    ratios = result["ratios"]
    summary["ratio"] = {"median": statistics.median(ratios), "per_repeat": ratios}
    print(
        f"ratio (last / first): median {statistics.median(ratios):.2f} "
        f"(per repeat {', '.join(f'{r:.2f}' for r in ratios)})\n"
    )
    return summary

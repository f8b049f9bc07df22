"""`make bench`: every measurement, merged into book/results.json and rendered as book/results.md.

Runs the three throughput benchmarks (VAE, DCGAN, char-LSTM: the conventional DataLoader loop
against the book's recipe) and executes every notebook (``benchmarks.notebooks``), collecting
the rows the chapters record with ``genai_course.results.record``. The run replaces the earlier
run of the same machine and profile in ``book/results.json`` and keeps the others, so a GPU's
``full`` rows and a laptop's ``quick`` rows stand side by side; ``book/results.md``, the book's
Results page, is rendered from that file.

    python -m benchmarks.results [--profile quick|full] [--device cuda] [--skip-throughput]
    python -m benchmarks.results --render   # only rewrite book/results.md from the JSON
"""

from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path

import torch

from benchmarks import dcgan_throughput, lstm_throughput, notebooks, vae_throughput
from genai_course.device import get_device
from genai_course.results import METRICS, machine

ROOT = Path(__file__).resolve().parent.parent
DATA, PAGE = ROOT / "book" / "results.json", ROOT / "book" / "results.md"
# short column headers, explained in the page's introduction
HEADERS = {"test -ELBO (nats)": "−ELBO", "test NLL (nats)": "NLL", "bits/dim (8-bit)": "8-bit bpd",
           "Fréchet distance": "FD",
           "precision": "prec.", "recall": "recall", "modes covered": "modes",
           "valid bits/char": "valid bpc", "test bits/char": "test bpc"}  # fmt: skip
DECIMALS = {"precision": 2, "recall": 2, "modes covered": 0, "bits/dim": 3, "bits/dim (8-bit)": 3,
            "valid bits/char": 3, "test bits/char": 3}  # fmt: skip

INTRO = """\
# Results

Every figure on this page was measured by `make bench` ({download}`benchmarks/results.py
<../benchmarks/results.py>` and its neighbours) and written here by it; nothing on it is typed by
hand. The chapters train their models under a profile (`quick`: two CPU cores and about a minute
a chapter, what the committed notebooks show; `full`: the real results, on a GPU), and each
section below is one profile on one machine, with the date and the PyTorch it ran. A reader's own
`make bench` adds or replaces the section of their machine.

The columns: −ELBO and NLL are nats per test image (binarised), NLL being the
importance-weighted estimate of the negative log-likelihood with the number of samples k the row
names (the {doc}`VAE chapter <../notebooks/vae>`), and bits/dim that NLL in bits per pixel;
8-bit bpd is bits per pixel of the 256-level images, dequantised (the
{doc}`flows chapter <../notebooks/flows>`; for a diffusion model, a bound on it: the
{doc}`diffusion chapter <../notebooks/diffusion>`), another quantity, not comparable with
bits/dim; FD
is the Fréchet distance, prec. and recall the precision and recall of samples, all three on the
features of the book's classifier (the {doc}`evaluation chapter <../notebooks/evaluation>`);
modes counts the modes of the 2-D mixture that receive good samples; valid bpc and test bpc are
bits per character on the held-out text (the {doc}`sequences chapter <../notebooks/sequences>`);
train s is the seconds spent in `fit`, evaluations included. Lower is better except for prec.,
recall and modes.

Under the training loops, *where the time goes* splits one run of the book's loop, profiled with
`torch.profiler`, into the time of its operators by kind and the time outside any operator
(Python and the loop; the profiler's own overhead inflates it). The notebook table gives each
notebook's slowest cell and, where `make bench` replaced an earlier run of the same machine and
profile, that run's times ("before"). The budget of the `quick` profile under the reference
settings: at most 90 seconds a chapter (120 for the diffusion chapter), 8 minutes for the
chapters of the seed book (from the pipeline to the appendix of common mistakes, without the
chapters added since).
"""


def _number(name: str, value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:,.{DECIMALS.get(name, 1)}f}"


def _models(rows: list[dict]) -> list[str]:
    lines = []
    for dataset in dict.fromkeys(row["dataset"] for row in rows):
        group = [row for row in rows if row["dataset"] == dataset]
        columns = [m for m in METRICS if any(m in row["metrics"] for row in group)]
        lines += [f"**{dataset}**", ""]
        lines.append("| model | " + " | ".join(HEADERS.get(c, c) for c in columns) + " | train s |")
        lines.append("|---|" + "---:|" * (len(columns) + 1))
        for row in group:
            cells = [_number(m, row["metrics"].get(m)) for m in columns]
            cells.append(_number("seconds", row["seconds"]))
            lines.append(f"| {row['model']} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def _throughput(summaries: list[dict]) -> list[str]:
    lines = []
    for summary in summaries:
        decimals = 3 if "bits/char" in summary["quality"] else 1
        share = any("share of matmul rate" in loop for loop in summary["loops"].values())
        lines += [f"**{summary['title']}**", ""]
        header = f"| loop | {summary['unit']}/s, median | min-max | {summary['quality']} |"
        lines += [header + (" share of matmul rate |" if share else ""),
                  "|---|---:|---:|---:|" + ("---:|" if share else "")]  # fmt: skip
        for name, loop in summary["loops"].items():
            row = (f"| {name} | {loop['median']:,.0f} | {loop['min']:,.0f}-{loop['max']:,.0f} | "
                   f"{loop['quality']:.{decimals}f} |")  # fmt: skip
            if share:
                row += f" {loop['share of matmul rate']:.0%} |"
            lines.append(row)
        ratio = summary["ratio"]
        per_repeat = ", ".join(f"{r:.2f}" for r in ratio["per_repeat"])
        lines += ["", f"Book / conventional: **{ratio['median']:.2f}x** (median; per repeat "
                  f"{per_repeat}).", ""]  # fmt: skip
        if "time" in summary:  # where the book's loop spends its time (torch.profiler, one run)
            shares = ", ".join(f"{kind} {share:.0%}" for kind, share in summary["time"].items())
            lines += [f"Where the book's loop spends its time (one run under torch.profiler): "
                      f"{shares}.", ""]  # fmt: skip
    return lines


def _excerpt(code: str, most: int = 28, word: int = 13) -> str:
    """The start of a cell, short enough for the table to fit the page, on screen and in the
    PDF: at most ``most`` characters, and no run without a space longer than ``word`` (LaTeX
    cannot break a line inside one)."""
    run = 0
    for i, char in enumerate(code):
        run = 0 if char == " " else run + 1
        if (i >= most and len(code) > most + 1) or run > word:
            return code[:i] + "…"
    return code


def _notebooks(results: list[dict], previous: dict | None) -> list[str]:
    """The table of notebook times: with the slowest cell of each, and the times of the run
    this one replaced (the same machine and profile), if any."""
    cuda = any("peak_cuda_mib" in r for r in results)
    before = previous["seconds"] if previous else {}
    header = "| notebook | seconds |" + (f" before ({previous['date']}) |" if before else "")
    header += " slowest cell | peak RSS (MiB) |" + (" peak CUDA (MiB) |" if cuda else "")
    rule = "|---|---:|" + ("---:|" if before else "") + "---|---:|" + ("---:|" if cuda else "")
    lines = [header, rule]
    for r in results:
        cells = [r["notebook"], f"{r['seconds']:,.1f}"]
        if before:
            cells.append(f"{before[r['notebook']]:,.1f}" if r["notebook"] in before else "")
        slowest = r.get("slowest")  # absent from runs made before it was recorded
        if slowest:
            code = _excerpt(slowest[0]["code"]).replace("|", "\\|").replace("`", "'")
            cells.append(f"{slowest[0]['seconds']:,.1f} s: `{code}`")
        else:
            cells.append("")
        cells.append(f"{r['peak_mib']:,.0f}")
        if cuda:
            cells.append(f"{r.get('peak_cuda_mib', 0):,.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    seed = [r for r in results if Path(r["notebook"]).stem in notebooks.SEED_BOOK]
    peak = max(r["peak_mib"] for r in results)
    for label, rows, memory in (("the seed book's chapters", seed, ""),
                                ("all notebooks", results, f"{peak:,.0f} (largest)")):  # fmt: skip
        cells = [f"**{label}**", f"**{sum(r['seconds'] for r in rows):,.1f}**"]
        if before:
            cells.append(f"**{sum(before.get(r['notebook'], 0) for r in rows):,.1f}**")
        cells += ["", memory] + ([""] if cuda else [])
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def render(runs: list[dict]) -> str:
    lines = [INTRO]
    for run in runs:
        lines += [f"## The `{run['profile']}` profile on {run['machine']}", ""]
        settings = (
            " The notebooks ran under the reference settings of `make test` (two threads, the "
            "CPU kernels held to AVX2)."
            if run["profile"] == "quick"
            else ""
        )
        lines += [f"Measured {run['date']} with PyTorch {run['torch']}.{settings}", ""]
        rows = [row for nb in run["notebooks"] for row in nb["rows"]]
        if rows:
            lines += ["### Models", ""] + _models(rows)
        if run["throughput"]:
            lines += ["### The training loop against the conventional one", ""]
            lines += _throughput(run["throughput"])
        if run["notebooks"]:
            lines += ["### Executing the notebooks", ""]
            lines += _notebooks(run["notebooks"], run.get("previous"))
    return "\n".join(lines).rstrip() + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=("quick", "full"), default="quick")
    parser.add_argument("--device", default=None, help="for the throughput benchmarks")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--render", action="store_true", help="only rewrite the page")
    args = parser.parse_args()
    runs = json.loads(DATA.read_text())["runs"] if DATA.is_file() else []
    if not args.render:
        device = get_device(args.device)
        throughput = [] if args.skip_throughput else [
            vae_throughput.measure(device=args.device),
            dcgan_throughput.measure(device=args.device),
            lstm_throughput.measure(device=args.device),
        ]  # fmt: skip
        paths = notebooks.in_book_order()
        run = {
            "machine": machine(device),
            "profile": args.profile,
            "date": datetime.date.today().isoformat(),
            "torch": torch.__version__,
            "throughput": throughput,
            "notebooks": notebooks.measure(paths, args.profile),
        }
        same = [r for r in runs if (r["machine"], r["profile"]) == (run["machine"], run["profile"])]
        if same and same[0]["notebooks"]:  # the run this one replaces: its times, for comparison
            seconds = {nb["notebook"]: nb["seconds"] for nb in same[0]["notebooks"]}
            run["previous"] = {"date": same[0]["date"], "seconds": seconds}
        runs = [r for r in runs if r not in same]
        runs = sorted([*runs, run], key=lambda r: (r["profile"] != "full", r["machine"]))
        DATA.write_text(json.dumps({"runs": runs}, indent=1, ensure_ascii=False) + "\n")
    PAGE.write_text(render(runs))
    print(f"wrote {PAGE.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

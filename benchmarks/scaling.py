"""Throughput with one process and with several: the measurement of the page "Scaling out".

Launches ``python -m genai_course.train MODEL`` under ``torchrun`` on 1 and on N processes
(N = ``--processes``, default 2), the processes sharing the machine's cores (``--threads`` in
all, default: every core; or ``--threads-per-process``, so that each process is one worker of
a fixed size, as a GPU is), and reads the examples/s each run reports (the time in ``fit``:
no start-up, no data loading, but the recipe's evaluation after each epoch, for the VAE
the test -ELBO of 2,000 images under quick, a few hundredths of a second). Two ways to add
processes are measured:

- *same combined batch*: each of the N processes takes 1/N of the chapter's batch, so the
  optimisation is the one-process run's (the "strong scaling" of a fixed problem);
- *N times the batch*: each process takes the chapter's whole batch, so every step trains on
  N times as many examples (the "weak scaling" that a larger cluster is bought for).

The configurations run in turn, ``--repeats`` times, so that a slow spell of a shared machine
hits all of them; the table gives the median, the spread, and the ratio to one process per
repeat.

    python -m benchmarks.scaling [--model vae|dcgan] [--processes 2] [--repeats 3] [...]

Flags it does not know go to the training script (``python -m genai_course.train --help``),
e.g. ``--epochs 1 --train-size 5000`` for a short run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from genai_course.train.recipes import RECIPES

MODELS = ("vae", "dcgan")  # the recipes the page measures; the chapter's batch is the recipe's


def launch(model: str, processes: int, batch: int, threads: int, extra: list[str]) -> dict:
    """One run of the training script on ``processes`` processes of ``threads`` threads each;
    its summary."""
    with tempfile.TemporaryDirectory() as tmp:
        summary = Path(tmp) / "summary.json"
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        command += [f"--nproc_per_node={processes}", "-m", "genai_course.train", model]
        command += ["--batch-size", str(batch), "--summary", str(summary), *extra]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        env.setdefault("GENAI_COURSE_PROGRESS", "0")
        done = subprocess.run(command, capture_output=True, text=True, env=env)
        if done.returncode != 0:
            sys.exit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
        return json.loads(summary.read_text())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=MODELS, default="vae")
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="in all (CPU runs)")
    p.add_argument("--threads-per-process", type=int, help="instead of --threads")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", type=Path, help="also write the runs here")
    args, extra = p.parse_known_args()  # the rest goes to the training script
    batch, n = RECIPES[args.model].settings().batch_size, args.processes
    configs = {
        "1 process": (1, batch),
        f"{n} processes, same combined batch": (n, batch // n),
        f"{n} processes, {n} x the batch": (n, batch),
    }

    def threads(processes: int) -> int:
        return args.threads_per_process or max(1, args.threads // processes)

    runs = {name: [] for name in configs}
    for _ in range(args.repeats):
        for name, (processes, per_process) in configs.items():
            runs[name].append(launch(args.model, processes, per_process, threads(processes), extra))

    first = runs["1 process"][0]
    print(
        f"{args.model}, {first['training examples']:,} examples x {first['epochs']} epochs, "
        f"device {first['device']}, threads per process: "
        f"{', '.join(f'{k} with {threads(k)}' for k in (1, n))}, {args.repeats} repeats"
    )
    print(f"{'configuration':<36}{'batch':>12}{'examples/s (median, min-max)':>36}{'ratio':>8}")
    baseline = [run["examples/s"] for run in runs["1 process"]]
    for name, summaries in runs.items():
        rates = [run["examples/s"] for run in summaries]
        ratio = statistics.median(r / b for r, b in zip(rates, baseline, strict=True))
        batches = f"{summaries[0]['processes']} x {summaries[0]['batch size per process']}"
        spread = f"{min(rates):,.0f}-{max(rates):,.0f}"
        print(f"{name:<36}{batches:>12}{statistics.median(rates):>18,.0f} ({spread:>15})"
              f"{ratio:>8.2f}")  # fmt: skip
        quality = {k: v for k, v in summaries[-1].items() if k in ("test -ELBO", "loss_d")}
        if quality:
            print(f"{'':<36}last run: {quality}")
    if args.json is not None:
        args.json.write_text(json.dumps(runs, indent=1) + "\n")


if __name__ == "__main__":
    main()

"""Wall time and peak memory of executing each notebook, and the results its models record.

Each notebook runs in a fresh kernel, from its own child process, so that the peak resident
memory measured is that notebook's kernel alone. By default the settings are the reference
run written in ``reference-run.env`` (quick profile, CPU, two threads, the kernels held to
AVX2), as `make test` executes the notebooks; ``--profile full`` runs them as a reader with a
GPU would (the best device, no thread limit). The rows the chapters pass to
``genai_course.results.record`` are collected (through ``GENAI_COURSE_RESULTS``). Nothing is
written back to the notebooks.

    python -m benchmarks.notebooks [--profile quick|full] [notebooks/gan.ipynb ...]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
REFERENCE_RUN = ROOT / "reference-run.env"  # the reference run's environment; make reads it too


def reference_run(path: Path = REFERENCE_RUN) -> dict[str, str]:
    """The variables of the reference run: the ``KEY=VALUE`` lines of ``path`` (the Makefile
    reads the same file; lines starting with ``#`` are comments)."""
    variables = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        key, equals, value = line.partition("=")
        if not (equals and key.isidentifier() and value and " " not in value):
            raise ValueError(f"{path}:{number}: expected KEY=VALUE without spaces, got {line!r}")
        variables[key] = value
    return variables


def cell_seconds(nb) -> list[dict]:
    """Each executed code cell's seconds, from the timestamps nbclient records in its metadata,
    with the line that names it (the first that trains a recipe, else the first line of code),
    slowest first: where a notebook's time goes."""
    cells = []
    for index, cell in enumerate(nb.cells):
        timing = cell.metadata.get("execution", {}) if cell.cell_type == "code" else {}
        if "iopub.execute_input" not in timing or "shell.execute_reply" not in timing:
            continue
        start, end = (datetime.fromisoformat(timing[key].replace("Z", "+00:00"))
                      for key in ("iopub.execute_input", "shell.execute_reply"))  # fmt: skip
        code = [line.strip() for line in cell.source.splitlines()
                if line.strip()[:1] not in ("", "#")] or [""]  # fmt: skip
        name = next((line for line in code if ".train(" in line), code[0])
        cells.append({"cell": index, "code": name,
                      "seconds": (end - start).total_seconds()})  # fmt: skip
    return sorted(cells, key=lambda c: -c["seconds"])


def in_book_order() -> list[Path]:
    """The chapters' notebooks in the order of the table of contents (``_toc.yml``)."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [entry["file"] for part in toc["parts"] for entry in part["chapters"]]
    return [ROOT / f"{file}.ipynb" for file in files if file.startswith("notebooks/")]


def execute_one(path: Path) -> None:
    """In the child: run one notebook, print its seconds, its kernel's peak RSS and its three
    slowest cells as JSON."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=1800, resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB (Linux), bytes (macOS)
    mib = peak / 2**20 if sys.platform == "darwin" else peak / 2**10
    print(json.dumps({"seconds": seconds, "peak_mib": mib, "slowest": cell_seconds(nb)[:3]}))


def measure(paths: list[Path], profile: str = "quick") -> list[dict]:
    """Execute each notebook; print and return its seconds, peak RSS and recorded rows."""
    if profile == "quick":
        env = {**os.environ, **reference_run()}
    else:
        env = {**os.environ, "GENAI_COURSE_PROFILE": profile}
    env["GENAI_COURSE_PROGRESS"] = "0"
    results, start = [], time.perf_counter()
    print(f"{'notebook':<36}{'seconds':>9}{'peak RSS (MiB)':>16}")
    for path in paths:
        with tempfile.TemporaryDirectory() as tmp:
            rows_file = Path(tmp) / "rows.jsonl"
            out = subprocess.run(
                [sys.executable, "-m", "benchmarks.notebooks", "--one", str(path.resolve())],
                cwd=ROOT,
                env={**env, "GENAI_COURSE_RESULTS": str(rows_file)},
                capture_output=True,
                text=True,
            )
            if out.returncode != 0:
                raise RuntimeError(f"{path} failed:\n{out.stderr[-3000:]}")
            rows = [json.loads(line) for line in rows_file.read_text().splitlines()] if (
                rows_file.is_file()
            ) else []  # fmt: skip
        result = {"notebook": path.name, **json.loads(out.stdout.strip().splitlines()[-1])}
        cuda = [row["peak CUDA MiB"] for row in rows if "peak CUDA MiB" in row]
        if cuda:
            result["peak_cuda_mib"] = max(cuda)
        results.append({**result, "rows": rows})
        print(f"{path.name:<36}{result['seconds']:>9.1f}{result['peak_mib']:>16.0f}", flush=True)
        for cell in result["slowest"]:
            print(f"    {cell['seconds']:6.1f} s  cell {cell['cell']}: {cell['code'][:60]}")
    total = sum(r["seconds"] for r in results)
    print(f"{'all notebooks':<36}{total:>9.1f}   (wall {time.perf_counter() - start:.0f} s)")
    if profile == "quick":
        print(over_budget(results) or "within the quick profile's budget")
    return results


# the quick profile's promise under the reference run: seconds a chapter (a chapter named in
# CHAPTER_BUDGET has its own), and for the chapters of the seed book together (issue 23's budget,
# set when the book had those chapters only; the chapters added since each keep their own)
BUDGET = {"chapter": 90, "book": 480}
CHAPTER_BUDGET = {"diffusion.ipynb": 120}  # two image models trained and sampled many times
SEED_BOOK = ("pipeline", "distributions", "likelihood", "cross_entropy", "gradient_descent",
             "evaluation", "gan", "vae", "sequences", "common_mistakes")  # fmt: skip


def over_budget(results: list[dict]) -> str:
    """What exceeds the quick profile's budget (``BUDGET``, ``CHAPTER_BUDGET``), in words; empty
    if nothing."""
    over = [f"{r['notebook']} took {r['seconds']:.0f} s" for r in results
            if r["seconds"] > CHAPTER_BUDGET.get(r["notebook"], BUDGET["chapter"])]  # fmt: skip
    seed = sum(r["seconds"] for r in results if Path(r["notebook"]).stem in SEED_BOOK)
    if seed > BUDGET["book"]:
        over.append(f"the seed book's chapters took {seed:.0f} s")
    if not over:
        return ""
    return (f"over the budget of {BUDGET['chapter']} s a chapter (120 s for the diffusion "
            f"chapter) and {BUDGET['book']} s for the seed book's chapters: "
            f"{'; '.join(over)}")  # fmt: skip


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"]:
        execute_one(Path(sys.argv[2]))
        sys.exit()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=("quick", "full"), default="quick")
    parser.add_argument("paths", nargs="*", type=Path)
    args = parser.parse_args()
    measure(args.paths or in_book_order(), args.profile)

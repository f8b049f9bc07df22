"""Wall time and peak memory of executing each notebook, as `make test` executes it.

Each notebook runs in a fresh kernel under the reference settings of the Makefile (quick profile,
CPU, two threads), from its own child process, so that the peak resident memory measured is that
notebook's kernel alone. Nothing is written back to the notebooks.

    python benchmarks/notebooks.py [notebooks/05_gan.ipynb ...]
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REFERENCE_RUN = {
    "GENAI_COURSE_PROFILE": "quick",
    "GENAI_COURSE_DEVICE": "cpu",
    "GENAI_COURSE_PROGRESS": "0",
    "OMP_NUM_THREADS": "2",
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_CBWR": "AVX2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
}


def execute_one(path: Path) -> None:
    """In the child: run one notebook, print its seconds and its kernel's peak RSS as JSON."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=1800, resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB (Linux), bytes (macOS)
    mib = peak / 2**20 if sys.platform == "darwin" else peak / 2**10
    print(json.dumps({"seconds": seconds, "peak_mib": mib}))


def main() -> None:
    if sys.argv[1:2] == ["--one"]:
        execute_one(Path(sys.argv[2]))
        return
    paths = [Path(p) for p in sys.argv[1:]] or sorted((ROOT / "notebooks").glob("*.ipynb"))
    env = {**os.environ, **REFERENCE_RUN}
    total, start = 0.0, time.perf_counter()
    print(f"{'notebook':<36}{'seconds':>9}{'peak RSS (MiB)':>16}")
    for path in paths:
        out = subprocess.run(
            [sys.executable, __file__, "--one", str(path)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        result = json.loads(out.stdout.strip().splitlines()[-1])
        total += result["seconds"]
        print(f"{path.name:<36}{result['seconds']:>9.1f}{result['peak_mib']:>16.0f}", flush=True)
    print(f"{'all notebooks':<36}{total:>9.1f}   (wall {time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()

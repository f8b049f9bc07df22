"""Each chapter's first code cell: it installs the book's package where it is missing.

A launch button (Colab, Binder) or a downloaded notebook opens a chapter in a kernel that may
not have ``genai_course``. The chapter's first code cell installs it there, with the extras the
notebooks import (``genai_course[notebooks]``), from the repository and branch that
``_config.yml`` names, the same ones the launch buttons open; in the book's own environment
it finds the package and does nothing. ``GENAI_COURSE_SOURCE`` (a pip URL or path) installs
from elsewhere: a fork, a local copy, the tests.

The cell is written from ``_config.yml``, never by hand:

    python scripts/install_cell.py          # check every chapter (exit 1 if one differs)
    python scripts/install_cell.py --write  # write it into every chapter

after which the notebooks are re-executed (``make notebooks``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parent.parent
TAG = "install-package"  # the cell's tag, by which it is found and replaced

TEMPLATE = '''\
# Colab, Binder or any kernel without the book's package: install it (here: nothing to do)
import importlib.util
import os
import subprocess
import sys

if importlib.util.find_spec("genai_course") is None:
    default = "{source}"
    source = os.environ.get("GENAI_COURSE_SOURCE", default)
    pip = [sys.executable, "-m", "pip", "install", "--quiet"]
    subprocess.check_call([*pip, f"genai_course[notebooks] @ {{source}}"])
    importlib.invalidate_caches()'''


def package_source(config: Path = ROOT / "_config.yml") -> str:
    """The pip URL of the package at the branch the book is built from: ``git+URL@BRANCH``."""
    repository = yaml.safe_load(config.read_text()).get("repository") or {}
    url, branch = repository.get("url"), repository.get("branch")
    if not (isinstance(url, str) and url.startswith("https://") and isinstance(branch, str)):
        raise ValueError(f"{config}: repository.url (https://...) and repository.branch are needed")
    return f"git+{url.rstrip('/')}@{branch}"


def install_cell(config: Path = ROOT / "_config.yml") -> nbformat.NotebookNode:
    """The first code cell of every chapter, shown collapsed in the book."""
    source = TEMPLATE.format(source=package_source(config))
    return nbformat.v4.new_code_cell(source, metadata={"tags": ["hide-input", TAG]})


def first_code_cell(nb: nbformat.NotebookNode) -> nbformat.NotebookNode | None:
    return next((cell for cell in nb.cells if cell.cell_type == "code"), None)


def write(path: Path, cell: nbformat.NotebookNode) -> bool:
    """Put ``cell`` first among ``path``'s code cells (replacing an older one); True if the
    notebook changed."""
    nb = nbformat.read(path, as_version=4)
    first = first_code_cell(nb)
    if first is not None and first.source == cell.source and TAG in first.metadata.get("tags", []):
        return False
    if first is not None and TAG in first.metadata.get("tags", []):
        first.source, first.metadata["tags"] = cell.source, cell.metadata["tags"]
    else:
        at = nb.cells.index(first) if first is not None else len(nb.cells)
        nb.cells.insert(at, nbformat.v4.new_code_cell(cell.source, metadata=cell.metadata))
    nbformat.write(nb, path)
    return True


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write", action="store_true", help="write the cell into every chapter")
    args = parser.parse_args(argv)
    from benchmarks.notebooks import in_book_order

    cell, stale = install_cell(), []
    for path in in_book_order():
        if args.write:
            write(path, cell)
            continue
        first = first_code_cell(nbformat.read(path, as_version=4))
        if first is None or first.source != cell.source:
            stale.append(path.name)
    if stale:
        print(f"the install cell differs from _config.yml's in {', '.join(stale)}; "
              "run python scripts/install_cell.py --write")  # fmt: skip
    return 1 if stale else 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main(sys.argv[1:]))

"""Read the PDF edition back and check what a reader would see (``make pdf`` runs it):

    python scripts/check_pdf.py _build/pdf/_build/latex

In that folder, ``book.pdf`` is read with poppler's ``pdftotext`` and ``pdfimages``, and
``book.tex`` and ``book.log`` are what LaTeX was given and said. The checks: every chapter's
title of ``_toc.yml`` is there, in order; no prose shows raw TeX; no reference prints as ``??``;
every figure of the notebooks is in; no character is missing from the fonts; no line runs more
than 20 pt into the margin; the page count is sane. Each problem is printed; the exit status is 1
if there is any.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
MAX_OVERFULL_PT = 20.0  # beyond this a line visibly runs into the margin
PAGES_PER_FILE = (5, 50)  # a sane page count, per file of _toc.yml


def _title(path: Path) -> str:
    """The first level-1 heading of a Markdown file or notebook."""
    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        lines = [line for c in cells if c["cell_type"] == "markdown"
                 for line in "".join(c["source"]).splitlines()]  # fmt: skip
    else:
        lines = path.read_text(encoding="utf-8").splitlines()
    return next(line[2:].strip() for line in lines if line.startswith("# "))


def toc_titles(root: Path = ROOT) -> list[str]:
    """The title of every file of ``_toc.yml`` after the root (whose title the PDF omits)."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    files = [entry["file"] for part in toc["parts"] for entry in part["chapters"]]
    paths = [next(root.glob(f"{name}.*")) for name in files]
    return [_title(path) for path in paths]


def titles_in_order(text: str, titles: list[str]) -> list[str]:
    """Each title must head its chapter (set in capitals) after the previous one's heading."""
    flat = " ".join(text.split())
    problems, position = [], 0
    for title in titles:
        found = flat.find(title.upper(), position)
        if found < 0:
            where = "at all" if title.upper() not in flat else "after the previous chapter"
            problems.append(f"chapter heading {title!r} not found {where}")
        else:
            position = found
    return problems


# what LaTeX typesets verbatim (code, inline code), where TeX commands may appear literally
VERBATIM = re.compile(r"\\begin\{sphinxVerbatim\}.*?\\end\{sphinxVerbatim\}"
                      r"|\\sphinxupquote\{(?:\\[{}]|\{\}|[^{}])*\}", re.S)  # fmt: skip
RAW_TEX = re.compile(r"\\textbackslash\{\}[A-Za-z]+|\\\$")


def raw_tex(tex: str) -> list[str]:
    """TeX that reaches the page as text outside code: math MyST did not recognise."""
    prose = VERBATIM.sub("", tex)
    return [f"raw TeX in the text: ...{prose[max(m.start() - 40, 0):m.end() + 20]!r}..."
            for m in RAW_TEX.finditer(prose)]  # fmt: skip


def undefined_references(text: str) -> list[str]:
    """A reference LaTeX could not resolve prints as ``??``."""
    return [f"unresolved reference: ...{text[max(m.start() - 60, 0):m.end()]!r}"
            for m in re.finditer(r"\?\?", text)]  # fmt: skip


def log_problems(log: str) -> list[str]:
    """Characters missing from the fonts, and lines running into the margin."""
    problems = sorted(set(re.findall(r"Missing character: There is no .*", log)))
    for points, where in re.findall(r"Overfull \\hbox \(([\d.]+)pt too wide\) (.*)", log):
        if float(points) > MAX_OVERFULL_PT:
            problems.append(f"a line {points} pt too wide {where}")
    return problems


def figures(pdf: Path, root: Path = ROOT) -> list[str]:
    """Every image a notebook shows is in the PDF (pdfimages lists each, plus alpha masks)."""
    listing = subprocess.run(["pdfimages", "-list", str(pdf)], capture_output=True, text=True,
                             check=True).stdout.splitlines()[2:]  # fmt: skip
    in_pdf = sum(1 for line in listing if line.split()[2] == "image")
    hidden = {"remove-output", "remove-cell", "hide-output", "hide-cell"}
    shown = sum(1 for notebook in (root / "notebooks").glob("*.ipynb")
                for cell in json.loads(notebook.read_text(encoding="utf-8"))["cells"]
                if not hidden & set(cell["metadata"].get("tags", []))
                for output in cell.get("outputs", [])
                if "image/png" in output.get("data", {}))  # fmt: skip
    return [] if in_pdf >= shown else [f"{in_pdf} images in the PDF, the notebooks show {shown}"]


def page_count(pdf: Path, files: int) -> list[str]:
    """Between PAGES_PER_FILE[0] and [1] pages per file of the table of contents."""
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True)
    pages = int(re.search(r"^Pages:\s+(\d+)", info.stdout, re.M).group(1))
    low, high = (n * files for n in PAGES_PER_FILE)
    return [] if low <= pages <= high else [f"{pages} pages, expected {low} to {high}"]


def check(folder: Path) -> list[str]:
    """Every problem of the PDF edition built in ``folder``."""
    pdf = folder / "book.pdf"
    if not pdf.is_file():
        return [f"{pdf} does not exist: build it with `make pdf`"]
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True,
                          check=True).stdout  # fmt: skip
    titles = toc_titles()
    return (titles_in_order(text, titles) + raw_tex((folder / "book.tex").read_text())
            + undefined_references(text)
            + log_problems((folder / "book.log").read_text(errors="replace"))
            + figures(pdf) + page_count(pdf, len(titles)))  # fmt: skip


if __name__ == "__main__":
    found = check(Path(sys.argv[1]))
    for problem in found:
        print(problem)
    print(f"{len(found)} problems" if found else "The PDF edition checks out.")
    sys.exit(1 if found else 0)

"""The book's structure: every chapter in the table of contents, named by subject, and
referred to by label, never by a typed number (the numbers come from the contents)."""

import re
from pathlib import Path

import nbformat
import pytest
import yaml

from benchmarks.notebooks import in_book_order

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
PAGES = sorted((ROOT / "book").glob("*.md"))
TYPED_NUMBER = re.compile(r"[Cc]hapters? \d|[Aa]ppendix [A-Z]\b|\bch\. ?\d|[Ee]xercise \d+\.\d")


def test_every_notebook_is_in_the_numbered_contents_once():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    chapters = next(part for part in toc["parts"] if part["caption"] == "Chapters")
    assert chapters.get("numbered") is True
    assert sorted(in_book_order()) == NOTEBOOKS  # each once, none left out
    assert [p.stem for p in in_book_order()][:3] == ["pipeline", "distributions", "likelihood"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_notebook_is_named_by_subject(path):
    assert re.fullmatch(r"[a-z][a-z_]*", path.stem), path.name


def _prose(path: Path) -> str:
    """A page's text, or a notebook's cell sources (not its outputs)."""
    if path.suffix == ".md":
        return path.read_text()
    return "\n".join(cell.source for cell in nbformat.read(path, as_version=4).cells)


@pytest.mark.parametrize("path", NOTEBOOKS + PAGES, ids=lambda p: p.name)
def test_no_chapter_number_is_typed(path):
    typed = [m.group(0) for m in TYPED_NUMBER.finditer(_prose(path))]
    assert not typed, f"{path.name}: refer by label ({{doc}}, {{ref}}), not {typed}"


def test_the_typed_number_check_catches_what_it_should():
    for text in ("as chapter 0 showed", "Chapter 6's", "Appendix A", "(ch. 5)", "Exercise 8.1"):
        assert TYPED_NUMBER.search(text), text
    for text in ("the {doc}`GAN chapter <gan>`", "chapters", "an appendix", "k = 2"):
        assert not TYPED_NUMBER.search(text), text

"""The built book as a reader opens it: math typeset from the book's own files (no CDN), each
chapter's measured cost under its title, and its downloads there. The book is built once, from
the committed outputs, as `make test` builds it."""

import html
import json
import re
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest

from benchmarks.notebooks import in_book_order

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "book" / "_ext"))
from chapter_cost import STUDENT_ZIP, cost_text  # noqa: E402

CHAPTERS = in_book_order()


@pytest.fixture(scope="module")
def site(build_book) -> Path:
    """The HTML book, built warning-free from the committed outputs."""
    return build_book("html")


def page(site: Path, chapter: Path) -> str:
    return (site / "notebooks" / f"{chapter.stem}.html").read_text()


def test_math_comes_from_the_books_own_files(site):
    scripts = set()
    for path in site.rglob("*.html"):
        scripts |= set(re.findall(r'<script[^>]* src="([^"]+)"', path.read_text()))
    assert not [s for s in scripts if "//" in s], "a page loads a script from another site"
    for chapter in CHAPTERS:
        assert '<script defer="defer" src="../_static/mathjax/tex-chtml.js">' in page(site, chapter)
    assert (site / "_static" / "mathjax" / "tex-chtml.js").stat().st_size > 100_000
    # the fonts MathJax's HTML output loads, relative to its script
    assert list((site / "_static" / "mathjax" / "output" / "chtml" / "fonts").rglob("*.woff"))


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_each_chapter_shows_its_measured_cost_under_its_title(site, chapter):
    runs = json.loads((ROOT / "book" / "results.json").read_text())["runs"]
    text = html.unescape(re.sub(r"<[^>]+>", "", page(site, chapter)))
    expected = cost_text(runs, chapter.name)
    assert re.search(r"\d+ s and \d+\.\d GiB of memory \(.+, \d+ threads\)", expected)
    title = nbformat.read(chapter, as_version=4).cells[0].source.splitlines()[0].lstrip("# ")
    assert re.search(re.escape(title) + r"[^\w]*\s*" + re.escape(expected), text)


def test_the_cost_names_each_profile_measured():
    quick = {"profile": "quick", "machine": "CPU, 2 threads",
             "notebooks": [{"notebook": "gan.ipynb", "seconds": 69.4, "peak_mib": 847}]}
    full = {"profile": "full", "machine": "NVIDIA H100", "notebooks": [
        {"notebook": "gan.ipynb", "seconds": 41.2, "peak_mib": 3072}]}  # fmt: skip
    assert cost_text([quick], "gan.ipynb") == (
        "Running this chapter: under the quick profile, 69 s and 0.8 GiB of memory (CPU, 2 "
        "threads); under the full profile, not yet measured on a GPU")
    assert cost_text([quick, full], "gan.ipynb").endswith(
        "under the full profile, 41 s and 3.0 GiB of memory (NVIDIA H100)")
    assert cost_text([quick], "vae.ipynb").startswith(
        "Running this chapter: under the quick profile, not yet measured on the CPU")


def test_each_chapter_offers_its_notebook_and_the_student_edition(site):
    for chapter in CHAPTERS:
        links = re.findall(r'href="([^"]+)"', page(site, chapter))
        assert f"../_sources/notebooks/{chapter.name}" in links
        assert f"../_static/{STUDENT_ZIP}" in links
        source = nbformat.read(site / "_sources" / "notebooks" / chapter.name, as_version=4)
        assert source.cells[0].source == nbformat.read(chapter, as_version=4).cells[0].source
    with zipfile.ZipFile(site / "_static" / STUDENT_ZIP) as archive:
        names = sorted(archive.namelist())
        assert names == sorted(f"student/{chapter.name}" for chapter in CHAPTERS)
        vae = nbformat.reads(archive.read("student/vae.ipynb").decode(), as_version=4)
    code = [cell for cell in vae.cells if cell.cell_type == "code"]
    assert not any(cell.outputs for cell in code)  # cleared
    assert any("raise NotImplementedError()" in cell.source for cell in code)  # stubbed

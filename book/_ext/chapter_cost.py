"""A Sphinx extension: under each chapter's title, what running it costs, and its downloads.

The cost is read from ``book/results.json`` (written by ``make bench``) when the book is built,
never typed by hand: the seconds and peak memory of executing the chapter under the ``quick``
profile on the CPU, and under ``full`` where a GPU run is recorded. The line also links the
chapter's notebook (the page's source, which Sphinx copies to ``_sources/``) and the student
edition of every chapter as one zip (what ``make student`` writes), built with the HTML.
"""

from __future__ import annotations

import json
import tempfile
import zipfile
from pathlib import Path

from docutils import nodes
from sphinx import addnodes

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "book" / "results.json"
STUDENT_ZIP = "student-edition.zip"  # in the built book's _static/


def _measured(run: dict, notebook: str) -> str | None:
    """'67 s and 1.4 GiB of memory (AMD EPYC, 2 threads)' for ``notebook`` in ``run``, or None."""
    row = next((n for n in run.get("notebooks", []) if n["notebook"] == notebook), None)
    if row is None:
        return None
    memory = row["peak_mib"] / 1024
    return f"{row['seconds']:.0f} s and {memory:.1f} GiB of memory ({run['machine']})"


def cost_text(runs: list[dict], notebook: str) -> str:
    """The cost of running ``notebook`` (e.g. ``"vae.ipynb"``) under each profile measured."""
    parts = []
    for profile, where in (("quick", "the CPU"), ("full", "a GPU")):
        measured = [m for run in runs if run["profile"] == profile
                    if (m := _measured(run, notebook))]  # fmt: skip
        parts.append(f"under the {profile} profile, "
                     + (measured[0] if measured else f"not yet measured on {where}"))  # fmt: skip
    return "Running this chapter: " + "; ".join(parts)


def cost_line(docname: str, runs: list[dict], site: str | None = None) -> nodes.paragraph:
    """The paragraph put under the title of the chapter ``docname`` (e.g. ``notebooks/vae``);
    its downloads link into the book beside the page, or into ``site`` (the published book, for
    the PDF edition)."""
    up = site or "../" * docname.count("/")
    line = nodes.paragraph(classes=["chapter-cost"])
    line += nodes.emphasis(text=cost_text(runs, f"{Path(docname).name}.ipynb"))
    results = addnodes.pending_xref("", refdomain="std", reftype="doc", refexplicit=True,
                                    reftarget="/book/results", refdoc=docname)  # fmt: skip
    results += nodes.inline(text="Results")
    line += [nodes.emphasis(text="; see "), nodes.emphasis("", "", results), nodes.Text(". ")]
    line += nodes.Text("Download: ")
    line += nodes.reference(text="this notebook", refuri=f"{up}_sources/{docname}.ipynb")
    line += nodes.Text(", or ")
    line += nodes.reference(text="every chapter, student edition (zip)",
                            refuri=f"{up}_static/{STUDENT_ZIP}")  # fmt: skip
    line += nodes.Text(".")
    return line


def add_cost_line(app, doctree) -> None:
    """On every notebook page: the cost line right under its title."""
    docname = app.env.docname
    if not docname.startswith("notebooks/"):
        return
    title = next(iter(doctree.findall(nodes.title)), None)
    if title is None:
        return
    app.env.note_dependency(str(RESULTS))  # a new make bench rewrites the line
    runs = json.loads(RESULTS.read_text())["runs"] if RESULTS.is_file() else []
    site = None if app.builder.format == "html" else app.config.html_baseurl
    title.parent.insert(title.parent.index(title) + 1, cost_line(docname, runs, site))


def write_student_zip(app, exception) -> None:
    """After an HTML build: the student edition of every chapter, zipped into ``_static/``."""
    if exception is not None or app.builder.format != "html":
        return
    from genai_course.coursework import write_student_edition

    with tempfile.TemporaryDirectory() as tmp:
        written = write_student_edition(ROOT / "notebooks", tmp)
        target = Path(app.outdir) / "_static" / STUDENT_ZIP
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in written:
                archive.write(path, f"student/{Path(path).name}")


def setup(app) -> dict:
    app.connect("doctree-read", add_cost_line)
    app.connect("build-finished", write_student_zip)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

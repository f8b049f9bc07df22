"""A Sphinx extension: the PDF edition's structure, for the LaTeX builder only.

The online book keeps each exercise's solution collapsed under it and runs the self-check
quizzes in the page. On paper neither works, so in the PDF edition (``make pdf``):

- each chapter's quiz is printed, its questions with lettered answers where the interactive
  quiz stands, and its answers with their explanations in the appendix of solutions;
- the solutions of the exercises move to that appendix, grouped by chapter, the last chapter
  of the appendices (``pdf_appendices``, a part of ``_toc.yml``); each exercise keeps a line
  giving the page of its solution;
- the chapters of a numbered part of ``_toc.yml`` are numbered from 1, as online; those of the
  appendices are lettered; the other parts' chapters (getting started, back matter) carry no
  number.

Jupyter Book's LaTeX extension has by then made each part of ``_toc.yml`` a ``\\part`` (a
section whose ``docname`` is the part's caption); the commands inserted after each part's
title are defined in ``book/latex/genaibook.sty``.
"""

from __future__ import annotations

import json
import re
import string
from pathlib import Path

from docutils import nodes
from sphinx import addnodes
from sphinx.transforms.post_transforms import SphinxPostTransform
from sphinx_exercise.nodes import exercise_latex_number_reference

from genai_course.exercises import quiz

QUIZ_CALL = re.compile(r"display_quiz\(quiz\([\"'](\w+)[\"']\)\)")


def _with_docnames(node: nodes.Node, docname: str | None = None):
    """Each element under ``node`` in document order, with the document it came from in the book
    assembled into one tree (walked through ``children``: some transforms leave stale parents)."""
    for child in node.children:
        if isinstance(child, nodes.Element):
            inner = child["docname"] if isinstance(child, addnodes.start_of_file) else docname
            yield child, inner
            yield from _with_docnames(child, inner)


def printed_quiz(questions: list[dict]) -> tuple[nodes.Element, nodes.Element]:
    """The questions with lettered answers, and the answers with their explanations."""
    asked = nodes.enumerated_list(enumtype="arabic")
    answered = nodes.enumerated_list(enumtype="arabic")
    for question in questions:
        answers = nodes.enumerated_list(enumtype="loweralpha")
        answers += [nodes.list_item("", nodes.paragraph(text=a["answer"]))
                    for a in question["answers"]]  # fmt: skip
        asked += nodes.list_item("", nodes.paragraph(text=question["question"]), answers)
        right = [f"({letter}) {a['feedback']}"
                 for letter, a in zip(string.ascii_lowercase, question["answers"], strict=False)
                 if a["correct"]]  # fmt: skip
        answered += nodes.list_item("", nodes.paragraph(text=" ".join(right)))
    return asked, answered


def _pointer(label: str) -> nodes.raw:
    """The line left where a solution stood: the page it moved to."""
    return nodes.raw("", rf"\genaisolutionpointer{{{label}}}", format="latex")


def moved_coding_solution(cell: nodes.container, source: str) -> nodes.container:
    """The solution cell of a coding exercise as printed in the appendix: its section's title and
    its code, without nbgrader's solution markers."""
    label = f"genai-solution:{cell['cell_metadata']['nbgrader']['grade_id']}"
    code = "\n".join(line for line in source.splitlines()
                     if line.strip() not in ("### BEGIN SOLUTION", "### END SOLUTION"))  # fmt: skip
    title = cell.parent.next_node(nodes.title).astext()
    return nodes.container("", nodes.raw("", rf"\phantomsection\label{{{label}}}", format="latex"),
                           nodes.rubric(text=title),
                           nodes.literal_block(code, code, language="python"),
                           classes=["moved-solution"], label=label)  # fmt: skip


class PrintedCells(SphinxPostTransform):
    """Print each interactive quiz (its questions where it stood, its answers marked for the
    appendix) and mark each coding exercise's solution for the appendix. This runs before myst-nb
    picks each output's format (priority 4), which turns a quiz into ``<IPython...HTML object>``.
    """

    default_priority = 3
    builders = ("latex",)

    def run(self, **kwargs) -> None:
        sources: dict[str, list] = {}
        for cell, docname in list(_with_docnames(self.document)):
            if cell.get("nb_element") != "cell_code" or docname is None:
                continue
            if docname not in sources:
                notebook = Path(self.env.doc2path(docname))
                sources[docname] = (json.loads(notebook.read_text())["cells"]
                                    if notebook.suffix == ".ipynb" else [])  # fmt: skip
            source = "".join(sources[docname][cell["cell_index"]]["source"])
            if match := QUIZ_CALL.search(source):
                asked, answered = printed_quiz(quiz(match.group(1)))
                answers = nodes.container("", nodes.rubric(text="Self-check quiz"), answered,
                                          classes=["moved-solution"])  # fmt: skip
                cell.replace_self([asked, answers])
            elif cell["cell_metadata"].get("nbgrader", {}).get("solution"):
                moved = moved_coding_solution(cell, source)
                cell.replace_self([_pointer(moved["label"]), moved])


def _part_commands(app) -> dict[str, str]:
    """The LaTeX command inserted after the title of each part of ``_toc.yml``."""
    commands = {}
    for part in app.config.external_site_map.root.subtrees:
        if part.numbered:
            commands[part.caption] = r"\genainumberedpart"
        elif part.caption == app.config.pdf_appendices:
            commands[part.caption] = r"\genaiappendixpart"
        else:
            commands[part.caption] = r"\genaiunnumberedpart"
    return commands


def _solutions_chapter(app, tree: nodes.document) -> nodes.section:
    """Take every solution and quiz answer out of ``tree``, grouped by chapter into one."""
    chapter = nodes.section(ids=["solutions-to-the-exercises"])
    chapter += nodes.title(text="Solutions to the exercises")
    chapter += nodes.paragraph(text=(
        "The solutions of each chapter's exercises, and the answers to its self-check quiz. "
        "Online and in the notebooks, each solution is collapsed under its exercise."))  # fmt: skip
    by_chapter: dict[str, nodes.section] = {}
    found = [(n, docname) for n, docname in _with_docnames(tree)
             if n.tagname == "solution_node" or "moved-solution" in n["classes"]]  # fmt: skip
    for node, docname in found:
        if docname not in by_chapter:  # in the chapter's file, so that its references resolve
            by_chapter[docname] = nodes.section(ids=[f"solutions-{docname.replace('/', '-')}"])
            by_chapter[docname] += nodes.title(text=app.env.titles[docname].astext())
            chapter += addnodes.start_of_file("", by_chapter[docname], docname=docname)
        if node.tagname == "solution_node":
            exercise_doc = app.env.sphinx_exercise_registry[node["label"]].get("docname")
            node.replace_self(_pointer(f"{exercise_doc}:{node['label']}"))
        else:
            node.parent.remove(node)
        by_chapter[docname] += node
    return chapter


def _exercise_references(app, tree: nodes.document) -> None:
    """Point references to another chapter's exercise at the label sphinx-exercise writes for it
    (``exercise:<label>``; Sphinx's own would be undefined and print as "Exercise ??")."""
    registry = app.env.sphinx_exercise_registry
    for ref in list(tree.findall(addnodes.number_reference)):
        target = ref.get("refuri", "").rpartition("#")[2]
        if not isinstance(ref, exercise_latex_number_reference) and target in registry:
            ref.replace_self(exercise_latex_number_reference("", *ref.children, refid=target))


def arrange_edition(app, tree: nodes.document, docname: str) -> None:
    """Number the parts' chapters, gather the solutions into the appendices and resolve the
    references to other chapters' exercises."""
    if app.builder.name != "latex":
        return
    _exercise_references(app, tree)
    for table in tree.findall(nodes.table):  # columns that wrap, rows that go on to the next page
        table["classes"] = [c for c in table["classes"] if c != "colwidths-auto"]
        table["classes"].append("colwidths-given")
        if len(list(table.findall(nodes.row))) > 10:
            table["classes"].append("longtable")
    commands = _part_commands(app)
    parts = {section["docname"]: section for section in tree.findall(nodes.section)
             if section.get("docname") in commands}  # fmt: skip
    for caption, section in parts.items():
        section.insert(1, nodes.raw("", commands[caption], format="latex"))
    appendices = parts.get(app.config.pdf_appendices)
    if appendices is None:
        raise ValueError(f"pdf_appendices: no part of _toc.yml is called "
                         f"{app.config.pdf_appendices!r}; the parts are {', '.join(commands)}")
    appendices += _solutions_chapter(app, tree)


def online_numbers(app) -> None:
    """Number exercises, figures and equations per chapter (Exercise 8.1), as the online book
    does; Jupyter Book's LaTeX extension sets per section (Exercise 8.6.1)."""
    if app.builder.name == "latex":
        app.config.numfig_secnum_depth = 1


def setup(app):
    app.add_config_value("pdf_appendices", "Appendices", "env")
    app.connect("builder-inited", online_numbers, priority=600)
    app.add_post_transform(PrintedCells)
    app.connect("doctree-resolved", arrange_edition)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

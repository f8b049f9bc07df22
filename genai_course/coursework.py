"""The student edition and the grader: ``make student`` and ``make grade``.

The chapter notebooks are the instructor's edition. Their graded exercises
follow nbgrader's conventions: the solution sits between ``### BEGIN SOLUTION``
and ``### END SOLUTION`` in a cell whose metadata marks it a solution cell, and
the cell after it, marked a locked grade cell worth some points, asserts
``genai_course.exercises.check``. So nbgrader (``generate_assignment``,
``autograde``) works on them, and for a quick grade without nbgrader's course
directory and gradebook:

- :func:`student_edition` applies nbgrader's own ``ClearSolutions`` and
  ``ClearOutput`` preprocessors (every solution becomes ``raise
  NotImplementedError()``, every output goes) and also drops the collapsed
  solutions of the prose exercises (``{solution}`` blocks);
- :func:`grade` executes a notebook in a fresh kernel and scores each grade
  cell: its points if it ran without an error, else 0. Given the instructor's
  notebook, it first puts back the original grading cells (as nbgrader's
  autograder does), so a submission cannot pass by editing them.

    python -m genai_course.coursework student [notebooks] [student]
    python -m genai_course.coursework nbgrader-source notebooks/vae.ipynb source/ps6/vae.ipynb
    python -m genai_course.coursework grade path/to/notebook.ipynb [notebooks/instructor.ipynb]
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbgrader.preprocessors import ClearOutput, ClearSolutions

# a MyST solution block, ```{solution} ... ``` (or with more backticks), to its closing fence
SOLUTION_BLOCK = re.compile(r"^(`{3,})\{solution\}.*?^\1[ \t]*$\n?", re.MULTILINE | re.DOTALL)


def _nbgrader(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def student_edition(
    source: str | Path, target: str | Path, *, keep_code_solutions: bool = False
) -> Path:
    """Write the student edition of the notebook ``source`` to ``target``.

    ``keep_code_solutions=True`` removes only the prose solutions (and the
    outputs), keeping the code solutions and their markers: the source that
    nbgrader's ``generate_assignment`` expects, which strips code solutions
    itself but not the prose ones."""
    source, target = Path(source), Path(target)
    if source.suffix != ".ipynb" or not source.is_file():
        raise ValueError(f"source must be an existing .ipynb notebook, got {source}")
    nb = nbformat.read(source, as_version=4)
    resources = {"language": "python"}
    if not keep_code_solutions:
        nb, resources = ClearSolutions().preprocess(nb, resources)
    nb, resources = ClearOutput().preprocess(nb, resources)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = SOLUTION_BLOCK.sub("", cell.source)
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, target)
    return target


def write_student_edition(source_dir: str | Path, target_dir: str | Path) -> list[Path]:
    """The student edition of every notebook in ``source_dir``, written to ``target_dir``."""
    sources = sorted(Path(source_dir).glob("*.ipynb"))
    if not sources:
        raise ValueError(f"source_dir {source_dir} holds no .ipynb notebooks")
    return [student_edition(path, Path(target_dir) / path.name) for path in sources]


@dataclass
class Grade:
    """One grade cell's result."""

    grade_id: str
    points: float
    score: float
    message: str  # "passed", or the first line the cell printed (check's verdict) or its error


def _grade_cells(nb) -> dict[str, nbformat.NotebookNode]:
    return {
        _nbgrader(c)["grade_id"]: c
        for c in nb.cells
        if c.cell_type == "code" and _nbgrader(c).get("grade")
    }


def grade(
    path: str | Path, reference: str | Path | None = None, timeout: int = 1800
) -> list[Grade]:
    """Execute the notebook ``path`` in a fresh kernel and score its grade cells.

    With ``reference`` (the instructor's notebook), the grading cells of
    ``path`` are first replaced by the reference's, matched by ``grade_id``,
    and a grading cell missing from ``path`` scores 0."""
    path = Path(path)
    for name, value in (("path", path), ("reference", reference)):
        if value is not None and (Path(value).suffix != ".ipynb" or not Path(value).is_file()):
            raise ValueError(f"{name} must be an existing .ipynb notebook, got {value}")
    nb = nbformat.read(path, as_version=4)
    missing = {}
    if reference is not None:
        originals = _grade_cells(nbformat.read(reference, as_version=4))
        submitted = _grade_cells(nb)
        for grade_id, cell in submitted.items():
            if grade_id in originals:
                cell.source = originals[grade_id].source
        missing = {k: c for k, c in originals.items() if k not in submitted}
    if not _grade_cells(nb) and not missing:
        raise ValueError(f"{path} has no grade cells (nbgrader metadata grade: true)")
    client = NotebookClient(
        nb, timeout=timeout, allow_errors=True, resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute()
    grades = []
    for cell in nb.cells:
        meta = _nbgrader(cell)
        if cell.cell_type != "code" or not meta.get("grade"):
            continue
        outputs = cell.get("outputs", [])
        errors = [out for out in outputs if out.get("output_type") == "error"]
        printed = "".join(
            out.get("text", "") for out in outputs if out.get("output_type") == "stream"
        )
        if not errors:
            message = "passed"
        elif printed.strip():  # check's verdict says more than a bare AssertionError
            verdict = printed.strip().splitlines()[0]  # "✗ vae.gaussian_kl: what differs."
            message = verdict.split(": ", 1)[1] if verdict.startswith("✗ ") else verdict
        else:
            message = f"{errors[0]['ename']}: {errors[0]['evalue']}"
        points = float(meta.get("points", 0))
        grades.append(Grade(meta["grade_id"], points, 0.0 if errors else points, message))
    for grade_id, cell in missing.items():
        points = float(_nbgrader(cell).get("points", 0))
        grades.append(Grade(grade_id, points, 0.0, "the grading cell is missing from the notebook"))
    return grades


def print_grades(grades: list[Grade], name: str) -> None:
    """The score table of one notebook."""
    print(f"{name}")
    print(f"{'exercise':<34}{'score':>8}  result")
    for g in grades:
        message = g.message.splitlines()[0] if g.message else ""
        print(f"{g.grade_id:<34}{g.score:>4g} / {g.points:<3g}{message[:72]}")
    total, most = sum(g.score for g in grades), sum(g.points for g in grades)
    print(f"{'total':<34}{total:>4g} / {most:<3g}")


def main(argv: list[str]) -> None:
    usage = (
        "usage: python -m genai_course.coursework student [SOURCE_DIR [TARGET_DIR]]\n"
        "       python -m genai_course.coursework nbgrader-source NOTEBOOK TARGET\n"
        "       python -m genai_course.coursework grade NOTEBOOK [INSTRUCTOR_NOTEBOOK]"
    )
    if argv[:1] == ["student"] and len(argv) <= 3:
        source, target = (argv[1:] + ["notebooks", "student"][len(argv) - 1 :])[:2]
        written = write_student_edition(source, target)
        print(f"wrote the student edition of {len(written)} notebooks to {target}/")
    elif argv[:1] == ["nbgrader-source"] and len(argv) == 3:
        print(f"wrote {student_edition(argv[1], argv[2], keep_code_solutions=True)}")
    elif argv[:1] == ["grade"] and len(argv) in (2, 3):
        print_grades(grade(*argv[1:]), argv[1])
    else:
        sys.exit(usage)


if __name__ == "__main__":
    main(sys.argv[1:])

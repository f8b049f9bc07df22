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
- :func:`grade` runs a submission the way ``nbgrader autograde`` does, with
  nbgrader's own preprocessors: the grade ids, points, grading cells and kernel
  come from the instructor's notebook, never from the submission, and each cell
  has a time limit; a cell that loops or kills the kernel scores 0 and the rest
  of the notebook is still graded. :func:`find_reference` finds the
  instructor's notebook of a submission by its grade ids.

    python -m genai_course.coursework student [notebooks] [student]
    python -m genai_course.coursework nbgrader-source notebooks/vae.ipynb source/ps6/vae.ipynb
    python -m genai_course.coursework grade NOTEBOOK [INSTRUCTOR_NOTEBOOK] [--timeout SECONDS]
"""

from __future__ import annotations

import argparse
import copy
import re
import sqlite3
import sys
import tempfile
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbgrader.api import Gradebook
from nbgrader.preprocessors import (
    ClearOutput,
    ClearSolutions,
    ComputeChecksums,
    DeduplicateIds,
    Execute,
    OverwriteCells,
    OverwriteKernelspec,
    SaveCells,
)
from nbgrader.utils import determine_grade

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


# -- grading ----------------------------------------------------------------------------------

KERNEL = "python3"  # the course's kernel: Jupyter's python3 of the grading environment
TIMEOUT = 600  # seconds a cell may run; the quick profile's longest cell takes about 45 s
RESTARTS = 3  # fresh kernels after cells that kill it or ignore the interrupt; then grading stops
# the first line of every grading cell that runs, so that it calls the package's check even
# when the submission defined its own `check` in an earlier cell
CHECK_IMPORT = "from genai_course.exercises import check  # put here by the grader\n"


@dataclass
class Grade:
    """One grade cell's result."""

    grade_id: str
    points: float
    score: float
    message: str  # "passed", or check's verdict, the cell's error, or why it did not run


def _grade_ids(nb) -> set[str]:
    return {_nbgrader(cell)["grade_id"] for cell in nb.cells if _nbgrader(cell).get("grade_id")}


def _require_notebook(name: str, value: str | Path) -> Path:
    if Path(value).suffix != ".ipynb" or not Path(value).is_file():
        raise ValueError(f"{name} must be an existing .ipynb notebook, got {value}")
    return Path(value)


def find_reference(path: str | Path, notebooks: str | Path = "notebooks") -> Path:
    """The instructor's notebook of the submission ``path``: the notebook in the
    folder ``notebooks`` that shares the most nbgrader grade ids with it.

    Raises ``ValueError`` when none shares one, or several share as many, so that
    a renamed submission is never graded without its reference."""
    ids = _grade_ids(nbformat.read(_require_notebook("path", path), as_version=4))
    shared = {
        candidate: len(ids & _grade_ids(nbformat.read(candidate, as_version=4)))
        for candidate in sorted(Path(notebooks).glob("*.ipynb"))
    }
    most = max(shared.values(), default=0)
    best = [candidate for candidate, count in shared.items() if count == most]
    name_it = f"name the instructor's notebook: make grade NB={path} REF={notebooks}/CHAPTER.ipynb"
    if most == 0:
        raise ValueError(f"no notebook in {notebooks}/ shares a grade id with {path}; {name_it}")
    if len(best) > 1:
        tied = ", ".join(str(candidate) for candidate in best)
        raise ValueError(f"{path} shares {most} grade ids with each of {tied}; {name_it}")
    return best[0]


def _sanitize(nb, reference) -> None:
    """nbgrader autograde's sanitizing of the submission ``nb``, in place, against ``reference``.

    First every cell's nbgrader metadata becomes the reference's cell's of the same
    grade id, and a cell whose grade id the reference lacks (or whose metadata is
    unreadable) becomes an ordinary cell. This is stricter than nbgrader, whose
    ``OverwriteCells`` puts back the points and the lock but keeps the submitted
    ``grade`` and ``solution`` flags, and whose ``CheckCellMetadata`` rejects the
    whole notebook for an unknown id; and it spares nbgrader's preprocessors
    metadata they cannot read (a grade cell without an id or points stops them).
    Then nbgrader's own preprocessors, in autograde's order: ``ClearOutput``;
    ``DeduplicateIds`` (of the cells that share a grade id, only the last keeps
    its nbgrader metadata); ``OverwriteKernelspec`` (the reference's kernelspec);
    ``OverwriteCells`` (each cell's type, and a locked cell's source, from the
    reference). The last two read the reference from a gradebook database, so a
    throwaway one is filled from ``reference`` by ``ComputeChecksums`` and
    ``SaveCells``, as ``nbgrader generate_assignment`` fills the course's."""
    known = {meta["grade_id"]: meta for meta in map(_nbgrader, reference.cells) if meta}
    for cell in nb.cells:
        meta = cell.get("metadata", {}).pop("nbgrader", None)
        grade_id = meta.get("grade_id") if isinstance(meta, dict) else None
        if isinstance(grade_id, str) and grade_id in known:
            cell.metadata.nbgrader = copy.deepcopy(known[grade_id])
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "gradebook.db"
        # a table in the file tells Gradebook that the database exists, so it does not run
        # the `alembic` command to stamp a schema version (a throwaway one is never migrated)
        with closing(sqlite3.connect(db)) as connection:
            connection.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
        ids = {"notebook": "submission", "assignment": "grading", "db_url": f"sqlite:///{db}"}
        resources = {"nbgrader": ids}
        with Gradebook(ids["db_url"]) as gradebook:
            gradebook.add_assignment(ids["assignment"])
        source = copy.deepcopy(reference)
        for step in (ComputeChecksums(), SaveCells()):
            source, resources = step.preprocess(source, resources)
        for step in (ClearOutput(), DeduplicateIds(), OverwriteKernelspec(), OverwriteCells()):
            nb, resources = step.preprocess(nb, resources)


def _error(ename: str, evalue: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_output("error", ename=ename, evalue=evalue, traceback=[])


class _Execute(Execute):
    """nbgrader's ``Execute`` (a cell past ``timeout`` is interrupted, gets a
    ``CellTimeoutError`` and the run goes on) that also survives a cell that kills
    the kernel, or ignores the interrupt: that cell gets the error, and the notebook
    runs again from the start in a fresh kernel, without the cells that broke or
    timed out, so the later cells see the state that they would have if those
    cells were deleted. The cell blamed is the one running when the kernel died
    (a kernel killed later, by a timer, blames a later cell). After ``RESTARTS``
    fresh kernels the cells left are not run, and each gets an error. (nbgrader
    stops grading the notebook at a dead kernel.)"""

    def __init__(self, **kwargs):
        kwargs.setdefault("shutdown_kernel", "immediate")  # a kernel that may ignore a request
        super().__init__(**kwargs)

    def preprocess(self, nb, resources=None, km=None):
        self.broken: set[int] = set()  # the cells not to run again: they broke or timed out
        for _ in range(RESTARTS + 1):
            self.running = None  # the index of the cell being run
            try:
                return super().preprocess(nb, resources, km)
            except (DeadKernelError, CellTimeoutError) as error:
                if self.running is None:  # the kernel failed outside any cell
                    raise
                self.broken.add(self.running)
                what = "died" if isinstance(error, DeadKernelError) else "ignored the interrupt"
                nb.cells[self.running].outputs.append(
                    _error(
                        type(error).__name__,
                        f"the kernel {what} in this cell; the notebook ran "
                        "again in a fresh kernel without it",
                    )
                )
        for cell in nb.cells[self.running + 1 :]:
            if cell.cell_type == "code":
                cell.outputs = [
                    _error("NotRun", f"not run: the kernel failed {RESTARTS + 1} times")
                ]
        return nb, self.resources

    def preprocess_cell(self, cell, resources, index):
        if index in self.broken:
            return cell, self.resources  # it keeps the error it got
        self.running = index
        return super().preprocess_cell(cell, resources, index)

    def on_cell_executed(self, **kwargs):
        super().on_cell_executed(**kwargs)
        if kwargs["execute_reply"]["content"].get("ename") == self.error_on_timeout["ename"]:
            self.broken.add(kwargs["cell_index"])


def _verdict(outputs) -> str:
    """Why a grading cell did not earn its points: check's verdict, else its error."""
    printed = "".join(o.get("text", "") for o in outputs if o.get("name") == "stdout")
    verdicts = [line for line in printed.splitlines() if line.startswith("✗ ")]
    if verdicts:  # "✗ vae.gaussian_kl: what differs."
        return verdicts[0].split(": ", 1)[-1]
    errors = [out for out in outputs if out.get("output_type") == "error"]
    if errors:
        return f"{errors[-1]['ename']}: {errors[-1]['evalue']}".rstrip(": ")
    stderr = "".join(o.get("text", "") for o in outputs if o.get("name") == "stderr").strip()
    return f"wrote to stderr: {stderr.splitlines()[0]}" if stderr else "no score"


def _score(meta: dict, cell) -> Grade:
    """nbgrader's score of a grade cell (``nbgrader.utils.determine_grade``): 0 if it
    raised an error or wrote to stderr, else its points (or the fraction it returned)."""
    points = float(meta["points"])
    if cell is None:
        return Grade(meta["grade_id"], points, 0.0, "the grading cell is missing from the notebook")
    score = float(determine_grade(cell)[0] or 0)  # None: left to a human grader
    return Grade(
        meta["grade_id"], points, score, "passed" if score == points else _verdict(cell.outputs)
    )


def grade(path: str | Path, reference: str | Path, *, timeout: int = TIMEOUT) -> list[Grade]:
    """Run the submission ``path`` as ``nbgrader autograde`` would, and score it
    against ``reference``, the instructor's notebook: one :class:`Grade` for each
    of the reference's grade cells, in its order.

    The grade ids, points and grading-cell sources are the reference's, and so is
    the kernel (``KERNEL``); a grade cell of ``path`` that the reference lacks
    scores nothing, and of several cells that share a grade id only the last counts
    (see :func:`_sanitize`). Every grading cell starts with ``CHECK_IMPORT``. Each
    cell may run ``timeout`` seconds; a cell that errs, loops or kills the kernel
    scores 0 if it is a grading cell, and the rest is still graded (see
    :class:`_Execute`). The code runs in the submission's kernel, with the grader's
    rights: grade in a container."""
    path, reference = _require_notebook("path", path), _require_notebook("reference", reference)
    nb, original = (nbformat.read(p, as_version=4) for p in (path, reference))
    graded = [_nbgrader(cell) for cell in original.cells if _nbgrader(cell).get("grade")]
    if not graded:
        raise ValueError(
            f"reference {reference} has no grade cells (nbgrader metadata grade: true)"
        )
    _sanitize(nb, original)
    for cell in nb.cells:
        if _nbgrader(cell).get("grade") and cell.cell_type == "code":
            cell.source = CHECK_IMPORT + cell.source
    on_timeout = f"the cell ran longer than {timeout} s and was interrupted"
    executor = _Execute(
        timeout=timeout,
        kernel_name=KERNEL,
        error_on_timeout={
            "ename": "CellTimeoutError",
            "evalue": on_timeout,
            "traceback": [on_timeout],
        },
    )
    executor.preprocess(nb, {"metadata": {"path": str(path.parent)}})
    cells = {_nbgrader(cell)["grade_id"]: cell for cell in nb.cells if _nbgrader(cell).get("grade")}
    return [_score(meta, cells.get(meta["grade_id"])) for meta in graded]


def print_grades(grades: list[Grade], name: str) -> None:
    """The score table of one notebook."""
    print(f"{name}")
    print(f"{'exercise':<34}{'score':>8}  result")
    for g in grades:
        message = g.message.splitlines()[0] if g.message else ""
        print(f"{g.grade_id:<34}{g.score:>4g} / {g.points:<3g}{message[:72]}")
    total, most = sum(g.score for g in grades), sum(g.points for g in grades)
    print(f"{'total':<34}{total:>4g} / {most:<3g}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m genai_course.coursework")
    commands = parser.add_subparsers(dest="command", required=True)
    student = commands.add_parser("student", help="write the student edition of every notebook")
    student.add_argument("source_dir", nargs="?", default="notebooks")
    student.add_argument("target_dir", nargs="?", default="student")
    source = commands.add_parser("nbgrader-source", help="a notebook for nbgrader's source/")
    source.add_argument("notebook")
    source.add_argument("target")
    grading = commands.add_parser("grade", help="run a submission and print its score table")
    grading.add_argument("notebook")
    grading.add_argument(
        "reference",
        nargs="?",
        help="the instructor's notebook (default: the one in --notebooks sharing its grade ids)",
    )
    grading.add_argument("--notebooks", default="notebooks", help="the instructor's notebooks")
    grading.add_argument("--timeout", type=int, default=TIMEOUT, help="seconds a cell may run")
    return parser


def main(argv: list[str]) -> None:
    args = _parser().parse_args(argv)
    try:
        if args.command == "student":
            written = write_student_edition(args.source_dir, args.target_dir)
            print(f"wrote the student edition of {len(written)} notebooks to {args.target_dir}/")
        elif args.command == "nbgrader-source":
            print(f"wrote {student_edition(args.notebook, args.target, keep_code_solutions=True)}")
        else:
            reference = args.reference or find_reference(args.notebook, args.notebooks)
            grades = grade(args.notebook, reference, timeout=args.timeout)
            print_grades(grades, f"{args.notebook}, graded against {reference}")
    except ValueError as error:
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    main(sys.argv[1:])

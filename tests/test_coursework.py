import math
import re
from pathlib import Path

import nbformat
import pytest
import torch

from genai_course.coursework import _nbgrader, grade, student_edition, write_student_edition
from genai_course.exercises import EXERCISES, check

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))
FAST = next(path for path in NOTEBOOKS if path.name == "distributions.ipynb")  # about 10 s


def _solutions(nb) -> list[list[str]]:
    """The lines between the solution markers of every solution cell."""
    bodies = []
    for cell in nb.cells:
        if _nbgrader(cell).get("solution"):
            inside = re.search(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", cell.source, re.DOTALL)
            bodies.append([line.strip() for line in inside.group(1).splitlines() if line.strip()])
    return bodies


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_chapter_has_graded_exercises_in_nbgrader_form(path):
    nb = nbformat.read(path, as_version=4)
    grade_cells = [cell for cell in nb.cells if _nbgrader(cell).get("grade")]
    assert len(grade_cells) >= 2
    for index, cell in enumerate(nb.cells):
        meta = _nbgrader(cell)
        if meta.get("grade"):  # a locked grade cell with points, right after its solution cell
            assert meta["locked"] and meta["points"] > 0 and meta["schema_version"] == 3
            assert _nbgrader(nb.cells[index - 1]).get("solution")
            exercise_id, name = re.search(r'check\("([^"]+)", (\w+)\)', cell.source).groups()
            assert exercise_id in EXERCISES
            assert f"def {name}(" in nb.cells[index - 1].source
    ids = [_nbgrader(cell)["grade_id"] for cell in nb.cells if _nbgrader(cell)]
    assert len(ids) == len(set(ids))
    assert all(grade_id.startswith(f"{path.stem}_") for grade_id in ids), ids  # by subject
    # and prose exercises with hidden solutions
    prose = "".join(cell.source for cell in nb.cells if cell.cell_type == "markdown")
    assert prose.count("{exercise}") >= 3 and prose.count("{solution}") >= 3


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_book_solutions_pass_check_on_many_inputs(path, capsys):
    nb = nbformat.read(path, as_version=4)
    namespace = {"torch": torch, "math": math}  # one namespace, as in the notebook
    for index, cell in enumerate(nb.cells):
        if not _nbgrader(cell).get("solution"):
            continue
        grading = nb.cells[index + 1].source
        exercise_id, name = re.search(r'check\("([^"]+)", (\w+)\)', grading).groups()
        exec(cell.source, namespace)  # the solution cell defines the function the grader checks
        assert name in namespace, (path.name, name)
        for seed in range(5):
            assert check(exercise_id, namespace[name], seed=seed), capsys.readouterr().out


def test_the_nbgrader_source_keeps_code_solutions_and_drops_prose_ones(tmp_path):
    out = student_edition(FAST, tmp_path / FAST.name, keep_code_solutions=True)
    text = "\n".join(cell.source for cell in nbformat.read(out, as_version=4).cells)
    assert text.count("### BEGIN SOLUTION") == 2 and "{solution}" not in text


def test_the_student_edition_has_stubs_and_no_solution_text(tmp_path):
    written = write_student_edition(NOTEBOOKS[0].parent, tmp_path)
    assert [p.name for p in written] == [p.name for p in NOTEBOOKS]
    for source, student in zip(NOTEBOOKS, written, strict=True):
        original = nbformat.read(source, as_version=4)
        nb = nbformat.read(student, as_version=4)
        text = "\n".join(cell.source for cell in nb.cells)
        assert "BEGIN SOLUTION" not in text and "{solution}" not in text
        elsewhere = "\n".join(c.source for c in original.cells if not _nbgrader(c).get("solution"))
        for body in _solutions(original):
            leaked = [line for line in body if line in text and line not in elsewhere]
            assert not leaked, (source.name, leaked)
        stubs = [cell for cell in nb.cells if _nbgrader(cell).get("solution")]
        assert stubs and all("raise NotImplementedError()" in cell.source for cell in stubs)
        assert all(not cell.get("outputs") for cell in nb.cells if cell.cell_type == "code")
        # the rest of the chapter is untouched
        assert len(nb.cells) == len(original.cells)


def test_grading_gives_full_marks_to_the_book_and_zero_to_the_student_edition(tmp_path):
    book = grade(FAST)
    assert book and all(g.score == g.points > 0 for g in book)
    student = grade(student_edition(FAST, tmp_path / FAST.name))
    assert [g.grade_id for g in student] == [g.grade_id for g in book]
    assert all(g.score == 0 and "not implemented yet" in g.message for g in student)


def _tiny_assignment(grading_source: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    solution = nbformat.v4.new_code_cell(
        "def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION"
    )
    solution.metadata["nbgrader"] = {"solution": True, "grade": False, "grade_id": "f_sol"}
    grading = nbformat.v4.new_code_cell(grading_source)
    grading.metadata["nbgrader"] = {"grade": True, "grade_id": "f", "points": 2, "locked": True}
    nb.cells = [solution, grading]
    return nb


def test_edited_grading_cells_are_restored_from_the_instructors_notebook(tmp_path):
    nbformat.write(_tiny_assignment("assert f() == 1"), tmp_path / "book.ipynb")
    student = student_edition(tmp_path / "book.ipynb", tmp_path / "student.ipynb")
    tampered = nbformat.read(student, as_version=4)
    tampered.cells[1].source = "pass  # the assert removed"
    nbformat.write(tampered, tmp_path / "tampered.ipynb")
    assert [g.score for g in grade(tmp_path / "tampered.ipynb")] == [2.0]  # fooled without it
    restored = grade(tmp_path / "tampered.ipynb", tmp_path / "book.ipynb")
    assert [(g.score, g.points) for g in restored] == [(0.0, 2.0)]
    tampered.cells = tampered.cells[:1]  # the grading cell deleted
    nbformat.write(tampered, tmp_path / "deleted.ipynb")
    (missing,) = grade(tmp_path / "deleted.ipynb", tmp_path / "book.ipynb")
    assert missing.score == 0 and "missing" in missing.message


def test_bad_paths_are_named(tmp_path):
    with pytest.raises(ValueError, match="source must be an existing .ipynb notebook"):
        student_edition(tmp_path / "missing.ipynb", tmp_path / "out.ipynb")
    with pytest.raises(ValueError, match="path must be an existing .ipynb notebook"):
        grade(tmp_path / "notes.txt")
    with pytest.raises(ValueError, match="reference must be an existing .ipynb notebook"):
        grade(FAST, tmp_path / "missing.ipynb")
    with pytest.raises(ValueError, match="holds no .ipynb notebooks"):
        write_student_edition(tmp_path, tmp_path / "student")


def test_the_instructors_page_lists_every_exercise():
    page = (Path(__file__).parent.parent / "book" / "instructors.md").read_text()
    assert [exercise_id for exercise_id in EXERCISES if f"`{exercise_id}`" not in page] == []

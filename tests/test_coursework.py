import re
from pathlib import Path

import nbformat
import pytest

from genai_course.coursework import grade, student_edition, write_student_edition
from genai_course.exercises import EXERCISES

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))
FAST = next(path for path in NOTEBOOKS if path.name == "01_distributions.ipynb")  # about 10 s


def _nbgrader(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


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
            exercise_id = re.search(r'check\("([^"]+)"', cell.source).group(1)
            assert exercise_id in EXERCISES
    ids = [_nbgrader(cell)["grade_id"] for cell in nb.cells if _nbgrader(cell)]
    assert len(ids) == len(set(ids))
    if path.stem[0].isdigit():  # the chapters also have prose exercises with hidden solutions
        prose = "".join(cell.source for cell in nb.cells if cell.cell_type == "markdown")
        assert prose.count("{exercise}") >= 3 and prose.count("{solution}") >= 3


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


def test_bad_paths_are_named(tmp_path):
    with pytest.raises(ValueError, match="source must be an existing .ipynb notebook"):
        student_edition(tmp_path / "missing.ipynb", tmp_path / "out.ipynb")
    with pytest.raises(ValueError, match="path must be an existing .ipynb notebook"):
        grade(tmp_path / "notes.txt")
    with pytest.raises(ValueError, match="holds no .ipynb notebooks"):
        write_student_edition(tmp_path, tmp_path / "student")


def test_the_instructors_page_lists_every_exercise():
    page = (Path(__file__).parent.parent / "book" / "instructors.md").read_text()
    assert [exercise_id for exercise_id in EXERCISES if f"`{exercise_id}`" not in page] == []

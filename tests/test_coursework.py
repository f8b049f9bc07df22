import copy
import math
import re
import textwrap
from pathlib import Path

import nbformat
import pytest
import torch

from genai_course import coursework
from genai_course.coursework import (
    Grade,
    _Execute,
    _nbgrader,
    find_reference,
    grade,
    main,
    student_edition,
    write_student_edition,
)
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
    book = grade(FAST, FAST)
    assert book and all(g.score == g.points > 0 for g in book)
    student = grade(student_edition(FAST, tmp_path / FAST.name), FAST)
    assert [g.grade_id for g in student] == [g.grade_id for g in book]
    assert all(g.score == 0 and "not implemented yet" in g.message for g in student)


# -- the grader against hostile submissions, on a tiny instructor's notebook -----------------

# (grade id, check id, points, the function and its solution): four exercises, checked in seconds
TINY = [
    ("tiny_bits_per_dim", "pipeline.bits_per_dim", 1,
     "my_bits_per_dim(nll_nats, num_dims)", "return nll_nats / (num_dims * math.log(2))"),
    ("tiny_image_log_likelihood", "pipeline.image_log_likelihood", 2,
     "my_image_log_likelihood(theta, x)",
     "return (x * torch.log(theta) + (1 - x) * torch.log1p(-theta)).sum(dim=-1)"),
    ("tiny_entropy", "cross_entropy.entropy", 1,
     "my_entropy(p)", "return torch.where(p > 0, -p * torch.log(p), torch.zeros_like(p)).sum()"),
    ("tiny_gaussian_mle", "likelihood.gaussian_mle", 1,
     "my_gaussian_mle(x)", "return x.mean(dim=0), ((x - x.mean(dim=0)) ** 2).mean(dim=0)"),
]  # fmt: skip
FULL_MARKS = [(grade_id, points, points) for grade_id, _, points, _, _ in TINY]


def _tiny_instructors_notebook() -> nbformat.NotebookNode:
    """Four graded exercises with the book's nbgrader metadata (see notebooks/pipeline.ipynb)."""
    nb = nbformat.v4.new_notebook()
    nb.metadata.kernelspec = {"display_name": "Python 3", "language": "python", "name": "python3"}
    imports = "import math\n\nimport torch\n\nfrom genai_course.exercises import check"
    nb.cells = [nbformat.v4.new_code_cell(imports)]
    common = {"schema_version": 3, "task": False}
    for grade_id, exercise_id, points, signature, body in TINY:
        solution = nbformat.v4.new_code_cell(
            f"def {signature}:\n    ### BEGIN SOLUTION\n    {body}\n    ### END SOLUTION"
        )
        solution.metadata.nbgrader = {
            "grade": False, "grade_id": f"{grade_id}_solution", "locked": False, "solution": True,
            **common,
        }  # fmt: skip
        name = signature.split("(")[0]
        grading = nbformat.v4.new_code_cell(
            f'# grading cell: {points} points\nassert check("{exercise_id}", {name})'
        )
        grading.metadata.nbgrader = {
            "grade": True, "grade_id": grade_id, "locked": True, "points": points,
            "solution": False, **common,
        }  # fmt: skip
        nb.cells += [solution, grading]
    return nb


@pytest.fixture(scope="module")
def instructor(tmp_path_factory) -> Path:
    """The tiny instructor's notebook, alone in its folder (like notebooks/)."""
    path = tmp_path_factory.mktemp("instructor") / "tiny.ipynb"
    nbformat.write(_tiny_instructors_notebook(), path)
    return path


def _cell(nb, grade_id: str) -> nbformat.NotebookNode:
    return next(cell for cell in nb.cells if _nbgrader(cell).get("grade_id") == grade_id)


def _answer(nb, grade_id: str, body: str) -> None:
    """The student's function of exercise ``grade_id`` becomes ``body``."""
    cell = _cell(nb, f"{grade_id}_solution")
    cell.source = cell.source.splitlines()[0] + "\n" + textwrap.indent(body, "    ")


def _table(grades) -> list[tuple[str, float, float]]:
    return [(g.grade_id, g.score, g.points) for g in grades]


def _graded(nb, tmp_path, instructor, **kwargs):
    nbformat.write(nb, tmp_path / "submission.ipynb")
    return grade(tmp_path / "submission.ipynb", instructor, **kwargs)


def test_points_grade_ids_grading_cells_and_kernel_come_from_the_instructors_notebook(
    tmp_path, instructor
):
    nb = nbformat.read(instructor, as_version=4)
    nb.metadata.kernelspec = {"name": "no-such-kernel", "display_name": "R", "language": "R"}
    # a wrong answer, its grading cell emptied and worth 100 points
    _answer(nb, "tiny_bits_per_dim", "return 0.0")
    _cell(nb, "tiny_bits_per_dim").source = "pass  # the assert removed"
    _cell(nb, "tiny_bits_per_dim").metadata.nbgrader["points"] = 100
    # a right answer, its grading cell three more times, each worth 10 points
    likelihood = _cell(nb, "tiny_image_log_likelihood")
    for _ in range(3):
        twin = nbformat.v4.new_code_cell("pass", metadata=copy.deepcopy(likelihood.metadata))
        twin.metadata.nbgrader["points"] = 10
        nb.cells.append(twin)
    # a wrong answer, and a check that passes everything, defined before its grading cell
    _answer(nb, "tiny_entropy", "return p.sum()")
    nb.cells.insert(1, nbformat.v4.new_code_cell("def check(*args, **kwargs):\n    return True"))
    # a right answer, its grading cell deleted
    nb.cells.remove(_cell(nb, "tiny_gaussian_mle"))
    # grade cells the instructor never wrote, one with metadata that nbgrader cannot read
    bonus, unreadable = nbformat.v4.new_code_cell("pass"), nbformat.v4.new_code_cell("pass")
    bonus.metadata.nbgrader = {**likelihood.metadata.nbgrader, "grade_id": "bonus", "points": 50}
    unreadable.metadata.nbgrader = {"grade": True, "points": "lots"}
    nb.cells += [bonus, unreadable]
    grades = _graded(nb, tmp_path, instructor)
    assert _table(grades) == [
        ("tiny_bits_per_dim", 0.0, 1),
        ("tiny_image_log_likelihood", 2.0, 2),
        ("tiny_entropy", 0.0, 1),
        ("tiny_gaussian_mle", 0.0, 1),
    ]
    assert [g.message for g in grades[:2]] == ["the result has wrong values.", "passed"]
    assert "missing" in grades[3].message


def test_cells_that_loop_or_kill_the_kernel_score_zero_and_the_rest_is_graded(tmp_path, instructor):
    nb = nbformat.read(instructor, as_version=4)
    _answer(nb, "tiny_bits_per_dim", "import os\nos._exit(1)")  # kills the kernel when checked
    _answer(nb, "tiny_image_log_likelihood", "while True:\n    pass")  # loops when checked
    grades = _graded(nb, tmp_path, instructor, timeout=12)
    # the others are graded: the notebook ran again without the cell that killed the kernel,
    # so their solutions have the first cell's imports
    assert _table(grades) == [
        ("tiny_bits_per_dim", 0.0, 1),
        ("tiny_image_log_likelihood", 0.0, 2),
        ("tiny_entropy", 1.0, 1),
        ("tiny_gaussian_mle", 1.0, 1),
    ]
    assert grades[0].message.startswith("DeadKernelError: the kernel died in this cell")
    assert (
        grades[1].message == "CellTimeoutError: the cell ran longer than 12 s and was interrupted"
    )


def test_an_uninterruptible_cell_is_stopped_and_the_notebook_runs_again_without_it():
    nb = nbformat.v4.new_notebook()
    loop = "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass"
    nb.cells = [nbformat.v4.new_code_cell(source) for source in ("x = 1", loop, "print(x + 1)")]
    _Execute(timeout=2, iopub_timeout=1, kernel_name="python3").preprocess(nb, {})
    assert nb.cells[1].outputs[-1].ename == "CellTimeoutError"
    assert "ignored the interrupt" in nb.cells[1].outputs[-1].evalue
    assert nb.cells[2].outputs[0].text == "2\n"


def test_make_grade_finds_a_renamed_submissions_notebook_by_its_grade_ids(
    tmp_path, instructor, monkeypatch, capsys
):
    renamed = tmp_path / "ada final (2).ipynb"
    renamed.write_bytes(instructor.read_bytes())
    assert find_reference(renamed, instructor.parent) == instructor
    graded = []  # what main asked grade for; grading itself is tested above

    def fake_grade(path, reference, *, timeout):
        graded.append((path, reference, timeout))
        return [Grade(grade_id, points, 0.5, "") for grade_id, _, points in FULL_MARKS]

    monkeypatch.setattr(coursework, "grade", fake_grade)
    main(["grade", str(renamed), "--notebooks", str(instructor.parent), "--timeout", "60"])
    assert graded == [(str(renamed), instructor, 60)]
    table = capsys.readouterr().out
    assert f"graded against {instructor}" in table
    assert re.search(r"^total\s+2 / 5\s*$", table, re.MULTILINE), table


def test_a_submission_without_its_instructors_notebook_is_refused(tmp_path, instructor):
    nb = nbformat.read(instructor, as_version=4)
    for cell in nb.cells:
        if _nbgrader(cell):
            cell.metadata.nbgrader["grade_id"] = "other_" + cell.metadata.nbgrader["grade_id"]
    nbformat.write(nb, tmp_path / "tiny.ipynb")  # the reference's name, none of its grade ids
    with pytest.raises(SystemExit, match="no notebook in .* shares a grade id"):
        main(["grade", str(tmp_path / "tiny.ipynb"), "--notebooks", str(instructor.parent)])
    twins = tmp_path / "twins"
    twins.mkdir()
    for name in ("a.ipynb", "b.ipynb"):
        (twins / name).write_bytes(instructor.read_bytes())
    with pytest.raises(ValueError, match="shares 8 grade ids with each of"):
        find_reference(instructor, twins)


def test_the_book_notebook_of_a_renamed_submission_is_found_by_its_grade_ids(tmp_path):
    for chapter in NOTEBOOKS:
        renamed = student_edition(chapter, tmp_path / "submission.ipynb")
        assert find_reference(renamed, chapter.parent) == chapter


def test_bad_paths_are_named(tmp_path):
    with pytest.raises(ValueError, match="source must be an existing .ipynb notebook"):
        student_edition(tmp_path / "missing.ipynb", tmp_path / "out.ipynb")
    with pytest.raises(ValueError, match="path must be an existing .ipynb notebook"):
        grade(tmp_path / "notes.txt", FAST)
    with pytest.raises(ValueError, match="reference must be an existing .ipynb notebook"):
        grade(FAST, tmp_path / "missing.ipynb")
    with pytest.raises(ValueError, match="holds no .ipynb notebooks"):
        write_student_edition(tmp_path, tmp_path / "student")


def test_the_instructors_page_lists_every_exercise():
    page = (Path(__file__).parent.parent / "book" / "instructors.md").read_text()
    assert [exercise_id for exercise_id in EXERCISES if f"`{exercise_id}`" not in page] == []

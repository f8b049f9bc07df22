"""Publishing: the GitHub Actions workflow, the PDF edition's LaTeX (built without TeX, as
`make pdf` builds it before XeLaTeX runs) and the checker `make pdf` reads the PDF back with."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / ".github" / "workflows" / "book.yml"
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "book" / "_ext"))
import check_pdf  # noqa: E402
from pdf_edition import printed_quiz  # noqa: E402

from genai_course.exercises import quiz  # noqa: E402

# -- the workflow ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def steps(workflow: dict, job: str) -> list[dict]:
    return workflow["jobs"][job]["steps"]


def test_workflow_is_valid_against_the_github_schema():
    checker = Path(sys.executable).parent / "check-jsonschema"
    result = subprocess.run([checker, "--builtin-schema", "vendor.github-workflows", WORKFLOW],
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_workflow_tests_every_push_and_pull_request(workflow):
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as True
    assert triggers["push"]["branches"] == ["main"] and "pull_request" in triggers
    runs = [step.get("run", "") for step in steps(workflow, "test")]
    assert ".ci/run" in runs
    ci = (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "make test   #" in readme  # the README's test command...
    assert re.search(r"^make test$", ci, re.M) and re.search(r"^make pdf$", ci, re.M)  # ...run


def test_workflow_pins_every_action_and_limits_every_job(workflow):
    for name, job in workflow["jobs"].items():
        assert 0 < job["timeout-minutes"] <= 90, name
        for step in job["steps"]:
            if "uses" in step:
                assert re.fullmatch(r"[\w-]+/[\w-]+@v\d+(\.\d+)*", step["uses"]), step["uses"]


def test_workflow_installs_the_makefiles_torch(workflow):
    pinned = re.search(r"^TORCH \?= (\S+)", (ROOT / "Makefile").read_text(), re.M).group(1)
    assert workflow["env"]["TORCH"].split()[0] == pinned


def test_workflow_publishes_the_book_and_the_pdf_from_main_only(workflow):
    on_main = "github.event_name == 'push' && github.ref == 'refs/heads/main'"
    publishing = [s for s in steps(workflow, "test") if s.get("if") == on_main]
    build = next(s["run"] for s in publishing if "run" in s)
    assert "make book" in build and "book.pdf _build/html/" in build
    caches = [s for s in publishing if s.get("uses", "").startswith("actions/cache@")]
    assert caches and caches[0]["with"]["path"] == "_build/.jupyter_cache"
    upload = next(s for s in publishing if s.get("uses", "").startswith("actions/upload-pages"))
    assert upload["with"]["path"] == "_build/html"
    deploy = workflow["jobs"]["deploy"]
    assert deploy["if"] == on_main and deploy["needs"] == "test"
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert deploy["steps"][-1]["uses"].startswith("actions/deploy-pages@")
    assert workflow["permissions"] == {"contents": "read"}  # the test job only reads


def test_the_readme_says_where_the_book_is_published():
    site = yaml.safe_load((ROOT / "_config.yml").read_text())["html"]["baseurl"]
    readme = (ROOT / "README.md").read_text()
    assert site in readme and f"{site}book.pdf" in readme and "fork" in readme


# -- the PDF edition's LaTeX ------------------------------------------------------------------


@pytest.fixture(scope="module")
def latex(build_book) -> str:
    """The PDF edition's book.tex, as `make pdf` writes it before running XeLaTeX."""
    return (build_book("latex") / "book.tex").read_text()


def test_parts_number_their_chapters_as_the_online_book(latex):
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    expected = [(part["caption"], r"\genainumberedpart" if part.get("numbered")
                 else r"\genaiappendixpart" if part["caption"] == "Appendices"
                 else r"\genaiunnumberedpart") for part in toc["parts"]]  # fmt: skip
    found = re.findall(r"\\part\{([^}]*)\}\s*(\\genai\w+part)", latex)
    assert found == expected


def test_every_solution_moves_to_the_appendix_and_leaves_its_page(latex):
    body, _, rest = latex.partition(r"\chapter{Solutions to the exercises}")
    appendix, _, back_matter = rest.partition(r"\part{Back matter}")  # the appendices' last chapter
    sources = [path.read_text() for path in [*ROOT.glob("notebooks/*.ipynb"),
                                              *ROOT.glob("book/*.md")]]  # fmt: skip
    exercises = sum(s.count("{solution}") for s in sources)
    coding = sum(s.count('"solution": true') for s in sources)
    quizzes = len(list(ROOT.glob("notebooks/*.ipynb")))
    assert appendix.count("Solution to Exercise") == exercises > 50
    assert "Solution to Exercise" not in body
    assert body.count(r"\genaisolutionpointer") == exercises + coding
    assert appendix.count(r"{Self\sphinxhyphen{}check quiz}") == quizzes
    assert "BEGIN SOLUTION" not in appendix and r"\PYG{k}{def}" in appendix
    assert r"\part{" not in appendix and r"\chapter{Results}" in back_matter


def test_quizzes_are_printed_not_left_as_widgets(latex):
    assert "IPython.core.display" not in latex
    first = quiz("pipeline")[0]
    assert first["question"].split()[0] in latex


def test_the_latex_has_no_raw_tex_and_no_dangling_references(latex):
    assert check_pdf.raw_tex(latex) == []
    labels = set(re.findall(r"\\label\{(?:\\detokenize\{)?([^}]*)\}", latex))
    targets = set(re.findall(r"\\hyperref\[(?:\\detokenize\{)?([^]}]*)\}?\]", latex))
    assert targets - labels == set()


def test_printed_quiz_letters_the_answers_and_gives_the_right_one():
    questions = [{"question": "Q?", "answers": [
        {"answer": "no", "correct": False, "feedback": "Wrong because."},
        {"answer": "yes", "correct": True, "feedback": "Right because."}]}]  # fmt: skip
    asked, answered = printed_quiz(questions)
    assert asked["enumtype"] == "arabic" and asked[0][1]["enumtype"] == "loweralpha"
    assert [item.astext() for item in asked[0][1]] == ["no", "yes"]
    assert answered.astext() == "(b) Right because."


# -- the checker -------------------------------------------------------------------------------


def test_toc_titles_are_the_chapters_in_order():
    titles = check_pdf.toc_titles()
    assert titles[titles.index("The generative pipeline in ten minutes") + 1] == (
        "Probability distributions")
    assert titles[-1] == "References" and len(titles) == len(set(titles))


def test_titles_in_order_finds_missing_and_misplaced_headings():
    text = "CONTENTS Setup Notation ... SETUP text NOTATION more"
    assert check_pdf.titles_in_order(text, ["Setup", "Notation"]) == []
    assert "after the previous" in check_pdf.titles_in_order(text, ["Notation", "Setup"])[0]
    assert "at all" in check_pdf.titles_in_order(text, ["Setup", "Results"])[0]


def test_raw_tex_is_found_in_prose_but_not_in_code():
    code = r"\begin{sphinxVerbatim}x = r\PYGZdq{}\textbackslash{}alpha\end{sphinxVerbatim}"
    inline = r"\sphinxcode{\sphinxupquote{\textbackslash{}mu \{a\}}}"
    assert check_pdf.raw_tex(code + inline) == []
    assert len(check_pdf.raw_tex(r"gives \$\textbackslash{}tfrac12\$ and")) == 3


def test_undefined_references_and_log_problems_are_reported():
    assert check_pdf.undefined_references("see Exercise ?? below")
    assert check_pdf.undefined_references("Exercise 8.1") == []
    log = ("Overfull \\hbox (14.0pt too wide) in paragraph at lines 1--2\n"
           "Overfull \\hbox (52.5pt too wide) in paragraph at lines 7--7\n"
           "Missing character: There is no ✗ (U+2717) in font FreeMono\n")  # fmt: skip
    problems = check_pdf.log_problems(log)
    assert len(problems) == 2 and "52.5 pt" in problems[1] and "✗" in problems[0]

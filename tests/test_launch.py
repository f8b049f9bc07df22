"""Where readers open a chapter: a kernel without the package (Colab, a downloaded notebook),
Binder. Each chapter's first code cell installs the package where it is missing and does
nothing where it is present; Binder's environment has what the notebooks import."""

import importlib.metadata
import re
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import nbformat
import pytest

from benchmarks.notebooks import in_book_order
from scripts.install_cell import TAG, first_code_cell, install_cell, package_source, write

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = in_book_order()


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_every_chapter_starts_with_the_install_cell(path):
    first = first_code_cell(nbformat.read(path, as_version=4))
    assert first.source == install_cell().source, "run python scripts/install_cell.py --write"
    assert TAG in first.metadata["tags"]


def test_the_cell_installs_from_the_repository_and_branch_of_the_launch_buttons(tmp_path):
    assert package_source() == "git+https://github.com/genai-first-principles/book@main"
    config = tmp_path / "_config.yml"
    config.write_text("repository:\n  url: https://example.org/fork/\n  branch: v0.2\n")
    assert package_source(config) == "git+https://example.org/fork@v0.2"
    assert '"git+https://example.org/fork@v0.2"' in install_cell(config).source
    config.write_text("repository:\n  url: github.com/fork\n")
    with pytest.raises(ValueError, match="repository.url"):
        package_source(config)


def test_writing_the_cell_replaces_an_old_one_and_keeps_the_rest(tmp_path):
    path = tmp_path / "chapter.ipynb"
    cells = [nbformat.v4.new_markdown_cell("# Title"), nbformat.v4.new_code_cell("import math")]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)
    assert write(path, install_cell())
    assert not write(path, install_cell())  # already there: unchanged
    old = install_cell()
    old.source = old.source.replace("@main", "@v0.0")
    nb = nbformat.read(path, as_version=4)
    nb.cells[1].source = old.source
    nbformat.write(nb, path)
    assert write(path, install_cell())
    nb = nbformat.read(path, as_version=4)
    assert [c.source for c in nb.cells] == ["# Title", install_cell().source, "import math"]


def test_the_cell_does_nothing_where_the_package_is_installed(monkeypatch):
    def no_pip(*args, **kwargs):
        raise AssertionError(f"the cell ran {args}")

    monkeypatch.setattr(subprocess, "check_call", no_pip)
    exec(install_cell().source, {"__name__": "__main__"})


def fresh_environment(where: Path) -> Path:
    """A new virtual environment that sees this one's packages except genai_course (so that
    nothing needs the network); returns its python."""
    venv.create(where / "venv", with_pip=True)
    python = where / "venv" / "bin" / "python"
    # Python 3.11's venv brings an old setuptools, which would shadow the one the build needs
    subprocess.run([python, "-m", "pip", "uninstall", "-q", "-y", "setuptools"], check=True)
    deps = where / "deps"
    deps.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not re.match(r"(genai_course|__editable__|pip\b|pip-)|.*\.pth$", entry.name):
            (deps / entry.name).symlink_to(entry)
    where_site = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = subprocess.run([python, "-c", where_site], capture_output=True, text=True,
                          check=True).stdout.strip()  # fmt: skip
    (Path(site) / "book-deps.pth").write_text(f"{deps}\n")
    return python


def test_the_cell_installs_the_package_in_a_fresh_environment(tmp_path):
    python = fresh_environment(tmp_path)
    probe = "import genai_course; print(genai_course.__file__)"
    missing = subprocess.run([python, "-c", probe], cwd=tmp_path, capture_output=True, text=True)
    assert "No module named 'genai_course'" in missing.stderr
    # a local copy of the repository stands in for GitHub
    copy = tmp_path / "repository"
    shutil.copytree(ROOT / "genai_course", copy / "genai_course",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, copy / name)
    cell = tmp_path / "cell.py"
    cell.write_text(install_cell().source)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "GENAI_COURSE_SOURCE": copy.as_uri(),
           "PIP_NO_INDEX": "1", "PIP_NO_BUILD_ISOLATION": "0"}  # pip's "0" turns isolation off
    subprocess.run([python, cell], cwd=tmp_path, env=env, check=True)
    # installed, with the data the chapters read from the package
    check = (probe + "; from genai_course.data import load_shakespeare; "
             "from genai_course.metrics import load_classifier; "
             "from genai_course.exercises import quiz; "
             "print(len(load_shakespeare()), type(load_classifier(device='cpu')).__name__)")
    out = subprocess.run([python, "-c", check], cwd=tmp_path, env=env, capture_output=True,
                         text=True, check=True).stdout.split()  # fmt: skip
    assert out[0].startswith(str(tmp_path / "venv"))
    assert out[1:] == ["1036004", "FashionClassifier"]


def requirement_names(lines: list[str]) -> set[str]:
    """The normalised distribution names of requirement lines (options and comments skipped)."""
    names = set()
    for line in lines:
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            names.add(re.split(r"[\s<>=!~;\[@]", line)[0].lower().replace("_", "-"))
    return names


def notebook_imports() -> set[str]:
    """The top-level modules the chapters import."""
    modules = set()
    for path in CHAPTERS:
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "code":
                modules |= set(re.findall(r"^\s*(?:from|import) (\w+)", cell.source, re.M))
    return modules - set(sys.stdlib_module_names)


def distributions_of(modules: set[str]) -> set[str]:
    names = importlib.metadata.packages_distributions()
    return {names[m][0].lower().replace("_", "-") for m in modules if m != "genai_course"}


def test_the_package_with_its_extra_provides_what_the_notebooks_import():
    needed = distributions_of(notebook_imports())
    assert {"torch", "myst-nb", "jupyterquiz"} <= needed
    assert needed <= requirement_names(importlib.metadata.requires("genai_course"))


def test_binder_gets_the_cpu_build_of_the_books_torch_and_the_package():
    binder = (ROOT / "binder" / "requirements.txt").read_text().splitlines()
    torch_pin = re.search(r"^TORCH \?= torch==(\S+)$", (ROOT / "Makefile").read_text(), re.M)[1]
    assert f"torch=={torch_pin}+cpu" in binder
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in binder
    assert 'pip install -e ".[notebooks]"' in (ROOT / "binder" / "postBuild").read_text()

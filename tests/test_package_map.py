"""The map of the package on the book's page "The companion package" says what imports what."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGE = (ROOT / "book" / "package.md").read_text()
ROWS = re.findall(r"^\| `(\w+)` \| [^|]+ \| ([^|]+) \|$", PAGE, re.M)  # module, imports
# the rows of single modules (a package's row describes it in words)
MODULES = [(m, i) for m, i in ROWS if (ROOT / "genai_course" / f"{m}.py").exists()]


def imported_modules(path: Path) -> set[str]:
    """The package's modules that ``path`` imports (``genai_course.X`` -> X)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "genai_course":
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("genai_course."):
            names.add(node.module.split(".")[1])
    return names


def test_every_module_of_the_package_is_on_the_map():
    mapped = {name for name, _ in ROWS}
    modules = {p.stem for p in (ROOT / "genai_course").glob("*.py") if p.stem != "__init__"}
    modules |= {p.name for p in (ROOT / "genai_course").iterdir() if (p / "__init__.py").exists()}
    assert modules == mapped


@pytest.mark.parametrize(("module", "imports"), MODULES)
def test_the_map_names_what_each_module_imports(module, imports):
    said = set(re.findall(r"`(\w+)`", imports))
    assert imported_modules(ROOT / "genai_course" / f"{module}.py") == said

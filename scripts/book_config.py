"""Write the book's configuration for a build from the committed outputs (`make test`).

The same ``_config.yml`` with execution off (nbval has executed the notebooks already) and the
local extensions' folders made absolute, since Jupyter Book resolves them against the folder of
the configuration file it is given:

    python scripts/book_config.py _build/test-config.yml
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def built_from_outputs(config: Path = ROOT / "_config.yml") -> dict:
    """``config``, not executing the notebooks, its local extensions found from anywhere."""
    settings = yaml.safe_load(config.read_text())
    settings["execute"]["execute_notebooks"] = "off"
    extensions = settings["sphinx"].get("local_extensions", {})
    extensions.update({name: str((config.parent / folder).resolve())
                       for name, folder in extensions.items()})  # fmt: skip
    return settings


if __name__ == "__main__":
    target = Path(sys.argv[1])
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump(built_from_outputs()))

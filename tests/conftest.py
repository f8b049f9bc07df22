import functools
import http.server
import threading

import pytest
from hypothesis import settings

# the same examples on every run: a test that passes in CI passes again
settings.register_profile("book", derandomize=True, database=None, deadline=None)
settings.load_profile("book")


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path, monkeypatch):
    """Every test gets its own user cache and no data/device/profile overrides."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for var in ("GENAI_COURSE_DATA", "GENAI_COURSE_DEVICE", "GENAI_COURSE_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("GENAI_COURSE_PROGRESS", "0")


@pytest.fixture
def http_folder(tmp_path):
    """A folder served over HTTP on 127.0.0.1; yields (folder, base_url)."""
    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()

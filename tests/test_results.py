import json

import pytest

from genai_course.results import ENV_VAR, METRICS, record


def test_record_returns_the_row_and_writes_nothing_without_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.chdir(tmp_path)
    row = record("VAE", "Fashion-MNIST", {"recall": 0.5, "bits/dim": 0.4}, seconds=3)
    assert list(row["metrics"]) == ["bits/dim", "recall"]  # the page's column order
    assert row["seconds"] == 3.0 and row["profile"] in ("quick", "full")
    assert row["machine"] and row["device"] in ("cpu", "cuda", "mps")
    assert list(tmp_path.iterdir()) == []


def test_record_appends_one_json_line_per_row(tmp_path, monkeypatch):
    path = tmp_path / "rows.jsonl"
    monkeypatch.setenv(ENV_VAR, str(path))
    first = record("n-gram", "Shakespeare", {"valid bits/char": 2.87})
    second = record("LSTM", "Shakespeare", {"valid bits/char": 2.6}, seconds=116.0)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert rows == [first, second]
    assert rows[0]["seconds"] is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("", "d", {"recall": 1.0}), "model must be a non-empty string"),
        (("m", None, {"recall": 1.0}), "dataset must be"),
        (("m", "d", {}), "metrics must be a non-empty dict"),
        (("m", "d", {"FID": 3.0}), r"unknown metrics \['FID'\]"),
        (("m", "d", {"recall": float("nan")}), "'recall' must be a finite number"),
        (("m", "d", {"recall": "0.5"}), "'recall' must be a finite number"),
    ],
)
def test_bad_rows_are_refused_with_the_argument_named(args, message):
    with pytest.raises(ValueError, match=message):
        record(*args)


def test_negative_seconds_are_refused():
    with pytest.raises(ValueError, match="seconds must be"):
        record("m", "d", {METRICS[0]: 1.0}, seconds=-1)

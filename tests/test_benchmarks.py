"""The benchmarks: the reference run, the harness, and both loops' common start.

Speed is measured by ``make bench``, never asserted here. These tests check that the reference
run is the one the Makefile uses, that the harness times, summarises and reports what it says
(and that the Results page renders its summary), and that the conventional loop of each
throughput benchmark starts from the weights the recipe starts from.
"""

import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from benchmarks import (
    dcgan_throughput,
    harness,
    lstm_throughput,
    notebooks,
    results,
    vae_throughput,
)
from genai_course.train import recipes
from genai_course.train.recipes import RECIPES

ROOT = Path(__file__).resolve().parent.parent
REFERENCE_RUN = {
    "GENAI_COURSE_PROFILE": "quick",
    "GENAI_COURSE_DEVICE": "cpu",
    "OMP_NUM_THREADS": "2",
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_CBWR": "AVX2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
}


def test_the_reference_run_is_read_from_its_file():
    assert notebooks.reference_run() == REFERENCE_RUN


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
@pytest.mark.parametrize("target", ["test", "notebooks"])
def test_the_makefile_runs_the_notebooks_under_the_same_environment(target):
    done = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    prefix = " ".join(f"{key}={value}" for key, value in REFERENCE_RUN.items()) + " "
    runs = [line for line in done.stdout.splitlines() if "--nbval " in line or "nbconvert" in line]
    assert runs and all(line.startswith(prefix) for line in runs)


def test_a_malformed_line_of_the_reference_run_is_named(tmp_path):
    path = tmp_path / "run.env"
    path.write_text("# a comment\n\nA=1\nB = 2\n")
    with pytest.raises(ValueError, match=r"run.env:4: expected KEY=VALUE"):
        notebooks.reference_run(path)


def test_cell_seconds_are_read_from_the_timestamps_slowest_first():
    import nbformat

    def cell(source, start, end):
        code = nbformat.v4.new_code_cell(source)
        code.metadata["execution"] = {
            "iopub.execute_input": f"2026-12-01T10:00:{start:06.3f}Z",
            "shell.execute_reply": f"2026-12-01T10:00:{end:06.3f}Z",
        }
        return code

    nb = nbformat.v4.new_notebook(cells=[
        cell("import torch", 0, 2.5),
        nbformat.v4.new_markdown_cell("text"),
        cell("# a comment\ndata = load()\ntrained = RECIPES['vae'].train(s)", 3, 13.25),
        nbformat.v4.new_code_cell("never run"),  # no timestamps: left out
    ])  # fmt: skip
    assert notebooks.cell_seconds(nb) == [
        {"cell": 2, "code": "trained = RECIPES['vae'].train(s)", "seconds": 10.25},
        {"cell": 0, "code": "import torch", "seconds": 2.5},
    ]


def test_the_budget_names_what_exceeds_it():
    fine = [{"notebook": "gan.ipynb", "seconds": 90.0}, {"notebook": "vae.ipynb", "seconds": 60.0},
            {"notebook": "diffusion.ipynb", "seconds": 119.0}]  # fmt: skip
    assert notebooks.over_budget(fine) == ""
    slow = ([{"notebook": "gan.ipynb", "seconds": 95.0}, {"notebook": "diffusion.ipynb",
                                                         "seconds": 121.0}]
            + [{"notebook": f"{name}.ipynb", "seconds": 89} for name in notebooks.SEED_BOOK[:5]]
            + [{"notebook": "flows.ipynb", "seconds": 89}])  # fmt: skip
    message = notebooks.over_budget(slow)
    assert "gan.ipynb took 95 s" in message and "diffusion.ipynb took 121 s" in message
    assert "the seed book's chapters took 540 s" in message  # flows is not one of them
    assert "pipeline.ipynb" not in message and "flows.ipynb" not in message


def test_the_notebook_table_shows_the_slowest_cell_and_the_run_it_replaced():
    run = [
        {"notebook": "a.ipynb", "seconds": 40.0, "peak_mib": 900.0,
         "slowest": [{"cell": 3, "code": "x = f(a | b)", "seconds": 30.0}]},
        {"notebook": "new.ipynb", "seconds": 5.0, "peak_mib": 100.0, "slowest": []},
    ]  # fmt: skip
    lines = results._notebooks(run, {"date": "2026-11-30", "seconds": {"a.ipynb": 90.0}})
    assert lines[0].startswith("| notebook | seconds | before (2026-11-30) | slowest cell |")
    assert lines[2] == "| a.ipynb | 40.0 | 90.0 | 30.0 s: `x = f(a \\| b)` | 900 |"
    assert lines[3] == "| new.ipynb | 5.0 |  |  | 100 |"  # new: no time before
    assert lines[4].startswith("| **the seed book's chapters** | **0.0** | **0.0** |")
    assert lines[5].startswith("| **all notebooks** | **45.0** | **90.0** |")
    assert "before" not in results._notebooks(run, None)[0]


def test_the_slowest_cell_is_cut_where_a_page_can_break_it():
    assert results._excerpt("import math") == "import math"
    assert results._excerpt("a = b + c + d + e + f + g + h + i") == "a = b + c + d + e + f + g + …"
    # no run of more than 13 characters without a space: LaTeX cannot break inside one
    assert results._excerpt('ring = RECIPES["ring_flow"].train()') == 'ring = RECIPES["ring…'


def fake_loops(monkeypatch, seconds: dict[str, float], seeds: list) -> dict:
    """Loops that take ``seconds`` each on a fake clock and return their seconds as quality."""
    clock = [0.0]
    monkeypatch.setattr(harness.time, "perf_counter", lambda: clock[0])

    def loop(name):
        def run(seed):
            seeds.append((name, seed))
            clock[0] += seconds[name]
            return seconds[name]

        return run

    return {name: loop(name) for name in seconds}


def test_alternate_runs_the_loops_in_turn_and_reports_their_rates(monkeypatch, capsys):
    seeds = []
    loops = fake_loops(monkeypatch, {"slow": 2.0, "fast": 0.5}, seeds)
    between = iter([10.0, 20.0, 30.0])  # a reference rate, measured after each repeat
    result = harness.alternate(loops, units=100, repeats=3, device=torch.device("cpu"),
                               between=lambda: next(between))  # fmt: skip
    assert seeds == [("slow", 0), ("fast", 0), ("slow", 1), ("fast", 1), ("slow", 2), ("fast", 2)]
    assert result["between"] == [10.0, 20.0, 30.0]
    assert result["loops"]["slow"] == {"rates": [50.0] * 3, "quality": [2.0] * 3}
    assert result["ratios"] == [4.0] * 3  # the last loop's rate over the first's
    summary = harness.report("title", "examples", "seconds", result)
    assert summary["loops"]["fast"] == {"median": 200.0, "min": 200.0, "max": 200.0,
                                        "quality": 0.5, "rates": [200.0] * 3}  # fmt: skip
    assert summary["ratio"] == {"median": 4.0, "per_repeat": [4.0] * 3}
    assert "ratio (last / first): median 4.00" in capsys.readouterr().out
    summary["loops"]["fast"]["share of matmul rate"] = 0.25
    summary["loops"]["slow"]["share of matmul rate"] = 0.0625
    page = "\n".join(results._throughput([summary]))
    assert "| fast | 200 | 200-200 | 0.5 | 25% |" in page and "**4.00x**" in page


def test_compare_loads_once_untimed_and_names_the_recipe(monkeypatch):
    seeds, loaded = [], []
    loops = fake_loops(monkeypatch, {"conventional": 1.0, "book": 0.5}, seeds)
    settings = replace(RECIPES["vae"].quick, epochs=2)

    def load(s, device):
        loaded.append((s, device))
        return "data"

    benchmark = harness.Benchmark(
        "VAE", "examples", "quality", RECIPES["vae"], settings, load, units=lambda data: 10,
        conventional=lambda data, s, seed, device: loops["conventional"](seed),
        book=lambda data, s, seed, device: loops["book"](seed),
    )  # fmt: skip
    summary = harness.compare(benchmark, repeats=2, device="cpu")
    assert loaded == [(settings, torch.device("cpu"))]
    assert list(summary["loops"]) == ["conventional DataLoader", "book (train_vae)"]
    assert summary["loops"]["book (train_vae)"]["median"] == 40.0  # 10 units x 2 epochs / 0.5 s
    assert summary["title"] == "VAE, 2 epoch(s), 2 repeats, cpu"
    assert seeds[:2] == [("conventional", 0), ("book", 0)]  # the warm-up, untimed
    assert seeds[-1] == ("book", 0)  # the book's loop once more, under the profiler
    assert abs(sum(summary["time"].values()) - 1) < 1e-9


def test_where_time_goes_names_the_kinds_of_operator():
    a, b = torch.randn(256, 256), torch.randn(256, 256)

    def run():
        for _ in range(20):
            (a @ b).relu().sum()
            torch.rand(256, 256)

    shares = harness.where_time_goes(run)
    outside = "outside operators (Python, the loop)"
    assert list(shares) == [*harness.KINDS, "other operators", outside]
    assert all(share >= 0 for share in shares.values()) and sum(shares.values()) <= 1 + 1e-9
    assert shares["matrix multiplies and convolutions"] > 0 and shares["random numbers"] > 0
    assert shares["other operators"] > 0 and shares["the optimizer"] == 0
    loop = {"median": 1.0, "min": 1.0, "max": 1.0, "quality": 0.5}
    summary = {"title": "t", "unit": "examples", "quality": "q", "loops": {"book": loop},
               "ratio": {"median": 1.0, "per_repeat": [1.0]}, "time": shares}  # fmt: skip
    page = results._throughput([summary])
    assert any(line.startswith("Where the book's loop spends its time") for line in page)


def test_the_command_line_has_a_flag_per_keyword(monkeypatch):
    called = {}

    def measure(train_size: int = 10, epochs: int = 1, device: str | None = None) -> dict:
        called.update(train_size=train_size, epochs=epochs, device=device)
        return {}

    monkeypatch.setattr("sys.argv", ["bench", "--train-size", "64"])
    harness.main(measure, "A benchmark.\n\nMore.")
    assert called == {"train_size": 64, "epochs": 1, "device": None}


SMALL = {  # a few steps of each benchmark, on a slice of its data
    vae_throughput: ("build_vae", {"train_size": 256, "eval_size": 16}),
    dcgan_throughput: ("build_gan", {"train_size": 128}),
    lstm_throughput: ("build_char_lstm", {"train_size": 64 * 101 * 2}),  # two chunks
}


def score_less_text(monkeypatch, module) -> None:
    """Both loops score the first 2,000 validation characters only (a test's seconds)."""
    real = lstm_throughput.bits_per_char
    monkeypatch.setattr(recipes, "bits_per_char", lambda model, ids: real(model, ids[:2000]))
    monkeypatch.setattr(module, "bits_per_char", lambda model, ids: real(model, ids[:2000]))


@pytest.mark.parametrize("module", list(SMALL), ids=lambda m: m.__name__.split(".")[-1])
def test_both_loops_start_from_the_recipes_weights(module, monkeypatch):
    builder, small = SMALL[module]
    settings = replace(module.RECIPE.quick, epochs=1, **small)
    if module is lstm_throughput:
        score_less_text(monkeypatch, module)
    built = getattr(recipes, builder)
    starts = []

    def build(*args):  # the recipe's builder, remembering what each loop started from
        model = built(*args)
        starts.append({k: v.clone() for k, v in model.state_dict().items()})
        return model

    monkeypatch.setattr(recipes, builder, build)  # the book's loop, through the recipe
    monkeypatch.setattr(module, builder, build)  # the conventional loop
    device = torch.device("cpu")
    data = module.load(settings, device)
    qualities = [loop(data, settings, 7, device) for loop in (module.conventional, module.book)]
    assert len(starts) == 2 and starts[0].keys() == starts[1].keys()
    assert all(torch.equal(starts[0][k], starts[1][k]) for k in starts[0])
    assert all(torch.isfinite(torch.tensor(q)) for q in qualities)


def test_both_lstm_loops_measure_the_same_figure(monkeypatch):
    # lr 0: both keep their (common) initial weights, and dropout is 0, so the scores agree
    settings = replace(lstm_throughput.RECIPE.quick, epochs=1, lr=0.0, **SMALL[lstm_throughput][1])
    score_less_text(monkeypatch, lstm_throughput)
    device = torch.device("cpu")
    data = lstm_throughput.load(settings, device)
    conventional = lstm_throughput.conventional(data, settings, 7, device)
    assert conventional == lstm_throughput.book(data, settings, 7, device)

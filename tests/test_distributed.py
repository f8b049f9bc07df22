"""fit under torchrun: two gloo processes on 127.0.0.1 against one process."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from genai_course import distributed
from genai_course.train import fit
from genai_course.train.loop import epoch_order
from genai_course.train.parallel import shard
from genai_course.train.recipes import RECIPES

WORKER = Path(__file__).with_name("distributed_worker.py")
sys.path.insert(0, str(WORKER.parent))
from distributed_worker import model, regression_data  # noqa: E402

LIMIT = 180  # seconds: a test that would hang fails instead


def torchrun(port, *args, nproc=2, cwd=None):
    """Launch ``args`` on ``nproc`` processes that meet at 127.0.0.1:port."""
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}"]
    command += ["--master_addr=127.0.0.1", f"--master_port={port}", *map(str, args)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GENAI_COURSE_DEVICE": "cpu"}
    return subprocess.run(command, capture_output=True, text=True, timeout=LIMIT, env=env, cwd=cwd)


def run_worker(port, out, *args):
    out.mkdir(exist_ok=True)
    done = torchrun(port, WORKER, out, *args)
    assert done.returncode == 0, done.stderr[-3000:]
    return [torch.load(out / f"rank{r}.pt", weights_only=True) for r in (0, 1)]


def one_process(epochs, batch_size, n=96, **kwargs):
    net = model(0.0)
    history = fit(
        net,
        torch.optim.Adam(net.parameters(), lr=0.01),
        regression_data(n),
        lambda xb, yb: (net(xb).squeeze(-1) - yb) ** 2,
        epochs=epochs,
        batch_size=batch_size,
        **kwargs,
    )
    return list(net.parameters()), history


def test_shards_of_a_batch_are_the_combined_batch_in_equal_parts():
    order = epoch_order(23, seed=3, epoch=1)
    for world_size in (1, 2, 3, 4):
        for consumed in (0, 5, 12):
            clusters = [distributed.Cluster(r, world_size) for r in range(world_size)]
            shards = [shard(order, consumed, c) for c in clusters]
            usable = (23 - consumed) // world_size * world_size
            assert {len(s) for s in shards} == {usable // world_size}
            batch = 2  # per process
            for s in range(0, usable // world_size, batch):
                combined = torch.cat([shard[s : s + batch] for shard in shards])
                start = consumed + s * world_size
                end = min(start + batch * world_size, consumed + usable)  # the tail: cut
                expected = order[start:end]
                assert sorted(combined.tolist()) == sorted(expected.tolist())


def test_two_processes_agree_with_each_other_and_with_one_process_on_the_combined_batch(
    tmp_path, closed_port
):
    ranks = run_worker(closed_port, tmp_path / "out", "--checkpoint", tmp_path / "ck" / "run.pt")
    for a, b in zip(ranks[0]["parameters"], ranks[1]["parameters"], strict=True):
        assert torch.equal(a, b)  # the same step on every rank
    assert ranks[0]["history"] == ranks[1]["history"]  # metrics averaged over the ranks

    # 2 processes x 8 examples = 1 process x 16: the same batches, the same steps
    parameters, history = one_process(epochs=2, batch_size=16)
    for a, b in zip(ranks[0]["parameters"], parameters, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    for key in ("steps", "epochs"):
        torch.testing.assert_close(ranks[0]["history"][key], getattr(history, key))
    assert history.epochs["loss"][-1] < history.epochs["loss"][0]

    # rank 0 alone wrote the checkpoint, once (at the end), with rank 0's parameters
    assert ranks[0]["checkpoints written"] == [12] and ranks[1]["checkpoints written"] == []
    assert [p.name for p in (tmp_path / "ck").iterdir()] == ["run.pt"]
    saved = torch.load(tmp_path / "ck" / "run.pt", weights_only=True)
    assert len(saved["rng"]) == 2  # each rank's random state, to resume each
    for a, b in zip(saved["model"].values(), ranks[0]["parameters"], strict=True):
        assert torch.equal(a, b)


def test_resume_on_two_processes_continues_bit_identically(tmp_path, closed_port):
    # dropout: each rank's random numbers matter; 101 examples: 1 left out an epoch, and each
    # rank's 50 make 7 steps of 8, 8, 8, 8, 8, 8 and 2
    common = ["--epochs", 3, "--dropout", 0.2, "--examples", 101]
    reference = run_worker(closed_port, tmp_path / "reference", *common)

    ckpt = tmp_path / "run.pt"
    crashed = torchrun(
        closed_port, WORKER, tmp_path, *common, "--crash-at", 14,
        "--checkpoint", ckpt, "--checkpoint-every", 5,
    )  # fmt: skip
    assert crashed.returncode != 0 and "KeyboardInterrupt" in crashed.stderr
    assert torch.load(ckpt, weights_only=True)["step"] == 10  # 7 steps an epoch: in epoch 2

    resumed = run_worker(
        closed_port, tmp_path / "resumed", *common, "--checkpoint", ckpt, "--resume"
    )
    for rank in (0, 1):
        for a, b in zip(reference[rank]["parameters"], resumed[rank]["parameters"], strict=True):
            assert torch.equal(a, b)
        assert resumed[rank]["history"] == reference[rank]["history"]
        assert len(reference[rank]["history"]["steps"]["loss"]) == 21
    assert resumed[0]["checkpoints written"] == [21] and resumed[1]["checkpoints written"] == []


def test_a_two_process_checkpoint_resumes_on_one_process(tmp_path, closed_port):
    ckpt = tmp_path / "run.pt"
    crashed = torchrun(
        closed_port, WORKER, tmp_path, "--epochs", 3, "--crash-at", 10,
        "--checkpoint", ckpt, "--checkpoint-every", 9,
    )  # fmt: skip
    assert crashed.returncode != 0
    reference, reference_history = one_process(epochs=3, batch_size=16)
    # mid-epoch 2, on one process with the combined batch: the same remaining batches
    resumed, history = one_process(epochs=3, batch_size=16, checkpoint=ckpt, resume=True)
    for a, b in zip(reference, resumed, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert len(history.steps["loss"]) == 18 and len(history.epochs["loss"]) == 3
    torch.testing.assert_close(history.steps, reference_history.steps)
    torch.testing.assert_close(history.epochs, reference_history.epochs)


def test_a_loss_that_calls_the_bare_model_is_caught(tmp_path, closed_port):
    (tmp_path / "out").mkdir()
    done = torchrun(closed_port, WORKER, tmp_path / "out", "--bare")
    assert done.returncode != 0
    assert "the parameters differ between the 2 processes" in done.stderr
    assert "genai_course.distributed.wrap(model)" in done.stderr


def test_processes_called_differently_stop_instead_of_waiting(tmp_path, closed_port):
    done = torchrun(closed_port, WORKER, tmp_path, "--rank1-batch-size", 4)
    assert done.returncode != 0
    assert "the 2 processes were given different batch_size: rank 0: [8]; rank 1: [4]" in (
        done.stderr
    )


@pytest.mark.parametrize("model_name", ["vae", "dcgan", "classifier"])
def test_the_script_trains_on_two_processes(tmp_path, closed_port, model_name):
    summary = tmp_path / "summary.json"
    done = torchrun(
        closed_port, "-m", "genai_course.train", model_name, "--train-size", 256, "--epochs", 2,
        "--summary", summary, "--checkpoint", tmp_path / "ck" / "model.pt", "--scale-lr", "sqrt",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(summary.read_text())
    chapter = RECIPES[model_name].settings("quick")  # what each process trains with
    assert result["processes"] == 2 and result["backend"] == "gloo"
    assert result["combined batch"] == 2 * chapter.batch_size
    assert result["lr"] == pytest.approx(chapter.lr * 2**0.5)
    assert result["examples/s"] > 0 and result["training examples"] == 256
    assert done.stdout.count(f"{model_name}: 2 process(es)") == 1  # rank 0 alone prints
    assert [p.name for p in (tmp_path / "ck").iterdir()] == ["model.pt"]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"WORLD_SIZE": "0", "RANK": "0"}, r"WORLD_SIZE='0' must be an integer >= 1"),
        ({"WORLD_SIZE": "two", "RANK": "0"}, r"WORLD_SIZE='two' must be an integer"),
        ({"WORLD_SIZE": "2", "RANK": "2"}, r"RANK='2' must be an integer from 0 to 1"),
        ({"WORLD_SIZE": "2", "RANK": "0", "MASTER_PORT": "1"}, "MASTER_ADDR is not set"),
        ({"WORLD_SIZE": "2", "RANK": "1", "MASTER_ADDR": "127.0.0.1"}, "MASTER_PORT is not set"),
        ({"RANK": "0"}, "WORLD_SIZE is not set but RANK is"),
        ({"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "5"}, r"LOCAL_RANK='5' must be"),
        (
            {"WORLD_SIZE": "2", "RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "x"},
            r"MASTER_PORT='x' must be an integer from 1 to 65535",
        ),
    ],
)
def test_a_bad_environment_is_named(monkeypatch, env, message):
    for name in distributed.ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=message):
        distributed.init()


@pytest.mark.parametrize("rank", [0, 1])
def test_a_missing_process_is_an_error_not_a_hang(closed_port, rank):
    """WORLD_SIZE=2 but one process: rank 0 waits for a client that never
    comes; rank 1 for a rank 0 that is not there. Both give up after --timeout."""
    env = {
        **os.environ,
        "WORLD_SIZE": "2",
        "RANK": str(rank),
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(closed_port),
        "GENAI_COURSE_DEVICE": "cpu",
    }
    command = [sys.executable, "-m", "genai_course.train", "vae", "--timeout", "2"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=LIMIT, env=env)
    assert done.returncode != 0
    assert f"rank {rank} of 2 could not meet the other ranks at 127.0.0.1" in done.stderr
    assert "Were WORLD_SIZE=2 processes started" in done.stderr


def test_a_single_process_needs_no_torchrun(monkeypatch):
    for name in distributed.ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    cluster = distributed.init()
    assert cluster == distributed.Cluster() and cluster.is_main
    net = torch.nn.Linear(2, 1)
    assert distributed.wrap(net) is net and distributed.unwrap(net) is net
    values = torch.tensor([1.0, 2.0])
    assert torch.equal(distributed.average(values), values)
    with pytest.raises(ValueError, match="timeout must be a positive number"):
        distributed.init(timeout=0)
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        distributed.wrap("model")

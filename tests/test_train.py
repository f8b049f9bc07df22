import math
import os
import re
import struct
import tempfile
import time
import traceback
import zipfile
from dataclasses import replace

import pytest
import torch
from torch import nn

from genai_course.train import History, fit, gradient_step


def regression_data(n=100, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g)
    y = x @ torch.tensor([1.0, -2.0, 0.5]) + 0.1 * torch.randn(n, generator=g)
    return x, y


class Noisy(nn.Module):
    """A model that draws random numbers while training (dropout), so that a
    resume is only bit-identical if the RNG state is restored too."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Dropout(0.2), nn.Linear(16, 1))

    def forward(self, x):
        return self.net(x).squeeze(-1)  # (B,)


def train(model, epochs, **kwargs):
    x, y = regression_data()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    loss = kwargs.pop("loss", lambda xb, yb: (model(xb) - yb) ** 2)
    return fit(model, optimizer, (x, y), loss, epochs=epochs, batch_size=16, **kwargs)


def fresh_model(seed=0):
    torch.manual_seed(seed)
    return Noisy()


def test_loss_falls_and_history_is_complete():
    history = train(fresh_model(), epochs=30)
    steps_per_epoch = math.ceil(100 / 16)
    assert len(history.steps["loss"]) == 30 * steps_per_epoch
    assert len(history.epochs["loss"]) == 30
    assert history.epochs["loss"][-1] < 0.2 * history.epochs["loss"][0]


def test_batches_cover_the_data_once_per_epoch():
    seen = []
    model = nn.Linear(1, 1)

    def loss(index):
        seen.extend(index.tolist())
        return model(index.float()[:, None]).sum() * 0

    fit(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        torch.arange(10),
        loss,
        epochs=2,
        batch_size=3,
    )
    assert sorted(seen[:10]) == list(range(10)) and sorted(seen[10:]) == list(range(10))
    assert seen[:10] != seen[10:]  # reshuffled each epoch


def test_resume_after_a_crash_is_bit_identical(tmp_path):
    reference_model = fresh_model()
    torch.manual_seed(123)
    reference = train(reference_model, epochs=3)
    after_reference = torch.get_rng_state()

    # the same run, crashing at step 10; the last checkpoint is at step 8
    model, calls = fresh_model(), []

    def crashing_loss(xb, yb):
        calls.append(1)
        if len(calls) == 10:
            raise KeyboardInterrupt
        return (model(xb) - yb) ** 2

    torch.manual_seed(123)
    ckpt = tmp_path / "run.pt"
    with pytest.raises(KeyboardInterrupt):
        train(model, epochs=3, loss=crashing_loss, checkpoint=ckpt, checkpoint_every=4)
    assert torch.load(ckpt, weights_only=True)["step"] == 8

    torch.manual_seed(999)  # a new session: different RNG state, different weights
    resumed_model = fresh_model(seed=7)
    resumed = train(resumed_model, epochs=3, checkpoint=ckpt, resume=True)

    for a, b in zip(
        reference_model.state_dict().values(), resumed_model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b)
    assert resumed == reference
    assert torch.equal(torch.get_rng_state(), after_reference)


def test_resume_from_a_checkpoint_at_the_end_of_an_epoch_keeps_its_evaluation(tmp_path):
    steps_per_epoch = math.ceil(100 / 16)  # 7

    def evaluate():  # draws random numbers: a lost call would shift every later draw
        return {"probe": torch.rand(()).item()}

    reference_model = fresh_model()
    torch.manual_seed(3)
    reference = train(reference_model, epochs=3, evaluate=evaluate)

    model, calls = fresh_model(), []

    def crashing_loss(xb, yb):
        calls.append(1)
        if len(calls) == steps_per_epoch + 2:  # just after the checkpoint at step 7
            raise KeyboardInterrupt
        return (model(xb) - yb) ** 2

    torch.manual_seed(3)
    ckpt = tmp_path / "run.pt"
    with pytest.raises(KeyboardInterrupt):
        train(
            model,
            epochs=3,
            loss=crashing_loss,
            evaluate=evaluate,
            checkpoint=ckpt,
            checkpoint_every=steps_per_epoch,
        )
    saved = torch.load(ckpt, weights_only=True)
    assert saved["step"] == steps_per_epoch and len(saved["history"]["epochs"]["probe"]) == 1

    torch.manual_seed(999)
    resumed_model = fresh_model(seed=7)
    resumed = train(resumed_model, epochs=3, evaluate=evaluate, checkpoint=ckpt, resume=True)
    assert resumed == reference
    for a, b in zip(
        reference_model.state_dict().values(), resumed_model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b)


def test_resume_can_extend_a_finished_run(tmp_path):
    model = fresh_model()
    torch.manual_seed(5)
    reference = train(model, epochs=4)

    first = fresh_model()
    torch.manual_seed(5)
    train(first, epochs=2, checkpoint=tmp_path / "c.pt")
    first_seconds = torch.load(tmp_path / "c.pt", weights_only=True)["history"]["seconds"]
    second = fresh_model(seed=1)
    history = train(second, epochs=4, checkpoint=tmp_path / "c.pt", resume=True)
    assert history == reference  # the time is not compared
    assert 0 < first_seconds < history.seconds  # the resumed run adds its time to the first's
    assert all(
        torch.equal(a, b) for a, b in zip(model.parameters(), second.parameters(), strict=True)
    )


def test_resume_without_checkpoint_file_starts_fresh(tmp_path):
    history = train(fresh_model(), epochs=1, checkpoint=tmp_path / "new.pt", resume=True)
    assert len(history.steps["loss"]) == 7
    assert (tmp_path / "new.pt").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["new.pt"]  # no temporary files left


def test_resume_refuses_a_different_run(tmp_path):
    train(fresh_model(), epochs=1, checkpoint=tmp_path / "c.pt")
    x, y = regression_data()
    model = fresh_model()
    with pytest.raises(ValueError, match="resume with the same data, seed and shuffle"):
        fit(
            model,
            torch.optim.Adam(model.parameters()),
            (x, y),
            lambda a, b: (model(a) - b) ** 2,
            epochs=2,
            batch_size=16,
            seed=1,
            checkpoint=tmp_path / "c.pt",
            resume=True,
        )


def test_nan_guard_names_the_step():
    model = fresh_model()
    calls = []

    def loss(xb, yb):
        calls.append(1)
        value = ((model(xb) - yb) ** 2).mean()
        return value * float("nan") if len(calls) == 12 else value

    with pytest.raises(FloatingPointError, match=r"loss became nan at step 12 \(epoch 2 of 3\)"):
        train(model, epochs=3, loss=loss, log_every=5)


def test_custom_step_with_two_optimizers(tmp_path):
    """The GAN pattern: two networks, two optimizers, two metrics per step."""
    pair = nn.ModuleDict({"a": nn.Linear(3, 1), "b": nn.Linear(3, 1)})
    optimizers = {name: torch.optim.SGD(net.parameters(), lr=0.05) for name, net in pair.items()}
    x, y = regression_data()

    def step(xb, yb):
        metrics = {}
        for name, net in pair.items():
            optimizers[name].zero_grad()
            loss = ((net(xb).squeeze(-1) - yb) ** 2).mean()
            loss.backward()
            optimizers[name].step()
            metrics[f"loss_{name}"] = loss
        return metrics

    history = fit(
        pair, optimizers, (x, y), step=step, epochs=5, batch_size=20, checkpoint=tmp_path / "gan.pt"
    )
    assert set(history.steps) == {"loss_a", "loss_b"}
    assert history.epochs["loss_a"][-1] < history.epochs["loss_a"][0]
    saved = torch.load(tmp_path / "gan.pt", weights_only=True)
    assert set(saved["optimizers"]) == {"a", "b"}


def test_evaluate_runs_after_every_epoch_in_eval_mode():
    model = fresh_model()
    modes = []

    def evaluate():
        modes.append(model.training)
        return {"val": 1.0 + len(modes)}

    history = train(model, epochs=3, evaluate=evaluate)
    assert modes == [False, False, False] and model.training
    assert history.epochs["val"] == [2.0, 3.0, 4.0]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"epochs": 0}, ValueError, "epochs must be a positive int"),
        ({"batch_size": 2.5}, ValueError, "batch_size must be a positive int"),
        ({"resume": True}, ValueError, "need a checkpoint= path"),
        ({"step": lambda *b: {}}, ValueError, "exactly one of loss_fn"),
        ({"data": (torch.zeros(4), torch.zeros(5))}, ValueError, r"lengths \[4, 5\]"),
        ({"data": [1, 2]}, TypeError, "data must be a tensor"),
        ({"optimizer": "adam"}, TypeError, "must be a torch.optim.Optimizer"),
        ({"loss_fn": "mse"}, TypeError, "loss_fn must be a function"),
        ({"seed": -1}, ValueError, "seed must be a non-negative int"),
    ],
)
def test_bad_arguments_are_named(kwargs, error, message):
    model = nn.Linear(1, 1)
    arguments = dict(
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        data=torch.zeros(4, 1),
        loss_fn=lambda x: model(x),
        epochs=1,
        batch_size=2,
    )
    arguments.update(kwargs)
    with pytest.raises(error, match=message):
        fit(**arguments)


def test_history_is_plain_data():
    history = History()
    history.steps["loss"] = [1.0]
    assert History(**{"steps": {"loss": [1.0]}, "epochs": {}}) == history


def test_without_shuffle_every_epoch_keeps_the_data_order():
    seen = []

    def step(x):
        seen.extend(x.tolist())
        return {"loss": torch.tensor(0.0)}

    model = torch.nn.Linear(1, 1)

    def run(**kwargs):
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        return fit(model, optimizer, torch.arange(10.0), step=step, batch_size=4, **kwargs)

    run(epochs=2, shuffle=False)
    assert seen == list(range(10)) * 2
    with pytest.raises(TypeError, match="shuffle must be True or False"):
        run(epochs=1, shuffle=1)


# -- output paths, damaged checkpoints, the resume rule, temporary files ----------------


def counting_loss(model, calls):
    def loss(xb, yb):
        calls.append(1)
        return (model(xb) - yb) ** 2

    return loss


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir())


def unwritable_paths(tmp_path):
    (tmp_path / "a file").write_text("not a folder")
    return {
        "under a file": (tmp_path / "a file" / "c.pt", "cannot be created"),
        "a folder": (tmp_path, "is a folder, not a file"),
    }


@pytest.mark.parametrize("case", ["under a file", "a folder"])
def test_an_unwritable_checkpoint_is_refused_before_the_first_step(tmp_path, case):
    path, reason = unwritable_paths(tmp_path)[case]
    model, calls = fresh_model(), []
    with pytest.raises(ValueError, match=f"checkpoint {re.escape(str(path))} .*{reason}"):
        train(model, epochs=1, loss=counting_loss(model, calls), checkpoint=path)
    assert calls == []  # no step was taken


def test_a_folder_that_takes_no_new_file_is_refused_before_the_first_step(tmp_path, monkeypatch):
    (tmp_path / "ro").mkdir(mode=0o500)
    if os.geteuid() == 0:  # root writes into read-only folders: refuse as it would for a user

        def refuse(*args, **kwargs):
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(tempfile, "mkstemp", refuse)
    model, calls = fresh_model(), []
    with pytest.raises(ValueError, match=r"ro/c\.pt cannot be written: .* takes no new file"):
        train(model, epochs=1, loss=counting_loss(model, calls), checkpoint=tmp_path / "ro/c.pt")
    assert calls == []


def test_a_checkpoint_folder_is_created_and_the_file_has_the_usual_permissions(tmp_path):
    path = tmp_path / "runs" / "today" / "c.pt"
    train(fresh_model(), epochs=1, checkpoint=path)
    assert leftovers(path.parent) == ["c.pt"]
    (tmp_path / "plain").write_bytes(b"")  # what open() gives a new file
    assert path.stat().st_mode & 0o777 == (tmp_path / "plain").stat().st_mode & 0o777


@pytest.mark.parametrize("flag", ["--checkpoint", "--summary", "--save"])
def test_the_command_line_checks_every_output_before_training(tmp_path, flag, monkeypatch, capsys):
    from genai_course.train import __main__ as cli

    def must_not_train(*args, **kwargs):
        raise AssertionError("training started")

    recipe = cli.RECIPES["ring_gan"]
    monkeypatch.setitem(cli.RECIPES, "ring_gan", replace(recipe, train=must_not_train))
    path, _ = unwritable_paths(tmp_path)["under a file"]
    with pytest.raises(SystemExit):
        cli.main(["ring_gan", flag, str(path)])
    assert f"{flag} {path} cannot be written" in capsys.readouterr().err


class NotATensor:
    """Something a checkpoint of fit never holds: an object of a class."""


def flip_a_weight(path):
    """Change one byte in the middle of the largest tensor of the checkpoint at ``path``."""
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        tensors = [info for info in archive.infolist() if "/data/" in info.filename]
    info = max(tensors, key=lambda i: i.file_size)
    at = info.header_offset  # a local header: 30 bytes, the name, an extra field, the data
    name_length, extra_length = struct.unpack("<HH", raw[at + 26 : at + 30])
    raw[at + 30 + name_length + extra_length + info.file_size // 2] ^= 0xFF
    path.write_bytes(bytes(raw))


DAMAGED = {  # name: (how the checkpoint is spoiled, what the error says)
    "truncated": (lambda p: p.write_bytes(p.read_bytes()[:-100]), "truncated"),
    "empty": (lambda p: p.write_bytes(b""), "truncated"),
    "text": (lambda p: p.write_text("hello\n" * 50), "not a file torch.save wrote"),
    "a changed weight": (flip_a_weight, r"its part .*/data/\d+ changed after it was written"),
    "a tensor": (lambda p: torch.save(torch.zeros(3), p), "not a checkpoint of fit"),
    "an object": (
        lambda p: torch.save({"run": {}, "step": 0, "x": NotATensor()}, p),
        "holds more than tensors and plain values",
    ),
}


@pytest.mark.parametrize("damage", list(DAMAGED))
def test_a_damaged_checkpoint_is_named_and_nothing_is_loaded(tmp_path, damage):
    path = tmp_path / "c.pt"
    train(fresh_model(), epochs=1, checkpoint=path)
    spoil, says = DAMAGED[damage]
    spoil(path)
    model = fresh_model(seed=3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=f"checkpoint {re.escape(str(path))} .*{says}") as info:
        train(model, epochs=2, checkpoint=path, resume=True)
    assert "Delete it" in str(info.value)
    traceback_text = "".join(traceback.format_exception(info.value))
    assert "weights_only" not in traceback_text  # torch's advice is never repeated
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def other_optimizer(model):
    return torch.optim.SGD(model.parameters(), lr=0.01)


def part_of_the_model(model):
    return torch.optim.Adam(list(model.parameters())[:2], lr=0.01)


def narrower_model():
    model = fresh_model()
    model.net[0], model.net[3] = nn.Linear(3, 8), nn.Linear(8, 1)
    return model


def adam(model):
    return torch.optim.Adam(model.parameters(), lr=0.01)


@pytest.mark.parametrize(
    ("make_model", "make_optimizer", "message"),
    [
        (fresh_model, other_optimizer,
         r"optimizer 'optimizer' of class torch\.optim\.adam\.Adam, but this run's is a "
         r"torch\.optim\.sgd\.SGD"),
        (fresh_model, part_of_the_model, r"param groups of \[4\] parameters, this run's has \[2\]"),
        (narrower_model, adam, r"weights of another model \(of another shape: net\.0\.bias"),
    ],
    ids=["another optimizer class", "other param groups", "another model"],
)  # fmt: skip
def test_resume_refuses_another_optimizer_or_model_before_loading(
    tmp_path, make_model, make_optimizer, message
):
    path = tmp_path / "c.pt"
    train(fresh_model(), epochs=1, checkpoint=path)
    model = make_model()
    optimizer = make_optimizer(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = regression_data()
    with pytest.raises(ValueError, match=f"checkpoint {re.escape(str(path))} .*{message}"):
        fit(model, optimizer, (x, y), lambda a, b: (model(a) - b) ** 2, epochs=2, batch_size=16,
            checkpoint=path, resume=True)  # fmt: skip
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not optimizer.state  # no optimizer state was loaded either


def test_on_resume_the_new_hyperparameters_win_and_the_state_carries_on(tmp_path):
    path, (x, y) = tmp_path / "c.pt", regression_data()
    model = fresh_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    fit(model, optimizer, (x, y), counting_loss(model, []), epochs=1, batch_size=16,
        checkpoint=path)  # fmt: skip

    model = fresh_model(seed=3)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.002, betas=(0.5, 0.9))
    used = []

    def step(xb, yb):
        group = optimizer.param_groups[0]
        used.append((group["lr"], group["betas"]))
        return gradient_step(lambda a, b: (model(a) - b) ** 2, optimizer)(xb, yb)

    fit(model, optimizer, (x, y), step=step, epochs=2, batch_size=16, checkpoint=path,
        resume=True)  # fmt: skip
    assert set(used) == {(0.002, (0.5, 0.9))} and len(used) == 7  # the second epoch only
    first = optimizer.state[next(model.parameters())]
    assert int(first["step"]) == 14  # Adam's step count carried on from the checkpoint's 7
    saved = torch.load(path, weights_only=True)["optimizers"]["optimizer"]["param_groups"][0]
    assert saved["lr"] == 0.002 and tuple(saved["betas"]) == (0.5, 0.9)


def test_a_checkpoint_without_recorded_optimizer_classes_still_resumes(tmp_path):
    path = tmp_path / "c.pt"
    train(fresh_model(), epochs=1, checkpoint=path)
    state = torch.load(path, weights_only=True)
    del state["optimizer_types"]  # as written before the classes were recorded
    torch.save(state, path)
    assert len(train(fresh_model(), epochs=2, checkpoint=path, resume=True).steps["loss"]) == 14


def test_the_command_line_reports_the_learning_rate_a_resumed_run_used(tmp_path, capsys):
    from genai_course.train import __main__ as cli

    path = tmp_path / "gan.pt"
    common = ["ring_gan", "--train-size", "256", "--checkpoint", str(path)]
    cli.main([*common, "--epochs", "1", "--lr", "0.001"])
    summary = cli.main([*common, "--epochs", "2", "--lr", "0.0005", "--resume"])
    assert summary["lr"] == 0.0005 and "lr 0.0005" in capsys.readouterr().out
    saved = torch.load(path, weights_only=True)["optimizers"]
    assert {group["lr"] for opt in saved.values() for group in opt["param_groups"]} == {0.0005}


def test_stale_temporary_files_of_killed_writes_are_removed_at_the_next_save(tmp_path):
    stale, live = tmp_path / ".c.pt.k1ll3d.part", tmp_path / ".c.pt.wr1t1ng.part"
    another = tmp_path / ".other.pt.k1ll3d.part"  # another checkpoint's: not ours to remove
    for part in (stale, live, another):
        part.write_bytes(b"half a checkpoint")
    an_hour_ago = time.time() - 3600
    for part in (stale, another):
        os.utime(part, (an_hour_ago, an_hour_ago))
    train(fresh_model(), epochs=1, checkpoint=tmp_path / "c.pt")
    assert leftovers(tmp_path) == sorted([another.name, live.name, "c.pt"])


def test_a_failed_save_names_the_file_keeps_the_last_checkpoint_and_leaves_no_part(
    tmp_path, monkeypatch
):
    path = tmp_path / "c.pt"
    train(fresh_model(), epochs=1, checkpoint=path)
    good = path.read_bytes()

    def disk_full(obj, out):
        out.write(b"PK half a checkpoint")
        raise RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed")

    with monkeypatch.context() as patch:
        patch.setattr(torch, "save", disk_full)
        with pytest.raises(OSError, match=f"checkpoint {re.escape(str(path))} could not be"):
            train(fresh_model(), epochs=2, checkpoint=path, resume=True)
    assert leftovers(tmp_path) == ["c.pt"] and path.read_bytes() == good
    assert len(train(fresh_model(), epochs=2, checkpoint=path, resume=True).steps["loss"]) == 14

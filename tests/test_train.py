import math

import pytest
import torch
from torch import nn

from genai_course.train import History, fit


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

"""The recipes: each trains its model for a few steps; settings, resume, the command line."""

import ast
import json
from dataclasses import fields, replace
from pathlib import Path

import pytest
import torch

from genai_course.config import seed_everything
from genai_course.metrics import FashionClassifier, load_classifier
from genai_course.train import __main__ as cli
from genai_course.train.recipes import (
    RECIPES,
    Settings,
    _place,
    build_gan,
    build_vae,
    saved_run,
    train_gan,
)

PACKAGE = Path(__file__).resolve().parent.parent / "genai_course"
_LSTM = RECIPES["char_lstm"].quick
_GPT = RECIPES["char_gpt"].quick
_BPE_GPT = RECIPES["bpe_gpt"].quick
# a few steps of each recipe: its quick settings on a small slice of its data
SMALL = {"train_size": 256, "epochs": 1}
SMALLER = {  # where 256 examples are too few steps to show the loss falling
    "char_lstm": {  # three chunks: streams of 3 seq_len + 1 characters
        "train_size": _LSTM.batch_size * (3 * _LSTM.seq_len + 1), "epochs": 1},
    "classifier": {"train_size": 1024, "epochs": 1},  # eight steps
    "char_gpt": {"train_size": 256 * _GPT.context + 1, "epochs": 1},  # 256 windows
    "bpe_gpt": {"train_size": 256 * _BPE_GPT.context + 1, "epochs": 1},  # of tokens
    "ring_flow": {"train_size": 2048, "epochs": 1},  # 16 steps
    "ring_diffusion": {"train_size": 2048, "epochs": 1},  # 16 steps
}
# what each recipe's evaluation reports after every epoch
EVALUATIONS = {
    "pixels": {"test NLL"},
    "vae": {"test -ELBO", "test reconstruction", "test KL"},
    "conv_vae": {"test -ELBO", "test reconstruction", "test KL"},
    "vae_2d": {"test -ELBO", "test reconstruction", "test KL"},
    "char_lstm": {"valid bits/char"},
    "char_gpt": {"valid bits/char"},
    "bpe_gpt": {"valid bits/char"},
    "ring_flow": {"test NLL (nats/point)"},
    "flow": {"test bits/dim"},
    "ring_diffusion": {"test loss"},
    "ddpm": {"test loss"},
    "flow_matching": {"test loss"},
    "classifier": {"test accuracy"},
}


@pytest.mark.parametrize("name", list(RECIPES))
def test_every_recipe_trains_a_few_steps_under_quick(name):
    recipe = RECIPES[name]
    small = SMALLER.get(name, SMALL)
    trained = recipe.train(replace(recipe.settings("quick"), **small), desc=name)
    history = trained.history
    assert history.steps and all(len(v) >= 1 for v in history.steps.values())
    assert all(torch.isfinite(torch.tensor(v)).all() for v in history.steps.values())
    assert set(history.epochs) >= EVALUATIONS.get(name, set())
    assert trained.examples == {"char_lstm": 3, "classifier": 1024, "ring_flow": 2048,
                                 "ring_diffusion": 2048}.get(
        name, 256)
    assert trained.model.training  # handed back in training mode
    if name.endswith("gan"):
        assert len(trained.snapshots) == 1  # one epoch, one snapshot of the fixed noise
    if "loss" in history.steps:  # a loss to descend: it falls over the few steps
        losses = history.steps["loss"]
        assert losses[-1] < losses[0]


def test_the_profile_chooses_the_settings(monkeypatch):
    for name, recipe in RECIPES.items():
        assert recipe.settings("quick") is recipe.quick and recipe.settings("full") is recipe.full
        assert isinstance(recipe.quick, Settings) and type(recipe.full) is type(recipe.quick)
        # the ring's quick run is the whole experiment already (seconds on a CPU)
        assert (recipe.full != recipe.quick) == (name != "ring_gan")
    monkeypatch.setenv("GENAI_COURSE_PROFILE", "full")
    assert RECIPES["vae"].settings() is RECIPES["vae"].full
    with pytest.raises(ValueError, match="is not a profile"):
        RECIPES["vae"].settings("fast")


def test_settings_are_frozen_and_bad_values_are_named():
    settings = RECIPES["dcgan"].quick
    with pytest.raises(AttributeError):
        settings.epochs = 3
    for change, message in [
        ({"epochs": 0}, "epochs must be a positive int"),
        ({"batch_size": 2.5}, "batch_size must be a positive int"),
        ({"train_size": -5}, "train_size must be a positive int"),
        ({"lr": "1e-3"}, "lr must be a non-negative number"),
        ({"lr": -0.1}, "lr must be a non-negative number"),
    ]:
        with pytest.raises(ValueError, match=message):
            replace(settings, **change)
    with pytest.raises(TypeError, match="settings must be VAESettings .* got GANSettings"):
        RECIPES["vae"].train(settings)
    with pytest.raises(ValueError, match="architecture must be one of 'ring', 'mlp', 'dcgan'"):
        replace(settings, architecture="DCGAN")
    with pytest.raises(ValueError, match="architecture must be one of 'mlp', 'conv'"):
        replace(RECIPES["vae"].quick, architecture="cnn")
    with pytest.raises(ValueError, match="dropout must be in"):
        replace(RECIPES["char_lstm"].quick, dropout=1.5)
    with pytest.raises(ValueError, match="eval_size must be a positive int"):
        replace(RECIPES["vae"].quick, eval_size=0)


def test_a_trainer_names_what_it_does_not_take():
    images = torch.zeros(8, 1, 28, 28)
    with pytest.raises(TypeError, match="takes no epochs; change its settings"):
        RECIPES["dcgan"].train(RECIPES["dcgan"].quick, data=images, epochs=3)
    with pytest.raises(ValueError, match=r"image data must be in \[-1, 1\]"):
        RECIPES["dcgan"].train(RECIPES["dcgan"].quick, data=images + 255)
    with pytest.raises(TypeError, match="floating-point torch.Tensor"):
        RECIPES["dcgan"].train(RECIPES["dcgan"].quick, data=images.to(torch.uint8))


def test_recipes_that_train_on_one_process_say_so_before_starting(monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    one_process = ("pixels", "char_lstm", "ring_flow", "flow")
    for name in one_process:
        assert not RECIPES[name].parallel
        with pytest.raises(SystemExit):
            cli.main([name])
        assert f"{name} trains on one process only" in capsys.readouterr().err
    assert all(r.parallel for n, r in RECIPES.items() if n not in one_process)


def ring(**changes):
    return replace(RECIPES["ring_gan"].quick, train_size=512, generator_width=32,
                   discriminator_width=32, num_fixed=64, **changes)  # fmt: skip


def test_both_networks_of_a_gan_train_and_the_discriminator_leaves_chance():
    settings = ring(epochs=3, batch_size=64)
    trained = train_gan(settings)
    accuracy = trained.history.steps["d_accuracy"]
    assert max(accuracy[:8]) > 0.6  # the discriminator learns to tell them apart
    assert len(trained.snapshots) == 3 and trained.snapshots[0].shape == (64, 2)
    assert set(trained.history.steps) == {"loss_d", "loss_g", "d_real", "d_fake", "d_accuracy"}
    seed_everything(0)  # what the recipe does before building the networks
    start = build_gan(settings).state_dict()
    moved = {k: not torch.equal(start[k], v) for k, v in trained.model.state_dict().items()}
    assert moved.pop("fixed_z") is False and all(moved.values())


def test_a_resumed_recipe_is_bit_identical(tmp_path):
    reference = train_gan(ring(epochs=2, batch_size=64)).model
    ckpt = tmp_path / "gan.pt"
    train_gan(ring(epochs=1, batch_size=64), checkpoint=ckpt)
    torch.manual_seed(7)  # whatever the state before: the checkpoint restores it
    resumed = train_gan(ring(epochs=2, batch_size=64), checkpoint=ckpt, resume=True)
    assert len(resumed.snapshots) == 1  # only the epoch it ran
    for a, b in zip(reference.state_dict().values(), resumed.model.state_dict().values(),
                    strict=True):  # fmt: skip
        assert torch.equal(a, b)


def test_a_saved_run_is_named_by_its_recipe_settings_and_seed(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    quick, full = RECIPES["dcgan"].settings("quick"), RECIPES["dcgan"].settings("full")
    path = saved_run("dcgan", quick)
    assert path.parent == tmp_path / "genai_course" / "runs" and path.name.startswith("dcgan-")
    assert path == saved_run("dcgan", replace(quick))  # equal settings, the same run
    others = {saved_run("dcgan", full), saved_run("dcgan", quick, seed=1),
              saved_run("mlp_gan", quick), saved_run("dcgan", replace(quick, lr=1e-3))}  # fmt: skip
    assert path not in others and len(others) == 4
    with pytest.raises(ValueError, match="name must be one of"):
        saved_run("dcgna", quick)


def test_a_saved_run_is_loaded_not_trained_again(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    settings = replace(RECIPES["vae"].settings("quick"), **SMALL, eval_size=64)
    first = RECIPES["vae"].train(settings, checkpoint=saved_run("vae", settings))
    torch.manual_seed(7)  # whatever the state: the finished run is loaded as it was
    again = RECIPES["vae"].train(settings, checkpoint=saved_run("vae", settings), resume=True)
    assert again.history.steps == first.history.steps  # no step was taken again
    for a, b in zip(first.model.state_dict().values(), again.model.state_dict().values(),
                    strict=True):  # fmt: skip
        assert torch.equal(a, b)


def test_the_vae_recipes_default_loss_is_the_negative_elbo():
    from genai_course.vae import negative_elbo

    settings = replace(RECIPES["vae"].settings("quick"), **SMALL, eval_size=64)
    default = RECIPES["vae"].train(settings).history
    explicit = RECIPES["vae"].train(settings, loss=negative_elbo).history  # checked every step
    assert default.steps == explicit.steps and default.epochs == explicit.epochs


def test_convolutional_models_are_placed_channels_last_with_the_same_function():
    cpu = torch.device("cpu")
    conv, mlp = (build_vae(RECIPES[name].settings("quick")) for name in ("conv_vae", "vae"))
    reference = {key: value.clone() for key, value in conv.state_dict().items()}
    placed = _place(conv, cpu)
    weight = placed.encoder[2].weight  # (2w, w, 4, 4)
    assert weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()
    assert all(p.is_contiguous() for p in _place(mlp, cpu).parameters())  # no convolution
    x = (torch.rand(8, 28, 28, generator=torch.Generator().manual_seed(0)) < 0.5).float()
    contiguous = build_vae(RECIPES["conv_vae"].settings("quick"))
    contiguous.load_state_dict(reference)
    z = torch.randn(8, 20, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(placed.encode(x), contiguous.encode(x))
    torch.testing.assert_close(placed.decode(z), contiguous.decode(z))


def test_help_lists_every_recipe(capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    for name, recipe in RECIPES.items():
        assert f"  {name}" in text and recipe.description in text


def test_the_command_line_trains_saves_and_summarises(tmp_path, capsys):
    argv = ["classifier", "--train-size", "256", "--epochs", "1", "--lr", "0.002"]
    argv += ["--save", str(tmp_path / "w.pt"), "--summary", str(tmp_path / "s.json")]
    summary = cli.main(argv)
    assert summary["training examples"] == 256 and summary["lr"] == 0.002
    assert summary["processes"] == 1 and summary["examples/s"] > 0
    assert 0 <= summary["test accuracy"] <= 1
    assert json.loads((tmp_path / "s.json").read_text())["model"] == "classifier"
    assert isinstance(load_classifier(tmp_path / "w.pt", device="cpu"), FashionClassifier)
    assert "classifier: 1 process(es) x 128 examples" in capsys.readouterr().out


def test_the_command_line_takes_hyphens_for_underscores(tmp_path):
    size = str(64 * _GPT.context + 1)  # 64 windows
    summary = cli.main(["char-gpt", "--train-size", size, "--epochs", "1",
                        "--summary", str(tmp_path / "s.json")])  # fmt: skip
    assert summary["model"] == "char_gpt" and 2 < summary["valid bits/char"] < 7


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["vae", "--epochs", "0"], "--epochs must be a positive integer, got 0"),
        (["vae", "--lr", "-1"], "--lr must be positive"),
        (["vae", "--resume"], "--resume and --checkpoint-every need --checkpoint"),
        (["gan"], "invalid choice: 'gan'"),
    ],
)
def test_bad_flags_are_named(argv, message, capsys):
    with pytest.raises(SystemExit):
        cli.main(argv)
    assert message in capsys.readouterr().err


def test_settings_fields_are_commented():
    """Every settings field says what it is (a comment on its line), as STYLE asks."""
    source = (PACKAGE / "train" / "recipes.py").read_text().splitlines()
    tree = ast.parse("\n".join(source))
    classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
    for name in ("Settings", "GANSettings", "VAESettings", "LSTMSettings"):
        for node in classes[name].body:
            if isinstance(node, ast.AnnAssign):
                assert "#" in source[node.lineno - 1], f"{name}.{node.target.id}"
    assert {f.name for f in fields(Settings)} == {"train_size", "epochs", "batch_size", "lr"}


def _functions(path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


def test_no_function_in_the_package_is_longer_than_80_lines():
    long = [
        f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name} ({length} lines)"
        for path in sorted(PACKAGE.rglob("*.py"))
        for node in _functions(path)
        if (length := node.end_lineno - node.lineno + 1) > 80
    ]
    assert not long


@pytest.mark.parametrize("module", ["gan", "vae", "lstm", "likelihood", "metrics", "pixels",
                                    "flows", "unet", "diffusion", "flow_matching"])
def test_model_modules_do_not_import_the_training_package(module):
    from test_package_map import imported_modules

    assert "train" not in imported_modules(PACKAGE / f"{module}.py")


def _code_cells():
    for path in sorted((PACKAGE.parent / "notebooks").glob("*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] == "code":
                yield path.name, "".join(cell["source"])


def test_notebooks_take_their_settings_from_the_recipes():
    """No notebook chooses sizes by the profile's name or defines a trainer of its own."""
    for name, source in _code_cells():
        assert "profile.name ==" not in source and "profile.name !=" not in source, name
        assert '== "quick"' not in source and "def train" not in source, name

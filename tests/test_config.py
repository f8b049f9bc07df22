import random

import numpy as np
import pytest
import torch

from genai_course import config


def test_default_profile_follows_the_device(monkeypatch):
    monkeypatch.setattr(config, "get_device", lambda: torch.device("cpu"))
    assert config.get_profile().name == "quick"
    monkeypatch.setattr(config, "get_device", lambda: torch.device("cuda"))
    assert config.get_profile().name == "full"


def test_environment_variable_chooses(monkeypatch):
    monkeypatch.setenv("GENAI_COURSE_PROFILE", "full")
    assert config.get_profile() is config.PROFILES["full"]
    assert config.get_profile("quick").train_size == 20_000


def test_unknown_profile_lists_the_valid_ones(monkeypatch):
    monkeypatch.setenv("GENAI_COURSE_PROFILE", "fast")
    with pytest.raises(ValueError, match=r"GENAI_COURSE_PROFILE='fast'.*one of quick, full"):
        config.get_profile()


def test_quick_is_smaller_than_full():
    quick, full = config.PROFILES["quick"], config.PROFILES["full"]
    assert quick.train_size < 60_000 and full.train_size is None
    assert quick.eval_size < 10_000 and full.eval_size is None
    assert quick.iwae_size < 10_000 and full.iwae_size is None and quick.iwae_k < full.iwae_k


def test_seed_everything_repeats_every_generator():
    def draw():
        return random.random(), np.random.rand(), torch.rand(()).item()

    config.seed_everything(3)
    first = draw()
    config.seed_everything(3)
    assert draw() == first
    config.seed_everything(4)
    assert draw() != first


@pytest.mark.parametrize("seed", [-1, 1.5, "0", True])
def test_seed_everything_rejects_bad_seeds(seed):
    with pytest.raises(ValueError, match="seed must be a non-negative int"):
        config.seed_everything(seed)


@pytest.mark.parametrize(
    ("value", "shown"), [(None, True), ("1", True), ("0", False), ("off", False)]
)
def test_progress_switch(monkeypatch, value, shown):
    if value is None:
        monkeypatch.delenv("GENAI_COURSE_PROGRESS")
    else:
        monkeypatch.setenv("GENAI_COURSE_PROGRESS", value)
    assert config.show_progress() is shown

import pytest
import torch

from genai_course import device


@pytest.fixture
def cpu_only(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


def test_cpu_when_nothing_else(cpu_only):
    assert device.available_devices() == ["cpu"]
    assert device.get_device() == torch.device("cpu")


def test_prefers_cuda_then_mps(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert device.available_devices() == ["cuda", "mps", "cpu"]
    assert device.get_device().type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert device.get_device().type == "mps"


def test_environment_variable_overrides(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setenv("GENAI_COURSE_DEVICE", "CPU")
    assert device.get_device() == torch.device("cpu")


def test_missing_device_names_the_available_ones(cpu_only, monkeypatch):
    monkeypatch.setenv("GENAI_COURSE_DEVICE", "cuda")
    with pytest.raises(RuntimeError, match=r"GENAI_COURSE_DEVICE='cuda'.*available here: cpu"):
        device.get_device()
    with pytest.raises(RuntimeError, match=r"name='mps'.*available here: cpu"):
        device.get_device("mps")


def test_unknown_device_lists_the_valid_ones(cpu_only):
    with pytest.raises(ValueError, match=r"'tpu' is not a device type; use one of cuda, mps, cpu"):
        device.get_device("tpu")
    with pytest.raises(ValueError, match=r"name=0 is not a device type"):
        device.get_device(0)

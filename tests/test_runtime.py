import random

import numpy as np
import pytest
import torch

import metabook as mb


def test_explicit_cpu_and_auto_without_gpu(monkeypatch):
    assert mb.pick_device("cpu") == torch.device("cpu")
    assert mb.pick_device(torch.device("cpu")) == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr("metabook.runtime._mps_available", lambda: False)
    assert mb.pick_device("auto") == torch.device("cpu")


def test_auto_prefers_cuda_then_mps(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert mb.pick_device("auto") == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr("metabook.runtime._mps_available", lambda: True)
    assert mb.pick_device("auto") == torch.device("mps")


def test_unavailable_or_unknown_device_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="no CUDA GPU"):
        mb.pick_device("cuda")
    with pytest.raises(ValueError, match="unknown device 'tpu7'"):
        mb.pick_device("tpu7")
    with pytest.raises(TypeError):
        mb.pick_device(3)


def test_seed_everything_repeats_every_generator():
    def draw():
        return random.random(), np.random.rand()  # noqa: NPY002, torch.rand(3).tolist()

    generator = mb.seed_everything(123)
    first, g_first = draw(), torch.rand(2, generator=generator).tolist()
    generator = mb.seed_everything(123)
    assert draw() == first
    assert torch.rand(2, generator=generator).tolist() == g_first
    mb.seed_everything(124)
    assert draw() != first
    with pytest.raises(ValueError, match="non-negative"):
        mb.seed_everything(-1)

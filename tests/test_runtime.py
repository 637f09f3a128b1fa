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
        return random.random(), np.random.rand(), torch.rand(3).tolist()  # noqa: NPY002

    generator = mb.seed_everything(123)
    first, g_first = draw(), torch.rand(2, generator=generator).tolist()
    generator = mb.seed_everything(123)
    assert draw() == first  # Python, NumPy and torch's global generators all repeat
    assert torch.rand(2, generator=generator).tolist() == g_first
    mb.seed_everything(124)
    second = draw()
    assert all(a != b for a, b in zip(second, first, strict=True))  # each one changes
    with pytest.raises(ValueError, match="non-negative"):
        mb.seed_everything(-1)


def test_chapter_setup_reads_the_quick_switch_and_seeds(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr("metabook.runtime._mps_available", lambda: False)
    monkeypatch.setenv("METABOOK_QUICK", "1")
    settings = mb.chapter_setup(seed=5)
    assert settings == mb.ChapterSettings(True, torch.device("cpu"), "quick", 5)
    assert capsys.readouterr().out == "device: cpu | settings: quick\n"
    after_setup = torch.rand(2)
    mb.seed_everything(5)
    assert torch.equal(torch.rand(2), after_setup)  # chapter_setup seeded the generators
    monkeypatch.setenv("METABOOK_QUICK", "0")
    assert mb.chapter_setup().scale == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.delenv("METABOOK_QUICK")
    assert mb.chapter_setup().scale == "full"  # a CUDA device selects the full settings


def test_progress_bars_follow_the_argument_then_the_environment(monkeypatch, capsys):
    monkeypatch.delenv("METABOOK_PROGRESS", raising=False)
    assert mb.progress_enabled() and not mb.progress_enabled(False)
    monkeypatch.setenv("METABOOK_PROGRESS", "0")
    assert not mb.progress_enabled() and mb.progress_enabled(True)
    assert list(mb.progress_bar(range(3), desc="quiet")) == [0, 1, 2]
    assert capsys.readouterr().err == ""  # switched off: nothing written
    list(mb.progress_bar(range(3), progress=True, desc="shown"))
    assert "shown: 100%" in capsys.readouterr().err


def test_glue_records_quietly_in_a_kernel_and_does_nothing_elsewhere(monkeypatch, capsys):
    import IPython
    import myst_nb

    recorded = []
    monkeypatch.setattr(myst_nb, "glue", lambda *args, **kwargs: recorded.append((args, kwargs)))
    # outside a kernel (a script, the test suite): nothing is recorded, printed or returned
    assert mb.glue("accuracy", 87.5) is None
    assert recorded == [] and capsys.readouterr().out == ""
    # in a kernel: myst-nb's glue, without displaying the value
    monkeypatch.setattr(IPython, "get_ipython", lambda: object())
    assert mb.glue("accuracy", 87.5) is None
    assert recorded == [(("accuracy", 87.5), {"display": False})]


def test_glued_values_render_as_the_book_formats_them():
    """What a cell records is what `{glue:text}` formats: the repr of a float, a string
    without its quotes."""
    from IPython.core.formatters import format_display_data
    from myst_nb.core.variables import format_plain_text

    plain = format_display_data(87.25)[0]["text/plain"]
    assert format_plain_text(plain, ".1f") == "87.2"
    words = format_display_data("do not overlap")[0]["text/plain"]
    assert format_plain_text(words, "") == "do not overlap"

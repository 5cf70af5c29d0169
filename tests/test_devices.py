"""Device names resolve to real devices or fail with the list of available ones."""

from __future__ import annotations

import pytest
import torch

from napari_channelbias.devices import (
    ThreadBudget,
    available_devices,
    describe_device,
    gui_friendly_threads,
    resolve_device,
    usable_cores,
)
from napari_channelbias.errors import ConfigError


def test_cpu_always_resolves() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert "cpu" in available_devices()


def test_auto_picks_cuda_when_present_else_cpu_or_mps() -> None:
    device = resolve_device("auto")
    if torch.cuda.is_available():
        assert device == torch.device("cuda", 0)
    else:
        assert device.type in ("cpu", "mps")


def test_unknown_name_lists_valid_forms() -> None:
    with pytest.raises(ConfigError, match=r"unknown device 'gpu0'.*auto.*cpu.*available here: cpu"):
        resolve_device("gpu0")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_cuda_without_gpu_names_what_is_available() -> None:
    with pytest.raises(ConfigError, match=r"'cuda'.*no CUDA GPU.*available devices: cpu"):
        resolve_device("cuda")


def test_cuda_index_beyond_count_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"'cuda:99' is not usable"):
        resolve_device("cuda:99")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_gets_an_explicit_index() -> None:
    assert resolve_device("cuda") == torch.device("cuda", 0) == resolve_device("cuda:0")
    assert describe_device("cuda").startswith("cuda:0 (")


def test_describe_cpu() -> None:
    assert describe_device("cpu").startswith("cpu (")
    assert "threads" in describe_device(torch.device("cpu"))


# --- the CPU thread budget ---------------------------------------------------------------------------
@pytest.fixture
def threads():
    before = torch.get_num_threads()
    yield before
    torch.set_num_threads(before)


def test_gui_friendly_budget_leaves_a_core(threads):
    budget = gui_friendly_threads()
    assert budget.threads == max(1, min(threads, usable_cores() - 1))
    assert gui_friendly_threads(reserve=10_000).threads == 1


def test_apply_and_restore_and_none_leaves_torch_alone(threads):
    torch.set_num_threads(2)
    budget = ThreadBudget(1)
    budget.apply()
    assert torch.get_num_threads() == 1
    budget.restore()
    budget.restore()  # a second restore has nothing left to put back
    assert torch.get_num_threads() == 2
    untouched = ThreadBudget(None)
    untouched.apply()
    torch.set_num_threads(1)  # someone else's change stays: the budget replaced nothing
    untouched.restore()
    assert torch.get_num_threads() == 1


def test_wrap_sets_and_restores_even_when_closed_early(threads):
    seen = []

    def work():
        for _ in range(3):
            seen.append(torch.get_num_threads())
            yield
        return "done"

    torch.set_num_threads(2)
    gen = ThreadBudget(1).wrap(work())
    assert torch.get_num_threads() == 2  # nothing happens before the first next()
    next(gen)
    assert seen == [1]
    gen.close()  # cancelled
    assert torch.get_num_threads() == 2

    gen = ThreadBudget(1).wrap(work())
    with pytest.raises(StopIteration) as stop:
        while True:
            next(gen)
    assert stop.value.value == "done" and torch.get_num_threads() == 2

"""Thread budget for GUI jobs: torch's thread count is set while a generator runs and restored after."""

from __future__ import annotations

import pytest
import torch

from napari_channelbias._qt.worker_threads import ThreadBudget, gui_friendly_threads, usable_cores


@pytest.fixture
def threads():
    before = torch.get_num_threads()
    yield before
    torch.set_num_threads(before)


def test_gui_friendly_budget_leaves_a_core(threads):
    budget = gui_friendly_threads()
    assert budget.threads == max(1, min(threads, usable_cores() - 1))
    assert gui_friendly_threads(reserve=10_000).threads == 1


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

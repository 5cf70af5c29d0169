"""The worker bridge: events, results, progress, cancel with cleanup in the worker, errors shown."""

from __future__ import annotations

import logging
import threading
import time

import pytest

pytest.importorskip("napari")

from napari.utils.notifications import NotificationSeverity, notification_manager  # noqa: E402
from qtpy.QtWidgets import QPushButton, QWidget  # noqa: E402

from napari_channelbias._qt import bridge
from napari_channelbias.errors import VolumeError
from napari_channelbias.events import CheckpointSaved, Progress, SliceDone, TrainStep, Validation

pytestmark = pytest.mark.gui


@pytest.fixture
def notes():
    """Every napari notification dispatched during the test."""
    seen: list = []
    notification_manager.notification_ready.connect(seen.append)
    yield seen
    notification_manager.notification_ready.disconnect(seen.append)


@pytest.fixture
def owner(qtbot):
    widget = QWidget()
    qtbot.addWidget(widget)
    return widget


def finished(qtbot, job: bridge.Job) -> None:
    qtbot.waitUntil(lambda: job.settled and job not in bridge.all_jobs(), timeout=120_000)


def test_events_result_and_progress_reach_the_gui_thread(qtbot, owner):
    def work():
        for step in range(1, 4):
            yield TrainStep(step=step, total=3, loss=1.0 / step, lr=0.1, seconds_left=0.0)
        yield Validation(step=3, metrics={"dice": 0.5}, is_best=True)
        yield CheckpointSaved(path="x.pt", kind="best", step=3)
        return "result"

    seen, threads, done, ends = [], [], [], []
    job = bridge.start_job(
        owner, work(), "Training",
        on_event=lambda e: (seen.append(e), threads.append(threading.current_thread())),
        on_done=done.append, on_finished=ends.append,
    )
    # Not waitSignal: a job this short may finish before a signal wait would be connected.
    finished(qtbot, job)
    assert [type(e).__name__ for e in seen] == ["TrainStep"] * 3 + ["Validation", "CheckpointSaved"]
    assert all(t is threading.main_thread() for t in threads)
    assert done == ["result"] and ends == [job] and job.result == "result"
    assert job.pbar.total == 3 and job.pbar.n == 3
    assert not job.cancelled and job.failed is None


def test_event_progress_reads_positions_from_events():
    assert bridge.event_progress(SliceDone(task="predict", z=7, done=2, total=5)) == (2, 5, "slice 7")
    assert bridge.event_progress(Progress(task="x", done=1, total=4, message="hi")) == (1, 4, "hi")
    assert bridge.event_progress(Validation(step=1, metrics={}, is_best=False)) is None


def test_cancel_closes_the_generator_in_the_worker_thread(qtbot, owner):
    cleanup: list[threading.Thread] = []
    started = threading.Event()

    def endless():
        try:
            i = 0
            while True:
                started.set()
                i += 1
                time.sleep(0.005)
                yield Progress(task="spin", done=i, total=10**6)
        finally:
            cleanup.append(threading.current_thread())

    done, ends = [], []
    job = bridge.start_job(owner, endless(), "Spinning", on_done=done.append, on_finished=ends.append)
    assert started.wait(10)
    assert job.is_running and bridge.jobs_of(owner) == [job]
    job.cancel()
    assert job.wait(10)
    finished(qtbot, job)
    assert len(cleanup) == 1 and cleanup[0] is not threading.main_thread()
    assert job.cancelled and done == [] and ends == [job]
    assert bridge.jobs_of(owner) == []


def test_user_errors_become_notifications_with_their_message(qtbot, owner, notes):
    def bad():
        yield Progress(task="x", done=0, total=1)
        raise VolumeError("labels have shape (2, 3, 3) but the image has (4, 3, 3); pick matching labels")

    errors = []
    job = bridge.start_job(owner, bad(), "Training", on_error=errors.append)
    finished(qtbot, job)
    assert isinstance(job.failed, VolumeError) and len(errors) == 1
    texts = [n.message for n in notes if n.severity == NotificationSeverity.ERROR]
    assert texts == [
        "Training: labels have shape (2, 3, 3) but the image has (4, 3, 3); pick matching labels"
    ]


def test_bugs_say_so_and_log_the_traceback(qtbot, owner, notes, caplog):
    def buggy():
        yield Progress(task="x", done=0, total=1)
        raise RuntimeError("shape mismatch deep inside torch")  # superqt would swallow a RuntimeError

    with caplog.at_level(logging.ERROR, logger="napari_channelbias"):
        job = bridge.start_job(owner, buggy(), "Prediction")
        finished(qtbot, job)
    text = notes[-1].message
    assert notes[-1].severity == NotificationSeverity.ERROR
    assert "bug in napari-channelbias" in text and "RuntimeError: shape mismatch" in text and "log" in text
    assert any(r.exc_info and r.exc_info[0] is RuntimeError for r in caplog.records)


def test_out_of_memory_says_what_to_shrink():
    text = bridge.error_message(MemoryError("cannot allocate 8 GiB"), "Training")
    assert text.startswith("Training: out of memory") and "smaller batch size" in text


def test_callback_errors_are_notifications_not_crashes(qtbot, owner, notes):
    def one():
        yield Progress(task="x", done=1, total=1)

    def broken(_event):
        raise KeyError("plot")

    job = bridge.start_job(owner, one(), "Saliency", on_event=broken)
    finished(qtbot, job)
    assert any("bug" in n.message and "KeyError" in n.message for n in notes)


def test_guarded_slot_reports_instead_of_raising(qtbot, notes):
    button = QPushButton()
    qtbot.addWidget(button)

    def click():
        raise VolumeError("no image layer: open a volume first")

    button.clicked.connect(bridge.guarded(click, "Predict"))
    button.click()  # pytest-qt would fail the test if this raised into the event loop
    assert notes[-1].message == "Predict: no image layer: open a volume first"


def test_destroying_the_owner_stops_its_jobs_and_detaches_callbacks(qtbot):
    owner = QWidget()
    cleaned = threading.Event()
    started = threading.Event()

    def endless():
        try:
            while True:
                started.set()
                time.sleep(0.005)
                yield Progress(task="spin", done=0, total=1)
        finally:
            cleaned.set()

    calls = []
    job = bridge.start_job(owner, endless(), "Spinning", on_finished=calls.append)
    assert started.wait(10)
    owner.deleteLater()
    qtbot.waitUntil(cleaned.is_set, timeout=120_000)
    finished(qtbot, job)
    assert job.cancelled and calls == []  # detached: no callback into the deleted widget


def test_stop_jobs_waits_for_cleanup(qtbot, owner):
    cleaned = threading.Event()

    def endless():
        try:
            while True:
                time.sleep(0.005)
                yield Progress(task="spin", done=0, total=1)
        finally:
            time.sleep(0.05)  # e.g. writing the best checkpoint
            cleaned.set()

    job = bridge.start_job(owner, endless(), "Spinning")
    qtbot.waitUntil(lambda: job.worker.is_running, timeout=120_000)
    assert bridge.stop_jobs(owner, timeout=120)
    assert cleaned.is_set()
    finished(qtbot, job)


def test_progress_cancel_button_cancels_the_job(qtbot, owner):
    def endless():
        while True:
            time.sleep(0.005)
            yield Progress(task="spin", done=0, total=1)

    job = bridge.start_job(owner, endless(), "Spinning")
    job.pbar.cancel()  # what the activity dock's Cancel button calls
    finished(qtbot, job)
    assert job.cancelled


def test_callbacks_stay_in_order_when_a_callback_spins_the_event_loop(qtbot, owner):
    """napari's progress bar can process events inside a callback; order must survive that."""
    from qtpy.QtWidgets import QApplication

    def work():
        for i in range(1, 9):
            yield SliceDone(task="predict", z=i - 1, done=i, total=8)
        return "ok"

    order: list = []

    def on_event(event):
        order.append(event.done)
        QApplication.processEvents()  # re-enters the event loop, as a progress bar redraw can

    job = bridge.start_job(owner, work(), "Predicting", total=8, on_event=on_event,
                           on_done=lambda r: order.append(r), on_finished=lambda j: order.append("finished"))
    finished(qtbot, job)
    assert order == [1, 2, 3, 4, 5, 6, 7, 8, "ok", "finished"]


def test_show_job_end_gives_the_buttons_back_and_says_how_the_job_ended(qtbot, owner, notes):
    from qtpy.QtWidgets import QLabel

    run, cancel, status = QPushButton(owner), QPushButton(owner), QLabel(owner)
    texts = {"done": "all done", "cancelled": "stopped; the rest is kept", "failed": "failed (see the notification)"}

    def quick():
        yield Progress(task="t", done=1, total=1)
        return 1

    def failing():
        yield Progress(task="t", done=0, total=1)
        raise VolumeError("the volume is gone")

    def endless():
        while True:
            time.sleep(0.005)
            yield Progress(task="t", done=0, total=1)

    for gen, expected in ((quick(), "done"), (failing(), "failed"), (endless(), "cancelled")):
        run.setEnabled(False)
        cancel.setEnabled(True)
        status.setText("running")
        outcomes = []
        job = bridge.start_job(owner, gen, "Test", on_finished=lambda j, out=outcomes: out.append(
            bridge.show_job_end(j, [run], cancel, status, **texts)))
        if expected == "cancelled":
            job.cancel()
        finished(qtbot, job)
        assert outcomes == [expected] and bridge.job_outcome(job) == expected
        assert status.text() == texts[expected] and run.isEnabled() and not cancel.isEnabled()
    assert ["Test: the volume is gone"] == [n.message for n in notes if "volume is gone" in n.message]

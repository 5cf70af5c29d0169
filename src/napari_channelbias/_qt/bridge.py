"""The one module that owns ``napari.qt.threading``: run a core generator in a worker thread.

The core writes its long work (training, prediction, saliency over a volume) as generators that yield
small event dataclasses (``events.py``) and return a result. This module runs such a generator in a
Qt thread-pool worker and turns it into GUI behaviour:

* every yielded event goes to the dock's ``on_event`` callback, on the GUI thread;
* events with a position (``TrainStep``, ``SliceDone``, ``Progress``) drive a napari progress bar
  (the activity dock's Cancel button cancels the job);
* the returned value goes to ``on_done``; ``on_finished`` runs last in every case (done, cancelled or
  failed), which is where docks re-enable buttons and release memory (:func:`show_job_end`: the
  buttons and the status line of a section with one job, the same rule for every such section);
* errors become napari notifications: a :class:`~napari_channelbias.errors.ChannelBiasError` shows its
  message (which says what to do), an out-of-memory error says what to shrink, anything else is a bug
  and says so, with the traceback in the log. Nothing raises into the Qt event loop.

Cancelling (:meth:`Job.cancel`, the Stop buttons) asks the worker to quit; it stops at the generator's
next ``yield`` and *closes the generator in the worker thread*, so the core's ``finally`` blocks (keep
the best checkpoint, abort half-written files) run before the job counts as finished. superqt's own
``GeneratorWorker`` only abandons the generator on quit and swallows ``RuntimeError`` (torch raises
those) as "worker deleted", hence the small subclass below.

Jobs are tracked per owner widget; when the owner is destroyed (its viewer closed) its jobs are
cancelled and their callbacks detached, so a late event never touches a deleted widget.
"""

from __future__ import annotations

import atexit
import functools
import logging
import threading
import warnings
from collections import deque
from collections.abc import Callable, Generator, Iterable
from typing import Any

from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_warning
from napari.utils.progress import cancelable_progress
from qtpy.QtCore import QObject
from superqt.utils import GeneratorWorker

from ..errors import ChannelBiasError
from ..events import Progress, SliceDone, TrainStep
from ..llvm_guard import avoid_triton_llvm_clash

log = logging.getLogger("napari_channelbias")

Callback = Callable[..., Any]


# ------------------------------------------------------------------------------------------ notifications
def _is_out_of_memory(exc: BaseException) -> bool:
    # torch.OutOfMemoryError (CUDA) is a RuntimeError subclass; CPU allocators raise MemoryError or a
    # RuntimeError whose message starts with "[enforce fail ..." / "DefaultCPUAllocator: can't allocate".
    return isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError" or (
        isinstance(exc, RuntimeError) and "can't allocate memory" in str(exc)
    )


def error_message(exc: BaseException, context: str = "") -> str:
    """The text a user sees for ``exc``; ``context`` names what was being done (e.g. "Training")."""
    prefix = f"{context}: " if context else ""
    if isinstance(exc, ChannelBiasError):
        return f"{prefix}{exc}"
    if _is_out_of_memory(exc):
        return (
            f"{prefix}out of memory ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}). "
            "Use a smaller batch size, patch size or tile size, or pick another device"
        )
    return (
        f"{prefix}failed because of a bug in napari-channelbias ({type(exc).__name__}: {exc}). "
        "The full traceback is in the log (the terminal napari was started from); please report it"
    )


def report_error(exc: BaseException, context: str = "") -> None:
    """Show ``exc`` as a napari error notification; bugs also log their traceback."""
    if not isinstance(exc, ChannelBiasError) and not _is_out_of_memory(exc):
        log.error("%s failed", context or "napari-channelbias", exc_info=(type(exc), exc, exc.__traceback__))
    show_error(error_message(exc, context))


def guarded(fn: Callable[..., Any], context: str = "") -> Callable[..., None]:
    """A Qt slot that calls ``fn()`` and turns any exception into a notification.

    The signal's own arguments (``clicked``'s ``checked``, ...) are dropped, so the same wrapper works
    for every button; bind arguments with :func:`functools.partial` where they are needed.
    """

    @functools.wraps(fn)
    def slot(*_: Any) -> None:
        try:
            fn()
        except Exception as exc:  # a slot must never raise into the event loop
            report_error(exc, context)

    return slot


def _call_quietly(fn: Callback | None, context: str, *args: Any) -> None:
    if fn is None:
        return
    try:
        fn(*args)
    except Exception as exc:
        report_error(exc, context)


def _relay_warning(show_warning_args: tuple) -> None:
    """Warnings raised in the worker: ours reach the user, third-party ones only the log."""
    message, category, filename, lineno = show_warning_args[:4]
    if "napari_channelbias" in str(filename):
        show_warning(str(message))
    else:
        log.warning("%s:%s: %s: %s", filename, lineno, category.__name__, message)


# ---------------------------------------------------------------------------------------------- the worker
def _passthrough(gen: Generator[Any, None, Any]) -> Generator[Any, None, Any]:
    # GeneratorWorker wants a generator *function*; the docks hand over a generator object.
    return (yield from gen)


class ClosingGeneratorWorker(GeneratorWorker):
    """A ``GeneratorWorker`` that closes its generator in the worker thread when it stops.

    Differences from superqt's: on quit the generator is closed at once (``GeneratorExit`` at its
    current ``yield``) so cleanup runs in this thread before ``finished``; every exception, including
    ``RuntimeError``, is reported through ``errored``; pause / resume and ``send`` are not supported.
    """

    def __init__(self, func: Callable[..., Generator], *args: Any, **kwargs: Any) -> None:
        super().__init__(func, *args, **kwargs)
        self.stopped = threading.Event()  # set once the generator is closed: nothing runs any more

    def work(self) -> Any:
        gen = self._gen
        try:
            while True:
                if self.abort_requested:
                    self.aborted.emit()
                    return None
                try:
                    event = next(gen)
                except StopIteration as stop:
                    return stop.value
                try:
                    self.yielded.emit(event)
                except RuntimeError as exc:  # the signals' QObject is gone: the app is shutting down
                    return exc  # superqt's run() then ends quietly instead of emitting into nothing
        finally:
            try:
                gen.close()
            finally:
                self.stopped.set()


def event_progress(event: Any) -> tuple[int, int, str] | None:
    """``(done, total, text)`` for events that say how far a job is, else None."""
    if isinstance(event, TrainStep):
        return event.step, event.total, f"loss {event.loss:.4f}"
    if isinstance(event, SliceDone):
        return event.done, event.total, f"slice {event.z}"
    if isinstance(event, Progress):
        return event.done, event.total, event.message
    return None


class _JobProgress(cancelable_progress):
    """A napari progress bar whose Cancel button (activity dock) cancels the job at once."""

    def __init__(self, on_cancel: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._on_cancel = on_cancel

    def cancel(self) -> None:
        super().cancel()
        self._on_cancel()


class Job:
    """A core generator running in a worker thread, with its progress bar and callbacks.

    Create it with :func:`start_job`. Callbacks run on the GUI thread; exceptions they raise become
    notifications. After :meth:`detach` (the owner was destroyed) no callback runs any more.
    """

    def __init__(
        self,
        gen: Generator[Any, None, Any],
        description: str,
        *,
        total: int | None = None,
        on_event: Callback | None = None,
        on_done: Callback | None = None,
        on_error: Callback | None = None,
        on_finished: Callback | None = None,
        show_progress: bool = True,
    ) -> None:
        self.description = description
        self.on_event, self.on_done = on_event, on_done
        self.on_error, self.on_finished = on_error, on_finished
        self.cancelled = False
        self.failed: BaseException | None = None
        self.result: Any = None
        self._detached = False
        self._finished = threading.Event()
        self.pbar: _JobProgress | None = None
        if show_progress:
            self.pbar = _JobProgress(self.cancel, total=total or 0, desc=description)
        self.worker: ClosingGeneratorWorker = create_worker(
            _passthrough, gen, _worker_class=ClosingGeneratorWorker, _ignore_errors=True,
            _start_thread=False,
        )
        # Every worker signal goes through one FIFO: a callback that spins the event loop (napari's
        # progress bar can) would otherwise run the next queued signals *inside* it, so the docks saw
        # events in reverse order and `finished` before the last events.
        self._pending: deque[Callable[[], None]] = deque()
        self._draining = False
        self.worker.yielded.connect(lambda event: self._in_order(self._event, event))
        self.worker.returned.connect(lambda result: self._in_order(self._returned, result))
        self.worker.errored.connect(lambda exc: self._in_order(self._errored, exc))
        self.worker.warned.connect(_relay_warning)
        self.worker.finished.connect(lambda: self._in_order(self._worker_finished))

    # -- control -----------------------------------------------------------------------------------
    def start(self) -> Job:
        self.worker.start()
        return self

    def cancel(self) -> None:
        """Ask the job to stop at its next event; cleanup runs in the worker, then ``on_finished``."""
        if not self.is_finished:
            self.cancelled = True
            self.worker.quit()

    def detach(self) -> None:
        """Stop calling back into widgets (they are being deleted) and cancel."""
        self._detached = True
        self.cancel()

    @property
    def is_finished(self) -> bool:
        """True once the worker has fully stopped (the generator is closed)."""
        return self._finished.is_set() or self.worker.stopped.is_set()

    @property
    def settled(self) -> bool:
        """True once the GUI thread has run every callback of the job, ``on_finished`` included."""
        return self._finished.is_set()

    @property
    def is_running(self) -> bool:
        return not self.is_finished

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the generator is closed (not the callbacks); True if it stopped in time."""
        return self.worker.stopped.wait(timeout)

    # -- worker signals, on the GUI thread ---------------------------------------------------------
    def _in_order(self, handler: Callable[..., None], *args: Any) -> None:
        self._pending.append(lambda: handler(*args))
        if self._draining:
            return  # re-entered from a callback: the outer call delivers it after the current one
        self._draining = True
        try:
            while self._pending:
                self._pending.popleft()()
        finally:
            self._draining = False

    def _event(self, event: Any) -> None:
        if self._detached:
            return
        position = event_progress(event)
        if position is not None and self.pbar is not None:
            done, total, text = position
            if self.pbar.total != total:
                self.pbar.total = total
            self.pbar.update(done - self.pbar.n)
            if text:
                self.pbar.set_description(f"{self.description} ({text})")
        _call_quietly(self.on_event, self.description, event)

    def _returned(self, result: Any) -> None:
        self.result = result
        if not self._detached:
            _call_quietly(self.on_done, self.description, result)

    def _errored(self, exc: BaseException) -> None:
        self.failed = exc
        if self._detached:
            log.error("%s failed after its widget closed", self.description, exc_info=exc)
            return
        report_error(exc, self.description)
        _call_quietly(self.on_error, self.description, exc)

    def _worker_finished(self) -> None:
        self._finished.set()
        if self.pbar is not None:
            self.pbar.close()
        _forget(self)
        if not self._detached:
            _call_quietly(self.on_finished, self.description, self)


def job_outcome(job: Job) -> str:
    """How ``job`` ended: ``"cancelled"``, ``"failed"`` or ``"done"``.

    A job cancelled counts as cancelled even if its generator then raised while stopping: the user
    asked it to stop, and the error (if any) was shown as a notification already.
    """
    if job.cancelled:
        return "cancelled"
    return "failed" if job.failed is not None else "done"


def show_job_end(job: Job, run_buttons: Iterable[Any], cancel_button: Any, status: Any, *, done: str,
                 cancelled: str, failed: str) -> str:
    """A section's buttons and status line once its job has ended (call it from ``on_finished``).

    The buttons that start a job come back, Cancel goes grey, and ``status`` (a ``QLabel``) says how the
    job ended: ``done``, ``cancelled`` or ``failed`` (the failure's own message is a notification, so
    this text only points there). Returns :func:`job_outcome`, for what else the section does.
    """
    for button in run_buttons:
        button.setEnabled(True)
    cancel_button.setEnabled(False)
    outcome = job_outcome(job)
    status.setText({"done": done, "cancelled": cancelled, "failed": failed}[outcome])
    return outcome


# ------------------------------------------------------------------------------------- tracking per owner
_JOBS: dict[int, list[Job]] = {}  # id(owner) -> its running jobs


def _forget(job: Job) -> None:
    for jobs in _JOBS.values():
        if job in jobs:
            jobs.remove(job)


def _owner_destroyed(key: int, *_: Any) -> None:
    for job in _JOBS.pop(key, []):
        job.detach()


def start_job(
    owner: QObject,
    gen: Generator[Any, None, Any],
    description: str,
    *,
    total: int | None = None,
    on_event: Callback | None = None,
    on_done: Callback | None = None,
    on_error: Callback | None = None,
    on_finished: Callback | None = None,
    show_progress: bool = True,
) -> Job:
    """Run ``gen`` in a worker thread on behalf of ``owner`` (a widget) and return the started job.

    Parameters
    ----------
    owner
        The widget the job belongs to; its jobs are cancelled when it is destroyed (see
        :func:`stop_jobs` for an explicit stop, e.g. when the viewer closes).
    gen
        A core event generator, not started yet.
    description
        What the job does, shown on the progress bar and in error notifications ("Training").
    total
        Expected number of progress units if known before the first event.
    on_event, on_done, on_error, on_finished
        GUI-thread callbacks: each event; the generator's return value; the exception after it was
        shown as a notification; the :class:`Job` itself at the very end (done, cancelled or failed).
    show_progress
        Whether to show a napari progress bar.
    """
    avoid_triton_llvm_clash()  # the job may build a model, which imports torch._dynamo (and triton)
    job = Job(
        gen, description, total=total, on_event=on_event, on_done=on_done, on_error=on_error,
        on_finished=on_finished, show_progress=show_progress,
    )
    key = id(owner)
    if key not in _JOBS:
        _JOBS[key] = []
        # A functools.partial over the id, not a bound method: the owner's Python object may already be
        # half gone when ``destroyed`` fires.
        owner.destroyed.connect(functools.partial(_owner_destroyed, key))
    _JOBS[key].append(job)
    return job.start()


def jobs_of(owner: QObject) -> list[Job]:
    """The jobs of ``owner`` that have not finished yet."""
    return [job for job in _JOBS.get(id(owner), []) if not job.is_finished]


def stop_jobs(owner: QObject, timeout: float = 10.0, detach: bool = True) -> bool:
    """Cancel ``owner``'s jobs and wait (up to ``timeout`` seconds each) until their generators closed.

    Returns True if all stopped in time. With ``detach`` their callbacks are not called any more
    (use it when the widgets are about to be deleted).
    """
    jobs = list(_JOBS.get(id(owner), []))
    for job in jobs:
        job.detach() if detach else job.cancel()
    stopped = all(job.wait(timeout) for job in jobs)
    if not stopped:
        warnings.warn(
            f"{sum(not j.is_finished for j in jobs)} napari-channelbias job(s) did not stop within "
            f"{timeout:.0f} s; they will end after their current step",
            RuntimeWarning, stacklevel=2,
        )
    return stopped


def _stop_everything_at_exit() -> None:
    """Interpreter exit with jobs still running (a script ended without closing its viewer)."""
    for job in all_jobs():
        job.detach()
    for job in all_jobs():
        job.wait(30.0)


atexit.register(_stop_everything_at_exit)


def all_jobs() -> list[Job]:
    """Every unfinished job of every owner (for tests and the latency benchmark)."""
    return [job for jobs in _JOBS.values() for job in jobs if not job.is_finished]


__all__ = [
    "ClosingGeneratorWorker", "Job", "all_jobs", "error_message", "event_progress", "guarded", "job_outcome",
    "jobs_of", "report_error", "show_job_end", "start_job", "stop_jobs",
]

"""Nudging a worker to run a task soon, without ever making a request wait for the broker.

What a nudge asks for is already in the database (a queued job, a finished
batch), and the render watcher's periodic rounds pick it up anyway, so a nudge
only shortens the wait. Nudges go out from one background thread per process
and coalesce: a thousand submits while the broker hangs cost one stuck thread,
not a thousand stuck requests.
"""

from __future__ import annotations

import logging
import os
import threading

log = logging.getLogger(__name__)

DISPATCH = "generation.dispatch"
FINISH_RUNS = "telemetry.finish_runs"

_wanted: set[str] = set()
_wake = threading.Event()
_lock = threading.Lock()
_thread: threading.Thread | None = None
_owner_pid = 0


def _run() -> None:
    from storycore.celery import app

    while True:
        _wake.wait()
        with _lock:
            _wake.clear()
            names = sorted(_wanted)
            _wanted.clear()
        for name in names:
            try:
                app.send_task(name, retry=False)
            except Exception:
                log.warning("%s nudge not sent; the broker is unavailable (the watcher sweeps anyway)", name)


def nudge(task_name: str = DISPATCH) -> None:
    global _thread, _owner_pid
    with _lock:
        _wanted.add(task_name)
        _wake.set()
        # A forked worker inherits the flag but not the thread.
        if _thread is None or not _thread.is_alive() or _owner_pid != os.getpid():
            _owner_pid = os.getpid()
            _thread = threading.Thread(target=_run, name="task-nudge", daemon=True)
            _thread.start()

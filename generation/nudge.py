"""Nudging a worker to run a dispatch round, without ever making a request wait for the broker.

The job is already in the database when a nudge is sent, and the render
watcher runs dispatch rounds on its own every few seconds, so a nudge only
shortens the wait. Nudges go out from one background thread per process and
coalesce: a thousand submits while the broker hangs cost one stuck thread,
not a thousand stuck requests.
"""

from __future__ import annotations

import logging
import os
import threading

log = logging.getLogger(__name__)

_wanted = threading.Event()
_lock = threading.Lock()
_thread: threading.Thread | None = None
_owner_pid = 0


def _run() -> None:
    from generation.tasks import dispatch  # tasks import services; keep the cycle out of import time

    while True:
        _wanted.wait()
        _wanted.clear()
        try:
            dispatch.apply_async(retry=False)
        except Exception:
            log.warning("dispatch nudge not sent; the broker is unavailable (the watcher dispatches anyway)")


def nudge() -> None:
    global _thread, _owner_pid
    _wanted.set()
    with _lock:
        # A forked worker inherits the flag but not the thread.
        if _thread is None or not _thread.is_alive() or _owner_pid != os.getpid():
            _owner_pid = os.getpid()
            _thread = threading.Thread(target=_run, name="dispatch-nudge", daemon=True)
            _thread.start()

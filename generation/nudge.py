"""Nudging the studio to do something soon, without ever making a request wait for the broker.

What a nudge asks for is already in the database (a queued job, a finished
batch), and periodic rounds pick it up anyway, so a nudge only shortens the
wait. A dispatch nudge is published on a Redis channel that the render watcher
listens to (it is the one dispatcher; a Celery worker racing it for the same
rows only adds lock waits); any other nudge is a Celery task. Nudges go out
from one background thread per process and coalesce: a thousand submits while
the broker hangs cost one stuck thread, not a thousand stuck requests.
"""

from __future__ import annotations

import logging
import os
import threading

log = logging.getLogger(__name__)

DISPATCH = "generation.dispatch"
FINISH_RUNS = "telemetry.finish_runs"
# The Redis channel the render watcher listens on for dispatch nudges.
DISPATCH_CHANNEL = "storycore.dispatch"

_wanted: set[str] = set()
_wake = threading.Event()
_lock = threading.Lock()
_thread: threading.Thread | None = None
_owner_pid = 0


def _run() -> None:
    import redis
    from django.conf import settings

    from storycore.celery import app

    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    while True:
        _wake.wait()
        with _lock:
            _wake.clear()
            names = sorted(_wanted)
            _wanted.clear()
        for name in names:
            try:
                if name == DISPATCH:
                    client.publish(DISPATCH_CHANNEL, b"1")
                else:
                    app.send_task(name, retry=False)
            except Exception:
                log.warning("%s nudge not sent; the broker is unavailable (periodic rounds cover it)", name)


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

"""Following renders in tests the way the render watcher does, without its database.

ComfyUI: `SocketFollowing` runs the watcher's own socket loop
(`generation.providers.comfyui_follow.SocketFollower`) on a thread, under one provider's client
id, from before anything is submitted (as the watcher's socket is). It keeps each prompt's
events as BackendWatch receives them, and checks the renders a test is following with
`generation.providers.checks`, as `attempts.attempt_check` does: a check asks `outcome` and
`queue_place`, judges the answer, and a TIMEOUT cancels the render on the backend. What needs
the database is left out: a forgotten render's outputs are not looked for (it ends as LOST).

RunPod: `poll_until_done` polls one render as PollWatch does: a check on the poll interval,
backing off with `checks.next_check_delay`.

Both report what the watcher would do to the job as events: the socket's own (without
SUCCESS, which the watcher ignores: the end is the `executing` null that follows), and from
the checks QUEUED (pending), STARTED (running), FINISHED (done) or FAILED with the error.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections import defaultdict
from collections.abc import Callable

from generation.providers.base import EventKind, ProgressEvent, Provider, ProviderError, RemoteHandle
from generation.providers.checks import (
    CheckCounters,
    CheckLimits,
    CheckOutcome,
    RenderCheck,
    next_check_delay,
    render_check,
)
from generation.providers.comfyui import KIND, ComfyUIProvider
from generation.providers.comfyui_follow import SocketFollower

# Beyond the render's own max wait, how long a test waits for the loop before calling it stuck.
STUCK_AFTER_S = 30.0
STOP_WAIT_S = 5.0
ENDS = (EventKind.FINISHED, EventKind.FAILED)


def event_of(check: RenderCheck) -> ProgressEvent | None:
    """What attempt_check does to the job on this verdict, as an event."""
    if check.found == CheckOutcome.DONE:
        return ProgressEvent(EventKind.FINISHED)
    if check.error is not None:
        return ProgressEvent(EventKind.FAILED, error=check.error)
    if check.found == CheckOutcome.RUNNING:
        return ProgressEvent(EventKind.STARTED)
    if check.found == CheckOutcome.PENDING:
        return ProgressEvent(EventKind.QUEUED)
    return None


def cancel_quietly(provider: Provider, handle: RemoteHandle) -> None:
    """As attempts.attempt_cancel_remote_quietly: a render that timed out is stopped."""
    try:
        provider.cancel(handle)
    except ProviderError:
        pass


def check_once(
    provider: Provider, handle: RemoteHandle, counters: CheckCounters, *, waited_s: float, max_wait: float
) -> RenderCheck:
    """One check as attempt_check makes it (a submitted render), cancelling one that timed out."""
    check = render_check(
        provider, handle, counters, submitted=True, waited_s=waited_s, limits=CheckLimits(max_wait_s=max_wait)
    )
    if check.found == CheckOutcome.TIMEOUT:
        cancel_quietly(provider, handle)
    return check


def poll_until_done(
    provider: Provider, handle: RemoteHandle, *, poll_interval: float, max_wait: float
) -> list[ProgressEvent]:
    """Check one render on its poll interval until a check ends it (PollWatch's loop)."""
    counters = CheckCounters()
    started = time.monotonic()
    delay: float | None = None
    events: list[ProgressEvent] = []
    while True:
        check = check_once(provider, handle, counters, waited_s=time.monotonic() - started, max_wait=max_wait)
        event = event_of(check)
        if event is not None and (not events or events[-1].kind != event.kind):
            events.append(event)
        if check.found.ends_the_render:
            return events
        assert time.monotonic() - started < max_wait + STUCK_AFTER_S, f"stuck at {check.found}"
        delay = next_check_delay(check.found, interval=poll_interval, previous=delay)
        time.sleep(delay)


@dataclasses.dataclass
class _Render:
    """A render the checks know: since when, and what they have seen."""

    started: float
    counters: CheckCounters = dataclasses.field(default_factory=CheckCounters)
    max_wait: float = 0.0
    read: int = 0  # how many of its events a test has taken


class SocketFollowing:
    """The render watcher's socket loop for one ComfyUI provider's client id, on a thread."""

    def __init__(self, provider: ComfyUIProvider) -> None:
        self.provider = provider
        self.events: dict[str, list[ProgressEvent]] = defaultdict(list)
        self.socket_changes: list[bool] = []
        self._renders: dict[str, _Render] = {}
        self._followed: set[str] = set()  # the renders a test waits on: only they are checked
        self._checking: set[str] = set()
        self._changed = threading.Condition()
        self._loop = asyncio.new_event_loop()
        self._task: asyncio.Task[None] | None = None
        self.follower = SocketFollower(
            provider.base_url,
            provider.client_id,
            on_event=self._on_event,
            on_socket=self._on_socket,
            on_check=self._on_check,
            poll_interval=provider.timeouts.poll_interval,
            connect_timeout=provider.timeouts.connect,
        )
        self._thread = threading.Thread(target=self._run, daemon=True, name="socket-following")

    # -- lifecycle ----------------------------------------------------------------
    def start(self, *, timeout: float = 10.0) -> SocketFollowing:
        """Start the loop and wait for its socket: a render submitted after this is followed
        from its first message, as the watcher's are."""
        self._thread.start()
        with self._changed:
            if not self._changed.wait_for(lambda: self.follower.connected, timeout):
                raise AssertionError(f"no socket to {self.provider.base_url} within {timeout} s")
        return self

    def stop(self) -> None:
        if self._task is not None and not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(self._task.cancel)
            except RuntimeError:
                pass  # it closed meanwhile: stopped already
        self._thread.join(STOP_WAIT_S)

    def _run(self) -> None:
        async def main() -> None:
            self._task = asyncio.current_task()
            try:
                await self.follower.run()
            except asyncio.CancelledError:
                pass

        try:
            self._loop.run_until_complete(main())
            self._loop.run_until_complete(self._loop.shutdown_default_executor())
        finally:
            self._loop.close()

    # -- the follower's callbacks (on its thread) ------------------------------------
    async def _on_event(self, prompt_id: str, event: ProgressEvent) -> None:
        with self._changed:
            self.events[prompt_id].append(event)
            self._changed.notify_all()

    async def _on_socket(self, up: bool) -> None:
        with self._changed:
            self.socket_changes.append(up)
            self._changed.notify_all()

    async def _on_check(self) -> None:
        # As BackendWatch._check: each render out on the backend, one after the other, off the loop.
        with self._changed:
            due = sorted(self._followed)
            self._checking.update(due)
        for prompt_id in due:
            try:
                await asyncio.to_thread(self._check, prompt_id)
            finally:
                with self._changed:
                    self._checking.discard(prompt_id)
                    self._changed.notify_all()

    def _check(self, prompt_id: str) -> None:
        render = self._renders[prompt_id]
        check = check_once(
            self.provider,
            RemoteHandle(KIND, prompt_id),
            render.counters,
            waited_s=time.monotonic() - render.started,
            max_wait=render.max_wait,
        )
        event = event_of(check)
        if event is not None and event.kind in ENDS:
            with self._changed:
                self.events[prompt_id].append(event)
                self._changed.notify_all()

    # -- what a test asks ----------------------------------------------------------
    def follow(
        self,
        handle: RemoteHandle,
        stop: Callable[[ProgressEvent], bool] | None = None,
        *,
        max_wait: float,
    ) -> list[ProgressEvent]:
        """The render's events from where the last call left off, until it ends (FINISHED or
        FAILED, from its socket or a check) or `stop` says so. It is checked while this runs."""
        prompt_id = handle.remote_id
        taken: list[ProgressEvent] = []
        with self._changed:
            render = self._renders.setdefault(prompt_id, _Render(started=time.monotonic()))
            render.max_wait = max_wait
            self._followed.add(prompt_id)
            deadline = time.monotonic() + max_wait + STUCK_AFTER_S
            try:
                while True:
                    events = self.events[prompt_id]
                    while render.read < len(events):
                        event = events[render.read]
                        render.read += 1
                        if event.kind == EventKind.SUCCESS:
                            continue  # the watcher acts on the `executing` null that follows
                        taken.append(event)
                        if event.kind in ENDS or (stop is not None and stop(event)):
                            return taken
                    left = deadline - time.monotonic()
                    assert left > 0, f"{prompt_id} neither ended nor stopped: {[e.kind for e in taken]}"
                    self._changed.wait(left)
            finally:
                self._followed.discard(prompt_id)
                # A check under way still talks to the server: let it finish before the test goes on.
                self._changed.wait_for(lambda: prompt_id not in self._checking, STOP_WAIT_S)

"""The render watcher: one process that follows every render on every backend.

Renders are submitted under each backend's own client id, so one WebSocket per
backend carries the messages of all of them; no process or thread waits per
job. That socket's loop is generation.providers.comfyui_follow.SocketFollower
(pure); BackendWatch here says what its events and checks mean for the
database. Progress goes to the job as it comes; preview frames go
to the brief's sockets, a few a second at most (generation/live_previews.py). When a render ends, the outputs are
fetched on a small thread pool, and the freed slot is filled at once. While a
socket is down, and every few poll intervals while it is up, each render out on
that backend is checked through /history and /queue (generation.attempts.attempt_check).
The watcher also runs dispatch and reconcile rounds itself, so renders keep
flowing while the broker is away. Backends that push nothing (RunPod) have no
socket: one loop per backend checks every render on it (PollWatch). Which a
backend gets is its kind's registration (providers.registry.follow_of).

Run exactly one watcher per studio: ComfyUI gives a client id's messages to the
newest socket only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, TypeVar

from django.conf import settings
from django.db import close_old_connections, connection

from generation import attempts, events
from generation.dispatch import dispatch_round
from generation.live_previews import PreviewGate, card_sized, data_url
from generation.models import Attempt, AttemptState, Backend
from generation.nudge import DISPATCH_CHANNEL
from generation.providers import registry
from generation.providers.base import EventKind, ProgressEvent
from generation.providers.checks import CheckOutcome, next_check_delay
from generation.providers.comfyui_follow import SocketFollower
from generation.providers.registry import Follow
from generation.reconciler import reconcile
from generation.services import backend_socket_changed, check_backends

log = logging.getLogger(__name__)

T = TypeVar("T")
PROGRESS_MIN_INTERVAL = 0.2
BACKENDS_REFRESH = 2.0
SOCKET_RETRY_MAX = 1.0


class Watcher:
    def __init__(self, *, workers: int = 4) -> None:
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="watcher")
        # Reconcile passes and health checks may wait on slow backends: never in the render path.
        self.background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="watcher-background")
        # Dispatch rounds get a thread of their own: a freed slot is refilled without
        # queueing behind other renders' fetches and progress writes.
        self.dispatcher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="watcher-dispatch")
        # SQLite has one writer, and a thread that finds the lock taken sleeps in steps of
        # up to 100 ms before it looks again: the render path's threads take turns here
        # instead, where the wait ends the moment the other is done (0.95 -> 0.98 of the
        # ideal in benchmarks/dispatch_efficiency.py). PostgreSQL needs no turns.
        self.writer: AbstractContextManager[Any] = (
            threading.Lock() if connection.vendor == "sqlite" else contextlib.nullcontext()
        )
        self.backends: dict[int, asyncio.Task[None]] = {}
        self.stopping = asyncio.Event()
        self.dispatch_wanted = asyncio.Event()

    async def db(
        self, fn: Callable[..., T], *args: Any, pool: ThreadPoolExecutor | None = None, **kwargs: Any
    ) -> T:
        # Reconcile passes and health checks wait on backends' answers: they never hold the turn.
        turn = contextlib.nullcontext() if pool is self.background else self.writer

        def call() -> T:
            with turn:
                close_old_connections()
                try:
                    return fn(*args, **kwargs)
                finally:
                    close_old_connections()

        return await asyncio.get_running_loop().run_in_executor(pool or self.pool, call)

    async def run(self) -> None:
        tickers = [
            asyncio.create_task(
                self._every(
                    settings.DISPATCH_INTERVAL,
                    dispatch_round,
                    wake=self.dispatch_wanted,
                    pool=self.dispatcher,
                )
            ),
            asyncio.create_task(self._listen_for_nudges()),
            asyncio.create_task(self._every(settings.RECONCILE_INTERVAL, reconcile, background=True)),
            asyncio.create_task(
                self._every(settings.BACKEND_HEALTH_INTERVAL, check_backends, background=True)
            ),
        ]
        try:
            while not self.stopping.is_set():
                await self._refresh_backends()
                try:
                    await asyncio.wait_for(self.stopping.wait(), BACKENDS_REFRESH)
                except TimeoutError:
                    pass
        finally:
            for task in [*tickers, *self.backends.values()]:
                task.cancel()
            await asyncio.gather(*tickers, *self.backends.values(), return_exceptions=True)
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.background.shutdown(wait=True, cancel_futures=True)
            self.dispatcher.shutdown(wait=True, cancel_futures=True)

    async def _every(
        self,
        seconds: float,
        fn: Callable[[], Any],
        *,
        background: bool = False,
        wake: asyncio.Event | None = None,
        pool: ThreadPoolExecutor | None = None,
    ) -> None:
        """Run `fn` every `seconds`, or as soon as `wake` is set."""
        while True:
            if wake is not None:
                wake.clear()
            try:
                await self.db(fn, pool=self.background if background else pool)
            except Exception:
                log.exception("%s failed; trying again in %.0f s", fn.__name__, seconds)
            if wake is None:
                await asyncio.sleep(seconds)
                continue
            try:
                await asyncio.wait_for(wake.wait(), seconds)
            except TimeoutError:
                pass

    async def _listen_for_nudges(self) -> None:
        """Dispatch as soon as a submit says there is work, not at the next tick."""
        import redis.asyncio as aioredis

        delay = 0.5
        while True:
            client = aioredis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2)
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(DISPATCH_CHANNEL)
                    delay = 0.5
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            self.dispatch_wanted.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # The periodic round covers the gap; nudges resume when the broker answers.
                log.info(
                    "dispatch nudges unavailable (%s); retrying in %.0f s", exc.__class__.__name__, delay
                )
            finally:
                await client.aclose()
            await asyncio.sleep(delay)
            # Knocking once a second costs a refused connection; a backend that restarted is
            # back in use within that second, and its renders resync at once.
            delay = min(delay * 2, SOCKET_RETRY_MAX)

    async def _refresh_backends(self) -> None:
        rows = await self.db(
            lambda: list(Backend.objects.filter(enabled=True).values_list("pk", "base_url", "uuid", "kind"))
        )
        wanted = {pk: (url, f"storycore-{uid}", kind) for pk, url, uid, kind in rows}
        for pk in set(self.backends) - set(wanted):
            self.backends.pop(pk).cancel()
        for pk, (url, client_id, kind) in wanted.items():
            task = self.backends.get(pk)
            if task is None or task.done():
                follow = (
                    BackendWatch(self, pk, url, client_id).run()
                    if registry.follow_of(kind) == Follow.COMFYUI_SOCKET
                    else PollWatch(self, pk).run()
                )
                self.backends[pk] = asyncio.create_task(follow)


@dataclass
class PreviewFeed:
    """Where one attempt's preview frames go, and which of them may."""

    target: events.PreviewTarget
    gate: PreviewGate


class BackendWatch:
    """One ComfyUI backend: its socket and checks (`SocketFollower`), and what they mean here.

    The follower hands over each frame about a prompt, the socket going up or down, and the
    moments to check; this adapter finds the prompt's attempt and calls the services."""

    def __init__(self, watcher: Watcher, backend_id: int, base_url: str, client_id: str) -> None:
        self.watcher = watcher
        self.backend_id = backend_id
        self.follower = SocketFollower(
            base_url,
            client_id,
            on_event=self._on_event,
            on_socket=self._record_socket,
            on_check=self._check,
            poll_interval=settings.RENDER_POLL_INTERVAL,
            connect_timeout=settings.RENDER_CONNECT_TIMEOUT,
        )
        self.attempt_ids: dict[str, int] = {}
        self.last_progress: dict[int, float] = {}
        self.finishing: set[int] = set()
        # Attempt -> its preview frames' feed, or None while they are dropped (it ended).
        self.previews: dict[int, PreviewFeed | None] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        await self.follower.run()

    async def _record_socket(self, connected: bool) -> None:
        await self.watcher.db(lambda: backend_socket_changed(backend_id=self.backend_id, connected=connected))

    async def _attempt_id(self, prompt_id: str) -> int | None:
        if prompt_id in self.attempt_ids:
            return self.attempt_ids[prompt_id]
        found = await self.watcher.db(
            lambda: Attempt.objects.filter(backend_id=self.backend_id, remote_handle=prompt_id)
            .values_list("pk", flat=True)
            .first()
        )
        if found is not None:
            self.attempt_ids[prompt_id] = found
        return found

    async def _on_event(self, prompt_id: str, event: ProgressEvent) -> None:
        attempt_id = await self._attempt_id(prompt_id)
        if attempt_id is None or attempt_id in self.finishing:
            return
        if event.kind in (EventKind.STARTED, EventKind.NODE):
            if attempt_id not in self.last_progress:
                self.last_progress[attempt_id] = 0.0
                await self.watcher.db(attempts.attempt_started, attempt_id)
        elif event.kind == EventKind.PROGRESS and event.value is not None and event.maximum:
            now = time.monotonic()
            if (
                now - self.last_progress.get(attempt_id, 0.0) >= PROGRESS_MIN_INTERVAL
                or event.value >= event.maximum
            ):
                self.last_progress[attempt_id] = now
                await self.watcher.db(
                    attempts.attempt_progress, attempt_id, value=event.value, maximum=event.maximum
                )
        elif event.kind == EventKind.PREVIEW and event.preview:
            await self._preview(attempt_id, event.preview)
        elif event.kind == EventKind.OUTPUT and event.outputs:
            await self.watcher.db(attempts.attempt_outputs_reported, attempt_id, event.outputs)
        elif event.kind == EventKind.FINISHED:
            self._finish(
                attempt_id, lambda: attempts.attempt_finalize(attempt_id, claimed=True), claim_first=True
            )
        elif event.kind == EventKind.FAILED and event.error is not None:
            error = event.error
            self._finish(
                attempt_id, lambda: attempts.attempt_failed(Attempt.objects.get(pk=attempt_id), error)
            )

    async def _preview(self, attempt_id: int, image: bytes) -> None:
        """Pass a frame on to the brief's sockets when the attempt's gate lets it through.

        The names a frame carries are read once per attempt, not per frame."""
        if settings.LIVE_PREVIEW_MAX_BYTES == 0:
            return
        if attempt_id not in self.previews:
            target = await self.watcher.db(events.preview_target, attempt_id)
            self.previews[attempt_id] = (
                None
                if target is None
                else PreviewFeed(
                    target,
                    PreviewGate(
                        min_interval=settings.LIVE_PREVIEW_MIN_INTERVAL_S,
                        max_bytes=settings.LIVE_PREVIEW_MAX_BYTES,
                    ),
                )
            )
        feed = self.previews.get(attempt_id)
        if feed is None:
            return
        content_type = feed.gate.admit(image, now=time.monotonic())
        if content_type is None:
            return
        sized = await asyncio.to_thread(
            card_sized, image, content_type, max_side=settings.LIVE_PREVIEW_MAX_SIDE
        )
        if sized is not None:
            await events.publish_preview(feed.target, data_url(*sized))

    def _finish(self, attempt_id: int, work: Callable[[], None], *, claim_first: bool = False) -> None:
        """End an attempt off the event loop, filling the freed slot as early as possible."""
        self.finishing.add(attempt_id)
        self.previews[attempt_id] = None  # a frame that comes after the end is not shown

        async def run() -> None:
            try:
                if claim_first:
                    # The GPU is free once the job is fetching: refill it before the fetch.
                    if not await self.watcher.db(attempts.attempt_claim_fetch, attempt_id):
                        return
                    refill = asyncio.create_task(
                        self.watcher.db(dispatch_round, pool=self.watcher.dispatcher)
                    )
                    await self.watcher.db(work)
                    await refill
                else:
                    await self.watcher.db(work)
                    await self.watcher.db(dispatch_round, pool=self.watcher.dispatcher)
            except Exception:
                log.exception("ending attempt %s failed; the reconciler will retry", attempt_id)
            finally:
                self.finishing.discard(attempt_id)
                self.last_progress.pop(attempt_id, None)

        task = asyncio.create_task(run())
        self.tasks.add(task)  # a reference, or the loop may drop the task mid-fetch
        task.add_done_callback(self.tasks.discard)

    async def _check(self) -> None:
        """Ask the backend about every render out on it (the follower says when)."""
        out = await self.watcher.db(
            lambda: list(
                Attempt.objects.filter(backend_id=self.backend_id, state=AttemptState.RUNNING).values_list(
                    "pk", flat=True
                )
            )
        )
        # Feeds of attempts no longer running go; a late frame of one reads that it ended.
        for gone in set(self.previews) - set(out):
            self.previews.pop(gone, None)
        for attempt_id in out:
            if attempt_id in self.finishing:
                continue
            try:
                await self.watcher.db(attempts.attempt_check, attempt_id)
            except Exception:
                log.exception("checking attempt %s failed", attempt_id)


class PollWatch:
    """One backend that pushes nothing (RunPod): each render on it is checked (RunPod: /status)
    at its queue policy's poll interval, backing off (doubling, up to checks.MAX_BACKOFF) while the
    backend is unreachable or rate limiting. One loop serves every render on the backend."""

    def __init__(self, watcher: Watcher, backend_id: int) -> None:
        self.watcher = watcher
        self.backend_id = backend_id
        self.next_check: dict[int, float] = {}
        self.delay: dict[int, float] = {}

    async def run(self) -> None:
        tick = max(0.05, min(settings.RENDER_POLL_INTERVAL, 1.0) / 2)
        while True:
            await self._round()
            await asyncio.sleep(tick)

    async def _round(self) -> None:
        rows = await self.watcher.db(
            lambda: list(
                Attempt.objects.filter(backend_id=self.backend_id, state=AttemptState.RUNNING).values_list(
                    "pk", "policy"
                )
            )
        )
        out = {pk for pk, _ in rows}
        for gone in set(self.next_check) - out:
            self.next_check.pop(gone, None)
            self.delay.pop(gone, None)
        ended = False
        for attempt_id, policy in rows:
            if time.monotonic() < self.next_check.get(attempt_id, 0.0):
                continue
            interval = float((policy or {}).get("poll_interval_s", settings.RENDER_POLL_INTERVAL))
            try:
                found = await self.watcher.db(attempts.attempt_check, attempt_id)
            except Exception:
                log.exception("checking attempt %s failed", attempt_id)
                found = CheckOutcome.UNREACHABLE
            delay = next_check_delay(found, interval=interval, previous=self.delay.get(attempt_id))
            ended = ended or found.ends_the_render
            self.delay[attempt_id] = delay
            self.next_check[attempt_id] = time.monotonic() + delay
        if ended:
            await self.watcher.db(dispatch_round, pool=self.watcher.dispatcher)  # a slot came free


def run_watcher() -> None:
    # The watcher's threads live as long as it does: keep their database connections
    # rather than opening one per call (on SQLite that was ~7 % of its busy time).
    database = settings.DATABASES["default"]
    if not database.get("CONN_MAX_AGE"):
        database["CONN_MAX_AGE"] = 300
        database["CONN_HEALTH_CHECKS"] = True
    watcher = Watcher(workers=settings.WATCHER_THREADS)
    loop = asyncio.new_event_loop()
    import signal

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, watcher.stopping.set)
    log.info("render watcher started")
    loop.run_until_complete(watcher.run())
    loop.close()
    log.info("render watcher stopped")

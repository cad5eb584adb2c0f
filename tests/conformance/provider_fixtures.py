"""Fixtures that point our real ComfyUIProvider at a replay of a recording or at the preview server.

Test modules import `open_target` (and whatever helpers they use) from here; conftest.py
stays untouched. A test asks `open_target(transcript)` for a server; the fixture is
parametrized, so every such test runs once against the replay server ("replay") and once
against the storyboard preview server ("preview").

Renders are followed the way production follows them: each provider a test opens gets the
render watcher's socket loop under its client id, started before anything is submitted
(tests/following.py: `SocketFollower`, and the checks of `generation.providers.checks` as
attempt_check makes them); `collect_events` reads what it delivered for one prompt.
`socket_watch` wraps that loop's socket so a test can see every frame it read.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import threading
import uuid
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection

from generation.providers import comfyui_follow
from generation.providers.base import EventKind, ProgressEvent, RemoteHandle, RenderRequest
from generation.providers.comfyui import ComfyUIProvider, Timeouts
from tests.following import SocketFollowing

from .conftest import RunningServer, recorded_step, recording
from .replay_server import ReplayServer

# poll_interval 0.2 s means the socket loop checks every second while its socket is up.
TIMEOUTS = Timeouts(connect=5.0, read=10.0, poll_interval=0.2, post_execution=3.0)
# The queue policy's max wait for the renders a test follows (attempt_check's bound): short
# enough that a stuck render fails the test in seconds, long enough for a loaded CI box.
MAX_WAIT = 15.0
CLOSE_WAIT_S = 1.0
# What a client that wants preview metadata sends as its first socket message.
FEATURE_FLAGS = {"type": "feature_flags", "data": {"supports_preview_metadata": True}}


class RecordingTransport(httpx.HTTPTransport):
    """An HTTP transport that keeps every request a provider sent, so tests can read the bodies."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.sent.append(request)
        return super().handle_request(request)


@dataclasses.dataclass
class Target:
    """One server under test and the providers opened against it."""

    kind: str  # "replay" | "preview"
    transcript: str
    base_url: str
    replay: ReplayServer | None = None
    preview: RunningServer | None = None
    transport: RecordingTransport = dataclasses.field(default_factory=RecordingTransport)
    providers: list[ComfyUIProvider] = dataclasses.field(default_factory=list)
    followings: list[SocketFollowing] = dataclasses.field(default_factory=list)

    def provider(
        self, socket: str | None = None, *, client_id: str | None = None, timeouts: Timeouts = TIMEOUTS
    ) -> ComfyUIProvider:
        """A provider whose client id is the one the recorded socket used (replay), or the given one,
        with the render watcher's socket loop already following that client id.

        On the replay a provider gets its socket only for a recorded one (`socket`): the replay
        has nothing else to play, and answers any other with 599.
        """
        if self.replay is not None and socket is not None:
            client_id = recording(self.transcript)[socket]["client_id_in_url"]
        provider = ComfyUIProvider(
            self.base_url, timeouts=timeouts, client_id=client_id, transport=self.transport
        )
        self.providers.append(provider)
        if self.replay is None or socket is not None:
            following = SocketFollowing(provider)
            self.followings.append(following)
            _FOLLOWING[provider] = following
            following.start()
        return provider

    def render_request(self, label: str, workflow: dict[str, Any] | None = None) -> RenderRequest:
        """The recorded prompt of step `label`; on the replay, with the prompt_id it was given.

        The recorded ids are UUIDs, so the replay can be asked for exactly the recorded run;
        the preview server gets a fresh id, as every real attempt does.
        """
        step = recorded_step(self.transcript, label)
        prompt = copy.deepcopy(workflow if workflow is not None else step["request"]["json"]["prompt"])
        recorded_id = (step["response"].get("json") or {}).get("prompt_id")
        if self.replay is None or recorded_id is None:  # a rejected prompt was given no id
            return RenderRequest(attempt_id=str(uuid.uuid4()), workflow=prompt)
        return RenderRequest(attempt_id=recorded_id, workflow=prompt)

    def while_running(self, prompt_id: str) -> None:
        """Replay only: let the provider's polls during a run get ComfyUI's in-flight answers."""
        if self.replay is not None:
            self.replay.stand_in_no_history(prompt_id)
            self.replay.stand_in_queue_running(prompt_id)

    def done_running(self) -> None:
        if self.replay is not None:
            self.replay.clear_stand_ins()

    def bodies_sent(self, method: str, path: str) -> list[Any]:
        """JSON bodies of the requests to `path`: as the replay server received them, or as sent."""
        if self.replay is not None:
            return [r.json() for r in self.replay.received_for(method, path)]
        return [
            json.loads(r.content) if r.content else None
            for r in self.transport.sent
            if r.method == method and r.url.path == path
        ]


# Each provider's socket loop, for collect_events.
_FOLLOWING: weakref.WeakKeyDictionary[ComfyUIProvider, SocketFollowing] = weakref.WeakKeyDictionary()


def following_of(provider: ComfyUIProvider) -> SocketFollowing:
    following = _FOLLOWING.get(provider)
    assert following is not None, (
        "this provider has no socket loop (a replay provider needs a recorded socket)"
    )
    return following


def collect_events(
    provider: ComfyUIProvider,
    handle: RemoteHandle,
    stop: Callable[[ProgressEvent], bool] | None = None,
    *,
    max_wait: float = MAX_WAIT,
) -> list[ProgressEvent]:
    """The render's events as the render watcher gets them (its socket loop's, and its checks'
    verdicts), until the render ends or `stop` says so. `max_wait` is the queue policy's max wait,
    enforced by the checks as attempt_check enforces it; a later call goes on where this one stopped."""
    return following_of(provider).follow(handle, stop, max_wait=max_wait)


def kinds(events: list[ProgressEvent]) -> list[EventKind]:
    return [event.kind for event in events]


class WatchedSocket:
    """The socket loop's socket, keeping every frame the loop read from it."""

    def __init__(self, connection: ClientConnection, url: str) -> None:
        self.connection = connection
        self.url = url
        self.frames: list[str | bytes] = []

    def __aiter__(self) -> AsyncIterator[str | bytes]:
        return self._read()

    async def _read(self) -> AsyncIterator[str | bytes]:
        async for frame in self.connection:
            self.frames.append(frame)
            yield frame

    def __getattr__(self, name: str) -> Any:
        return getattr(self.connection, name)


@dataclasses.dataclass
class SocketWatch:
    """The sockets the loops opened; with `negotiate`, each sends feature_flags as its first message."""

    opened: list[WatchedSocket] = dataclasses.field(default_factory=list)
    negotiate: bool = False


class _WatchedConnect:
    """websockets' connect, handing the loop a WatchedSocket."""

    def __init__(self, watch: SocketWatch, connecting: Any, url: str) -> None:
        self.watch = watch
        self.connecting = connecting
        self.url = url

    async def __aenter__(self) -> WatchedSocket:
        connection = await self.connecting.__aenter__()
        if self.watch.negotiate:
            await connection.send(json.dumps(FEATURE_FLAGS))
        socket = WatchedSocket(connection, self.url)
        self.watch.opened.append(socket)
        return socket

    async def __aexit__(self, *exc: Any) -> Any:
        return await self.connecting.__aexit__(*exc)


@pytest.fixture
def socket_watch(monkeypatch: pytest.MonkeyPatch) -> SocketWatch:
    """Watch every socket a socket loop opens during the test (the loop's `connect` is wrapped).
    Set `negotiate` before opening the provider: its loop connects at once."""
    watch = SocketWatch()
    real_connect = comfyui_follow.connect

    def connect(url: str, **options: Any) -> _WatchedConnect:
        return _WatchedConnect(watch, real_connect(url, **options), url)

    monkeypatch.setattr(comfyui_follow, "connect", connect)
    return watch


def frames_read(watch: SocketWatch) -> list[dict[str, Any]]:
    """The JSON frames the socket loops read (binary ones left out)."""
    return [json.loads(frame) for socket in watch.opened for frame in socket.frames if isinstance(frame, str)]


@pytest.fixture(params=["replay", "preview"])
def open_target(
    request: pytest.FixtureRequest, start_server: Callable[..., RunningServer]
) -> Iterator[Callable[..., Target]]:
    """open_target(transcript, **preview_settings) -> Target, on this run's server."""
    opened: list[Target] = []

    def open_(transcript: str, **preview_settings: Any) -> Target:
        if request.param == "replay":
            replay = ReplayServer(transcript).start()
            target = Target("replay", transcript, replay.base_url, replay=replay)
        else:
            server = start_server(**preview_settings)
            target = Target("preview", transcript, server.base_url, preview=server)
        opened.append(target)
        return target

    yield open_
    for target in opened:
        _close(target)


@pytest.fixture
def replay_target() -> Iterator[Callable[[str], Target]]:
    """The replay server alone, for recorded behaviour the preview server does not reproduce."""
    opened: list[Target] = []

    def open_(transcript: str) -> Target:
        replay = ReplayServer(transcript).start()
        target = Target("replay", transcript, replay.base_url, replay=replay)
        opened.append(target)
        return target

    yield open_
    for target in opened:
        _close(target)


def _close(target: Target) -> None:
    # Stopping a loop closes its socket (close_timeout 1 s); side by side, bounded.
    stopping = [threading.Thread(target=following.stop, daemon=True) for following in target.followings]
    for thread in stopping:
        thread.start()
    for thread in stopping:
        thread.join(CLOSE_WAIT_S + 1)
    for provider in target.providers:
        provider.close()
    if target.replay is not None:
        target.replay.stop()
        # Every request must have had a recorded answer, or the test proved nothing about it.
        assert not target.replay.unmatched, "\n".join(target.replay.unmatched)

"""Fixtures that point our real ComfyUIProvider at a replay of a recording or at the preview server.

Test modules import `open_target` (and whatever helpers they use) from here; conftest.py
stays untouched. A test asks `open_target(transcript)` for a server; the fixture is
parametrized, so every such test runs once against the replay server ("replay") and once
against the storyboard preview server ("preview"). `socket_watch` wraps the adapter's socket so
a test can see every frame the provider read.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from websockets.sync.client import ClientConnection

from generation.providers import comfyui
from generation.providers.base import EventKind, ProgressEvent, RemoteHandle, RenderRequest
from generation.providers.comfyui import ComfyUIProvider, Timeouts

from .conftest import RunningServer, recorded_step, recording
from .replay_server import ReplayServer

# Short enough that a stuck render fails the test in seconds, long enough for a loaded CI box.
# poll_interval 0.2 s means /history is read every second while the socket is up.
TIMEOUTS = Timeouts(connect=5.0, read=10.0, poll_interval=0.2, max_wait=15.0, post_execution=3.0)
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

    def provider(
        self, socket: str | None = None, *, client_id: str | None = None, timeouts: Timeouts = TIMEOUTS
    ) -> ComfyUIProvider:
        """A provider whose client id is the one the recorded socket used (replay), or the given one."""
        if self.replay is not None and socket is not None:
            client_id = recording(self.transcript)[socket]["client_id_in_url"]
        provider = ComfyUIProvider(
            self.base_url, timeouts=timeouts, client_id=client_id, transport=self.transport
        )
        self.providers.append(provider)
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


def collect_events(
    provider: ComfyUIProvider, handle: RemoteHandle, stop: Callable[[ProgressEvent], bool] | None = None
) -> list[ProgressEvent]:
    """Events until the render ends (or until `stop` says so); the provider bounds the wait."""
    events = []
    for event in provider.events(handle):
        events.append(event)
        if stop is not None and stop(event):
            break
    return events


def kinds(events: list[ProgressEvent]) -> list[EventKind]:
    return [event.kind for event in events]


class WatchedSocket:
    """The provider's own socket, keeping every frame the provider read from it."""

    def __init__(self, connection: ClientConnection, url: str) -> None:
        self.connection = connection
        self.url = url
        self.frames: list[str | bytes] = []

    def recv(self, timeout: float | None = None) -> str | bytes:
        frame = self.connection.recv(timeout=timeout)
        self.frames.append(frame)
        return frame

    def __getattr__(self, name: str) -> Any:
        return getattr(self.connection, name)


@dataclasses.dataclass
class SocketWatch:
    """The sockets providers opened; with `negotiate`, each sends feature_flags as its first message."""

    opened: list[WatchedSocket] = dataclasses.field(default_factory=list)
    negotiate: bool = False


@pytest.fixture
def socket_watch(monkeypatch: pytest.MonkeyPatch) -> SocketWatch:
    """Watch every socket a provider opens during the test (the adapter's `connect` is wrapped)."""
    watch = SocketWatch()
    real_connect = comfyui.connect

    def connect(url: str, **options: Any) -> WatchedSocket:
        socket = WatchedSocket(real_connect(url, **options), url)
        if watch.negotiate:
            socket.connection.send(json.dumps(FEATURE_FLAGS))
        watch.opened.append(socket)
        return socket

    monkeypatch.setattr(comfyui, "connect", connect)
    return watch


def frames_read(watch: SocketWatch) -> list[dict[str, Any]]:
    """The JSON frames the providers read from their sockets (binary ones left out)."""
    return [json.loads(frame) for socket in watch.opened for frame in socket.frames if isinstance(frame, str)]


@pytest.fixture(params=["replay", "preview"])
def open_target(
    request: pytest.FixtureRequest, start_server: Callable[..., RunningServer]
) -> Iterator[Callable[..., Target]]:
    """open_target(transcript, *, silent_sockets, **preview_settings) -> Target, on this run's server.

    silent_sockets: the replay accepts the provider's socket although the transcript has none.
    """
    opened: list[Target] = []

    def open_(transcript: str, *, silent_sockets: bool = False, **preview_settings: Any) -> Target:
        if request.param == "replay":
            replay = ReplayServer(transcript, silent_sockets=silent_sockets).start()
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
    # close() can wait out the socket's 10 s close timeout when messages were left unread
    # (test_provider_lifecycle.py shows it); close the providers side by side, bounded.
    closing = [threading.Thread(target=provider.close, daemon=True) for provider in target.providers]
    for thread in closing:
        thread.start()
    for thread in closing:
        thread.join(CLOSE_WAIT_S)
    if target.replay is not None:
        target.replay.stop()
        # Every request must have had a recorded answer, or the test proved nothing about it.
        assert not target.replay.unmatched, "\n".join(target.replay.unmatched)

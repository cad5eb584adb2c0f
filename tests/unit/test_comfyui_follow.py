"""The render watcher's socket loop (generation.providers.comfyui_follow.SocketFollower) against a
scripted socket: reconnects and resyncs, previews that name no prompt, callbacks that fail."""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web

from generation.providers.base import EventKind, ProgressEvent
from generation.providers.comfyui_follow import SocketFollower
from tests.app_thread import AppThread

PREVIEW = struct.pack(">II", 1, 1) + b"\xff\xd8jpeg"


def _message(kind: str, **data: Any) -> str:
    return json.dumps({"type": kind, "data": data})


class ScriptedComfyUI:
    """Each socket that connects gets the next script's frames; a script ending in None closes it."""

    def __init__(self, scripts: list[list[str | bytes | None]]) -> None:
        self.scripts = scripts
        self.client_ids: list[str] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/ws", self.ws)
        return app

    async def ws(self, request: web.Request) -> web.WebSocketResponse:
        self.client_ids.append(request.query["clientId"])
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        script = self.scripts.pop(0) if self.scripts else []
        for frame in script:
            if frame is None:
                await socket.close()
                return socket
            if isinstance(frame, bytes):
                await socket.send_bytes(frame)
            else:
                await socket.send_str(frame)
        async for _ in socket:
            pass
        return socket


@pytest.fixture
def serve() -> Iterator[Any]:
    started: list[AppThread] = []

    def start(fake: ScriptedComfyUI) -> str:
        thread = AppThread(fake.app).start()
        started.append(thread)
        return f"http://127.0.0.1:{thread.port}"

    yield start
    for thread in started:
        thread.stop()


class Seen:
    def __init__(self, *, fail_first_event: bool = False) -> None:
        self.events: list[tuple[str, EventKind]] = []
        self.sockets: list[bool] = []
        self.timeline: list[str] = []  # "up", "down", "check" in the order they came
        self.fail_first_event = fail_first_event
        self.changed = asyncio.Event()

    async def on_event(self, prompt_id: str, event: ProgressEvent) -> None:
        if self.fail_first_event:
            self.fail_first_event = False
            raise RuntimeError("the database went away")
        self.events.append((prompt_id, event.kind))
        self.changed.set()

    async def on_socket(self, up: bool) -> None:
        self.sockets.append(up)
        self.timeline.append("up" if up else "down")
        self.changed.set()

    async def on_check(self) -> None:
        self.timeline.append("check")
        self.changed.set()


async def _follow_until(base_url: str, seen: Seen, done: Any, timeout: float = 5.0) -> SocketFollower:
    follower = SocketFollower(
        base_url,
        "storycore-test",
        on_event=seen.on_event,
        on_socket=seen.on_socket,
        on_check=seen.on_check,
        poll_interval=60.0,  # only the checks the loop asks for itself
    )
    task = asyncio.create_task(follower.run())
    try:
        async with asyncio.timeout(timeout):
            while not done():
                seen.changed.clear()
                await seen.changed.wait()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return follower


def test_a_dropped_socket_is_reconnected_and_each_change_asks_for_a_check(serve: Any) -> None:
    fake = ScriptedComfyUI(
        [
            [
                _message("execution_start", prompt_id="p1"),
                _message("progress", prompt_id="p1", node="3", value=1, max=4),
                None,
            ],
            [_message("executing", prompt_id="p1", node=None)],
        ]
    )
    seen = Seen()
    url = serve(fake)
    asyncio.run(
        _follow_until(
            url,
            seen,
            lambda: ("p1", EventKind.FINISHED) in seen.events and seen.timeline[-1:] == ["check"],
        )
    )

    assert seen.events == [("p1", EventKind.STARTED), ("p1", EventKind.PROGRESS), ("p1", EventKind.FINISHED)]
    assert seen.sockets == [True, False, True]
    # A check follows every connect and every drop (ComfyUI replays nothing); asks that come
    # together are answered by one check.
    changes = [i for i, what in enumerate(seen.timeline) if what != "check"]
    assert all("check" in seen.timeline[i + 1 :] for i in changes), seen.timeline
    assert fake.client_ids == ["storycore-test", "storycore-test"]


def test_previews_that_name_no_prompt_belong_to_the_prompt_executing_or_to_nobody(serve: Any) -> None:
    fake = ScriptedComfyUI(
        [
            [
                PREVIEW,  # nothing runs yet: nobody's
                _message("execution_start", prompt_id="p1"),
                _message("progress", prompt_id="p1", node="3", value=1, max=2),
                PREVIEW,
                _message("execution_success", prompt_id="p1"),
                PREVIEW,  # p1 is done: nobody's
                _message("executing", prompt_id="p1", node=None),
                _message("status", status={"exec_info": {"queue_remaining": 0}}),
            ]
        ]
    )
    seen = Seen()
    asyncio.run(_follow_until(serve(fake), seen, lambda: ("p1", EventKind.FINISHED) in seen.events))

    assert [kind for _, kind in seen.events] == [
        EventKind.STARTED,
        EventKind.PROGRESS,
        EventKind.PREVIEW,
        EventKind.SUCCESS,
        EventKind.FINISHED,
    ]
    assert {prompt for prompt, _ in seen.events} == {"p1"}


def test_a_callback_that_fails_is_logged_and_the_socket_stays_up(serve: Any, caplog: Any) -> None:
    fake = ScriptedComfyUI(
        [[_message("execution_start", prompt_id="p1"), _message("executing", prompt_id="p1", node=None)]]
    )
    seen = Seen(fail_first_event=True)
    asyncio.run(_follow_until(serve(fake), seen, lambda: ("p1", EventKind.FINISHED) in seen.events))

    assert seen.events == [("p1", EventKind.FINISHED)]
    assert seen.sockets == [True]
    assert "the database went away" in caplog.text

"""The render watcher's socket to a backend (its SocketFollower loop): it opens under the client
id prompts are submitted with, is greeted with `status`, and status and feature_flags frames
never become events."""

# Fixtures come from provider_fixtures (not conftest.py); a test's argument of the same name
# is how pytest passes them, which pyflakes reads as a redefinition.
# ruff: noqa: F811

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from generation.providers import comfyui
from generation.providers.base import ErrorCode, EventKind, RemoteHandle

from .conftest import recorded_frames
from .provider_fixtures import (  # noqa: F401 (fixtures)
    FEATURE_FLAGS,
    SocketWatch,
    collect_events,
    open_target,
    socket_watch,
)

WS_CONNECT = "ws_connect_and_feature_flags.json"
# Two checks in a row (one second apart while the socket is up) find the prompt nowhere: the
# render is lost. The greeting frames arrive the moment the socket opens, before either.
GREETING_MAX_WAIT_S = 5.0


@pytest.mark.parametrize(
    ("socket", "negotiate"),
    [
        # The recorded client sent nothing on this socket: it got the greeting alone.
        pytest.param("websocket_with_client_id", False, id="greeting only"),
        # The recorded client sent feature_flags first and got the server's flags back. Our
        # socket loop never negotiates, so the test sends them on its socket, as a loop that
        # one day asks for preview metadata would; the answer must not become an event either.
        pytest.param("websocket_feature_flags_first_message", True, id="feature_flags answered"),
        # Not replayed: websocket_no_client_id (the loop always names its client id), and
        # the sockets that sent "hello" or non-JSON text first (the loop sends neither; the
        # preview server's own tests compare those with the recording).
    ],
)
def test_the_socket_opens_under_our_client_id_and_its_greeting_and_flags_yield_no_events(
    open_target: Any, socket_watch: SocketWatch, socket: str, negotiate: bool
) -> None:
    target = open_target(WS_CONNECT)
    socket_watch.negotiate = negotiate  # before the provider: its socket loop connects at once
    provider = target.provider(socket)
    # A prompt nobody submitted: whatever the loop delivers can only come from the socket,
    # except the LOST that ends it when /history and /queue both say they never heard of it.
    handle = RemoteHandle("comfyui", str(uuid.uuid4()))
    if target.replay is not None:
        # The transcript has no HTTP at all; ComfyUI's answers for an unknown id stand in.
        target.replay.stand_in_no_history(handle.remote_id)
        target.replay.stand_in("/queue", {"queue_running": [], "queue_pending": []}, "idle queue")
    events = collect_events(provider, handle, max_wait=GREETING_MAX_WAIT_S)

    [watched] = socket_watch.opened
    assert parse_qs(urlsplit(watched.url).query) == {"clientId": [provider.client_id]}
    frames = [json.loads(frame) for frame in watched.frames]
    assert frames, "the socket loop read nothing from its socket"
    assert frames[0]["type"] == "status"
    assert frames[0]["data"]["sid"] == provider.client_id
    assert [f["type"] for f in frames] == (["status", "feature_flags"] if negotiate else ["status"])
    if negotiate:
        assert frames[1]["data"]["supports_preview_metadata"] is True
    if target.replay is not None:
        assert frames == recorded_frames(WS_CONNECT, socket)
        assert [json.loads(message) for _, message in target.replay.ws_messages] == (
            [FEATURE_FLAGS] if negotiate else []
        )
    # Neither frame is an event: the only one is the LOST from /history and /queue.
    assert all(comfyui.parse_message(frame) is None for frame in watched.frames)
    assert [(e.kind, e.error.code if e.error else None) for e in events] == [
        (EventKind.FAILED, ErrorCode.LOST)
    ]

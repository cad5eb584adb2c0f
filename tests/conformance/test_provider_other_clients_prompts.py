"""Prompts that are not ours on the same server: another client's, and one posted without client_id.

A provider following its own prompt must never report their messages, and a provider whose
handle is such a prompt (a worker re-attaching to work it did not submit) learns its end from
/history.
"""

# Fixtures come from provider_fixtures (not conftest.py); a test's argument of the same name
# is how pytest passes them, which pyflakes reads as a redefinition.
# ruff: noqa: F811

from __future__ import annotations

import copy
import json
import uuid
from typing import Any

import httpx
import pytest

from generation.providers.base import ErrorCode, EventKind, RemoteHandle, RenderRequest

from .conftest import DATA_DIR, recorded_step
from .provider_fixtures import (  # noqa: F401 (fixtures)
    SocketWatch,
    Target,
    collect_events,
    frames_read,
    kinds,
    open_target,
    socket_watch,
)

OTHER_CLIENT = "prompt_of_other_client.json"
NO_CLIENT_ID = "prompt_without_client_id.json"
EMPTYIMAGE = "prompt_emptyimage_save_preview.json"
OTHER_STEP = {OTHER_CLIENT: "X submits", NO_CLIENT_ID: "no client_id"}
# The recorded sockets that received the other prompt's messages and have a client id (a provider
# always sends one, so websocket_socket2_no_client_id cannot be played by it).
# X's socket got every message of X's prompt: a provider sharing X's client id (two providers of
# one worker, or a worker restarted under a fixed id) must tell prompts apart itself. Y, the
# bystander, got only `status`: ComfyUI routed the rest to X.
RECORDED_LISTENERS = {
    OTHER_CLIENT: ["websocket_X_submitter", "websocket_Y_bystander"],
    NO_CLIENT_ID: ["websocket_socket1"],
}
# Ours waits behind the other prompt and never runs (the recordings have no prompt of ours): the
# queue policy's max wait ends it, enforced by the checks as attempt_check enforces it.
WAIT_BEHIND_S = 0.6
# The preview server's other prompt samples for a while, so our socket is up while it runs.
SLOW_OTHER = {
    "render_seconds": 0.5,
    "preview_method": "latent2rgb",
    "checkpoints": ["storyboard-preview.safetensors"],
}
OUR_NODES = {"1": "21", "2": "22", "3": "23"}


def _tiny_txt2img(target: Target) -> dict[str, Any]:
    """The tiny txt2img graph with a checkpoint the preview server lists."""
    assert target.preview is not None
    workflow = json.loads((DATA_DIR / "default_workflow_api_tiny_variant.json").read_text(encoding="utf-8"))
    workflow["4"]["inputs"]["ckpt_name"] = target.preview.settings.checkpoints[0]
    return workflow


def _post(target: Target, body: dict[str, Any]) -> str:
    """POST /prompt with plain httpx, as another program would; the prompt id."""
    response = httpx.post(f"{target.base_url}/prompt", json=body, timeout=10)
    assert response.status_code == 200, response.text
    return str(response.json()["prompt_id"])


def _recorded_other(transcript: str) -> dict[str, Any]:
    return copy.deepcopy(recorded_step(transcript, OTHER_STEP[transcript])["request"]["json"])


def _post_other(transcript: str, target: Target) -> str:
    """Post the other prompt: as recorded, or (preview) the same with a sampler in it.

    The recorded prompt is an EmptyImage that ComfyUI ran in 6 ms; on the preview server the
    tiny txt2img graph runs long enough for our provider to connect and wait behind it, and its
    KSampler sends `progress` and previews, which a prompt without client_id broadcasts.
    """
    body = _recorded_other(transcript)
    if target.preview is not None:
        body["prompt"] = _tiny_txt2img(target)
    return _post(target, body)


def _our_workflow() -> dict[str, Any]:
    """The recorded EmptyImage -> SaveImage + PreviewImage graph under node ids no other prompt uses."""
    recorded = recorded_step(EMPTYIMAGE, "first submission")["request"]["json"]["prompt"]
    ours: dict[str, Any] = {}
    for node_id, node in recorded.items():
        node = copy.deepcopy(node)
        for name, value in node["inputs"].items():
            if isinstance(value, list):
                node["inputs"][name] = [OUR_NODES[value[0]], value[1]]
        ours[OUR_NODES[node_id]] = node
    ours["22"]["inputs"]["filename_prefix"] = "ours"
    return ours


def _naming(frames: list[dict[str, Any]], prompt_id: str) -> list[str]:
    """Types of the frames whose data names prompt_id."""
    return [
        f["type"]
        for f in frames
        if isinstance(f.get("data"), dict) and f["data"].get("prompt_id") == prompt_id
    ]


@pytest.mark.parametrize("transcript", [OTHER_CLIENT, NO_CLIENT_ID])
def test_a_provider_following_its_own_prompt_never_reports_another_clients_or_an_anonymous_prompt(
    open_target: Any, socket_watch: SocketWatch, transcript: str
) -> None:
    target = open_target(transcript, **SLOW_OTHER)
    other_id = _post_other(transcript, target)

    if target.preview is not None:
        provider = target.provider()
        handle = provider.submit(RenderRequest(attempt_id=str(uuid.uuid4()), workflow=_our_workflow()))
        events = collect_events(provider, handle)

        assert kinds(events)[-1] == EventKind.FINISHED
        assert kinds(events).count(EventKind.STARTED) == 1
        assert {e.node for e in events if e.kind == EventKind.NODE} <= set(OUR_NODES.values())
        # Ours has no sampler: progress and previews could only be the other prompt's.
        assert not {EventKind.PROGRESS, EventKind.PREVIEW} & set(kinds(events))
        assert {o.node_id for o in provider.outputs(handle)} == {"22", "23"}
        other = provider.history(RemoteHandle("comfyui", other_id))
        assert other is not None and other.status == "success"  # it ran, before ours
        if transcript == NO_CLIENT_ID:
            # Its progress reached our socket (broadcast) and was read, not reported.
            assert "progress" in _naming(frames_read(socket_watch), other_id)
        return

    assert target.replay is not None
    # The recordings hold no prompt of ours: follow one that waits behind the other (stand-ins)
    # on each recorded socket that heard the other prompt; nothing may come of its messages.
    ours = RemoteHandle("comfyui", str(uuid.uuid4()))
    target.replay.stand_in_no_history(ours.remote_id)
    target.replay.stand_in(
        "/queue",
        {
            "queue_running": [[36, other_id, {}, {}, ["2", "3"]]],
            "queue_pending": [[37, ours.remote_id, {}, {}, ["22"]]],
        },
        "ours pending behind the other",
    )
    # Past its max wait the render is withdrawn from the queue, as attempt_check does.
    target.replay.stand_in_post("/queue", {"delete": [ours.remote_id]}, "ours withdrawn after its max wait")
    for socket in RECORDED_LISTENERS[transcript]:
        provider = target.provider(socket)
        events = collect_events(provider, ours, max_wait=WAIT_BEHIND_S)
        assert [(e.kind, e.error.code if e.error else None) for e in events] == [
            (EventKind.FAILED, ErrorCode.TIMEOUT)
        ], socket
    listeners = len(RECORDED_LISTENERS[transcript])
    assert target.bodies_sent("POST", "/queue") == [{"delete": [ours.remote_id]}] * listeners

    heard = frames_read(socket_watch)
    if transcript == OTHER_CLIENT:
        assert "execution_start" in _naming(heard, other_id) and "executed" in _naming(heard, other_id)
    else:
        assert "progress_state" in _naming(heard, other_id)


# prompt_of_other_client.json never read /history after X's prompt, so the replay cannot say
# how it ended: that case runs on the preview server only.
@pytest.mark.parametrize(
    ("open_target", "transcript"),
    [("replay", NO_CLIENT_ID), ("preview", NO_CLIENT_ID), ("preview", OTHER_CLIENT)],
    indirect=["open_target"],
)
def test_a_provider_whose_handle_is_someone_elses_prompt_learns_its_end_from_history(
    open_target: Any, socket_watch: SocketWatch, transcript: str
) -> None:
    target = open_target(transcript, **SLOW_OTHER)
    if target.preview is not None:
        # A third program's txt2img runs first, so the recorded prompt waits while we follow it.
        _post(target, {"prompt": _tiny_txt2img(target), "client_id": "someone-else"})
    other_id = _post(target, _recorded_other(transcript))
    handle = RemoteHandle("comfyui", other_id)

    # Replay: the bystander socket with a client id; the preview server: a fresh one.
    provider = target.provider(RECORDED_LISTENERS[transcript][-1])
    target.while_running(other_id)
    events = collect_events(provider, handle)
    target.done_running()

    assert kinds(events) == [EventKind.FINISHED]
    prefix = recorded_step(transcript, OTHER_STEP[transcript])["request"]["json"]["prompt"]["2"]["inputs"][
        "filename_prefix"
    ]
    outputs = provider.outputs(handle)
    assert {(o.node_id, o.folder_type) for o in outputs} == {("2", "output"), ("3", "temp")}
    assert next(o for o in outputs if o.node_id == "2").filename.startswith(f"{prefix}_")
    if transcript == NO_CLIENT_ID:
        # Its progress_state frames named the prompt while the provider waited on /history.
        assert "progress_state" in _naming(frames_read(socket_watch), other_id)

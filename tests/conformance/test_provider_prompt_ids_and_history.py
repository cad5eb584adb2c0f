"""The prompt id we choose is the one the server uses, and what history() and locate() make of
/history entries: parsed as recorded, extra_data secrets dropped, gone once deleted."""

# Fixtures come from provider_fixtures (not conftest.py); a test's argument of the same name
# is how pytest passes them, which pyflakes reads as a redefinition.
# ruff: noqa: F811

from __future__ import annotations

from typing import Any

import httpx

from generation.providers.base import EventKind, RemoteHandle
from generation.providers.comfyui import ComfyUIProvider, HistoryEntry

from .conftest import recorded_step, wait_for_history
from .provider_fixtures import Target, collect_events, kinds, open_target  # noqa: F401 (fixtures)

BODY_OPTIONS = "prompt_body_options.json"
HISTORY = "history_queries_and_mutations.json"
EMPTYIMAGE = "prompt_emptyimage_save_preview.json"
RUNTIME_ERROR = "runtime_execution_error.json"
SECRETS = {"api_key_comfy_org", "auth_token_comfy_org"}
# Recorded history entries of every kind: output + temp images, an output subfolder, a runtime
# error that left a temp image, an interrupted run with no outputs, a partial execution.
RECORDED_IDS = {
    "2c32b699-6835-41d0-8eec-412748175752": "success",
    "1dd8eca1-3197-40bf-b891-9fc269ff3a4b": "success, subfolder rec",
    "30c713a3-e0dc-464d-99d1-ffeb82dff0ff": "execution error",
    "b5dd708d-34ad-4efe-ba28-559c21713bf3": "interrupted",
    "fed6278b-66a3-4add-a6b0-33bb22f23a6d": "partial execution",
}


def _follow(target: Target, provider: ComfyUIProvider, handle: RemoteHandle) -> list[EventKind]:
    target.while_running(handle.remote_id)
    events = collect_events(provider, handle)
    target.done_running()
    return kinds(events)


def _expected(raw: dict[str, Any]) -> tuple[str, bool, set[tuple[str, str, str, str]], list[str]]:
    """What a /history entry says, read straight from its JSON."""
    status = raw["status"]
    files = {
        (node_id, image["filename"], image["subfolder"], image["type"])
        for node_id, ui in raw["outputs"].items()
        for image in ui.get("images", [])
    }
    return status["status_str"], status["completed"], files, [m[0] for m in status["messages"]]


def _parsed(entry: HistoryEntry | None) -> tuple[str, bool, set[tuple[str, str, str, str]], list[str]]:
    assert entry is not None
    files = {(o.node_id, o.filename, o.subfolder, o.folder_type) for o in entry.outputs}
    return entry.status, entry.completed, files, [name for name, _ in entry.messages]


def _raw_entry(target: Target, prompt_id: str) -> dict[str, Any]:
    return httpx.get(f"{target.base_url}/history/{prompt_id}", timeout=10).json()[prompt_id]


def test_the_server_keeps_the_prompt_id_we_chose_and_drops_extra_data_secrets_from_history(
    open_target: Any,
) -> None:
    target = open_target(BODY_OPTIONS)
    provider = target.provider("websocket_client")
    request = target.render_request("client-supplied prompt_id")
    # The handle is known before the request leaves: a restarted worker looks for exactly it.
    target.while_running(request.attempt_id)
    ours = provider.submit(request)
    assert ours.remote_id == request.attempt_id
    [sent] = target.bodies_sent("POST", "/prompt")
    assert sent["prompt_id"] == request.attempt_id and sent["extra_data"] == {}
    events = collect_events(provider, ours)
    target.done_running()
    assert kinds(events)[-1] == EventKind.FINISHED and kinds(events).count(EventKind.STARTED) <= 1
    if target.replay is not None:
        # (The preview server may finish an EmptyImage before its frames are read; /history ends it.)
        assert kinds(events).count(EventKind.STARTED) == 1

    # Another program posts with secrets in extra_data (the provider never sends any). On the
    # replay, the prompts recorded in between (explicit number, front, partial targets: fields
    # the provider never sends) are skipped, and their messages reach this socket first.
    label = "extra_data with sensitive keys"
    body = recorded_step(BODY_OPTIONS, label)["request"]["json"]
    if target.preview is not None:
        body = {**body, "client_id": provider.client_id}
    posted = httpx.post(f"{target.base_url}/prompt", json=body, timeout=10)
    assert posted.status_code == 200, posted.text
    theirs = RemoteHandle("comfyui", posted.json()["prompt_id"])
    followed = _follow(target, provider, theirs)
    assert followed[-1] == EventKind.FINISHED and followed.count(EventKind.STARTED) <= 1
    if target.replay is not None:
        # The skipped prompts' execution_start frames came first; only this one's counts.
        assert followed.count(EventKind.STARTED) == 1

    for handle, prefix in ((ours, "rec_opt1"), (theirs, "rec_opt5")):
        entry = provider.history(handle)
        status, completed, files, messages = _parsed(entry)
        assert (status, completed) == ("success", True)
        assert {(node, folder) for node, _, _, folder in files} == {("2", "output"), ("3", "temp")}
        assert any(name.startswith(f"{prefix}_") for node, name, _, _ in files if node == "2")
        assert messages[-1] == "execution_success"

    extra_data = _raw_entry(target, theirs.remote_id)["prompt"][3]
    assert not SECRETS & set(extra_data)
    assert extra_data["my_custom_key"] == 1 and extra_data["extra_pnginfo"] == {"workflow": {}}
    if target.replay is not None:
        assert list(extra_data) == ["extra_pnginfo", "my_custom_key", "client_id"]
        assert SECRETS <= set(body["extra_data"])


def _recorded_history(target: Target) -> list[RemoteHandle]:
    """Replay: /history/<id> answers for the recorded entries.

    The transcript read the whole /history, not single entries. ComfyUI answers /history/<id>
    with `{id: entry}` from the same dict, so each answer is built from the recorded full one.
    """
    assert target.replay is not None
    full = recorded_step(HISTORY, "full history (all entries, insertion order = completion order)")
    entries = full["response"]["json"]
    for prompt_id in RECORDED_IDS:
        target.replay.stand_in(
            f"/history/{prompt_id}", {prompt_id: entries[prompt_id]}, "from the full /history"
        )
    # The recorded idle /queue (get_endpoints.json) for locate() once the entry is gone.
    target.replay.stand_in("/queue", {"queue_running": [], "queue_pending": []}, "idle queue")
    return [RemoteHandle("comfyui", prompt_id) for prompt_id in RECORDED_IDS]


def _preview_history(target: Target) -> list[RemoteHandle]:
    """Preview: entries of the same kinds, made by running the recorded prompts."""
    assert target.preview is not None
    bodies = [
        recorded_step(EMPTYIMAGE, "first submission")["request"]["json"],
        recorded_step(RUNTIME_ERROR, "submit failing prompt")["request"]["json"],
        recorded_step(BODY_OPTIONS, "partial_execution_targets=['3'] (only PreviewImage)")["request"]["json"],
    ]
    handles = []
    for body in bodies:
        prompt_id = target.preview.post_prompt(body)["prompt_id"]
        wait_for_history(target.preview, prompt_id)
        handles.append(RemoteHandle("comfyui", prompt_id))
    return handles


def test_history_parses_each_kind_of_entry_and_a_deleted_entry_leaves_the_prompt_unknown(
    open_target: Any,
) -> None:
    target = open_target(HISTORY)
    provider = target.provider()
    handles = _recorded_history(target) if target.replay is not None else _preview_history(target)

    seen = {}
    for handle in handles:
        raw = _raw_entry(target, handle.remote_id)
        seen[handle.remote_id] = parsed = _parsed(provider.history(handle))
        assert parsed == _expected(raw), handle.remote_id
    statuses = {status for status, _, _, _ in seen.values()}
    assert statuses == {"success", "error"}
    if target.replay is not None:
        assert ("12", "inverted_00001_.png", "rec", "output") in seen["1dd8eca1-3197-40bf-b891-9fc269ff3a4b"][
            2
        ]
        assert seen["b5dd708d-34ad-4efe-ba28-559c21713bf3"][2:] == (
            set(),
            ["execution_start", "execution_cached", "execution_interrupted"],
        )
        assert seen["fed6278b-66a3-4add-a6b0-33bb22f23a6d"][2] == {
            ("3", "ComfyUI_temp_vdsnk_00006_.png", "", "temp")
        }

    deleted, kept = handles[0], handles[1]
    assert provider.locate(deleted) == "done"
    response = httpx.post(f"{target.base_url}/history", json={"delete": [deleted.remote_id]}, timeout=10)
    assert response.status_code == 200
    if target.replay is not None:
        assert target.bodies_sent("POST", "/history") == [
            recorded_step(HISTORY, "delete oldest history entry")["request"]["json"]
        ]
    assert provider.history(deleted) is None
    assert provider.locate(deleted) == "unknown"
    assert provider.locate(kept) == "done"

"""/queue, /prompt, /interrupt and /history while prompts run, as recorded."""

from __future__ import annotations

import json
from typing import Any

from .conftest import (
    RunningServer,
    message_types,
    normalise,
    receive,
    receive_until,
    receive_until_done,
    recorded_frames,
    recorded_step,
    recording,
    wait_for_history,
    warm_txt2img_cache,
)

_QUEUE = "queue_and_interrupt.json"


def _status(remaining: int) -> dict[str, Any]:
    return {"type": "status", "data": {"status": {"exec_info": {"queue_remaining": remaining}}}}


def _long_prompt_server(start_server: Any) -> RunningServer:
    # Many short steps: the long prompt keeps running while the test inspects the queue.
    return start_server(render_seconds=1000.0, max_step_seconds=0.01)


def test_queue_lists_running_and_pending_prompts_and_deletes_and_clears_only_pending(
    start_server: Any,
) -> None:
    server = _long_prompt_server(start_server)
    long_body = recorded_step(_QUEUE, "long running prompt")["request"]["json"]
    warm_txt2img_cache(server, long_body)
    with server.socket(long_body["client_id"]) as ws:
        receive(ws)
        running = server.post_prompt(long_body)
        receive_until(ws, lambda f: f.get("type") == "progress")
        pending = [
            server.post_prompt(recorded_step(_QUEUE, f"pending prompt {i}")["request"]["json"])
            for i in range(3)
        ]

        queue = server.http.get("/queue").json()
        recorded_queue = recorded_step(_QUEUE, "queue with 1 running + 3 pending")["response"]["json"]
        ids = {
            recorded_queue["queue_running"][0][1]: running["prompt_id"],
            **{
                item[1]: ours["prompt_id"]
                for item, ours in zip(recorded_queue["queue_pending"], pending, strict=True)
            },
        }
        for section in ("queue_running", "queue_pending"):
            for item in recorded_queue[section]:
                item[0] = None
            for item in queue[section]:
                item[0] = None
        assert normalise(queue, {}) == normalise(recorded_queue, ids)
        assert server.http.get("/prompt").json() == {"exec_info": {"queue_remaining": 4}}
        assert server.http.get(f"/history/{running['prompt_id']}").json() == {}
        assert server.http.get(f"/history/{pending[0]['prompt_id']}").json() == {}

        deleted = server.http.post("/queue", json={"delete": [pending[1]["prompt_id"]]})
        assert (deleted.status_code, deleted.content, deleted.headers.get("content-type")) == (200, b"", None)
        unknown = server.http.post("/queue", json={"delete": ["not-a-queued-id"]})
        assert (unknown.status_code, unknown.content) == (200, b"")
        assert [item[1] for item in server.http.get("/queue").json()["queue_pending"]] == [
            pending[0]["prompt_id"],
            pending[2]["prompt_id"],
        ]
        cleared = server.http.post("/queue", json={"clear": True})
        assert (cleared.status_code, cleared.content) == (200, b"")
        after_clear = server.http.get("/queue").json()
        assert after_clear["queue_pending"] == []
        assert [item[1] for item in after_clear["queue_running"]] == [running["prompt_id"]]

        interrupted = server.http.post("/interrupt")
        assert (interrupted.status_code, interrupted.content) == (200, b"")
        frames = receive_until_done(ws, running["prompt_id"])

    statuses = [frame for frame in frames if frame.get("type") == "status"]
    # Recorded: 3 enqueues (2, 3, 4), one successful delete (3), the clear (1), completion (0).
    assert statuses == [_status(n) for n in (2, 3, 4, 3, 1, 0)]
    recorded_tail = recorded_frames(_QUEUE, "websocket_A")[-3:]
    recorded_id = recorded_step(_QUEUE, "long running prompt")["response"]["json"]["prompt_id"]
    assert normalise(frames[-3:], {}) == normalise(recorded_tail, {recorded_id: running["prompt_id"]})

    history = server.http.get(f"/history/{running['prompt_id']}").json()[running["prompt_id"]]
    recorded_history = recorded_step(_QUEUE, "history of interrupted prompt")["response"]["json"]
    (recorded_entry,) = recorded_history.values()
    assert list(history) == list(recorded_entry) == ["prompt", "outputs", "status", "meta"]
    assert (history["outputs"], history["meta"]) == ({}, {})
    assert {k: v for k, v in history["status"].items() if k != "messages"} == {
        "status_str": "error",
        "completed": False,
    }
    assert [m[0] for m in history["status"]["messages"]] == [
        m[0] for m in recorded_entry["status"]["messages"]
    ]
    assert server.http.get(f"/history/{pending[1]['prompt_id']}").json() == {}
    assert server.http.get("/queue").json() == {"queue_running": [], "queue_pending": []}
    idle = server.http.post("/interrupt", json={})
    assert (idle.status_code, idle.content) == (200, b"")


def test_socket_connecting_mid_run_gets_only_status_frames(start_server: Any) -> None:
    server = _long_prompt_server(start_server)
    long_body = recorded_step(_QUEUE, "long running prompt")["request"]["json"]
    with server.socket(long_body["client_id"]) as owner:
        receive(owner)
        running = server.post_prompt(long_body)
        receive_until(owner, lambda f: f.get("type") == "progress")
        with server.socket("rec-q-b-df776a") as late:
            first = receive(late)
            assert first == {
                "type": "status",
                "data": {"status": {"exec_info": {"queue_remaining": 1}}, "sid": "rec-q-b-df776a"},
            }
            server.http.post("/interrupt", json={"prompt_id": running["prompt_id"]})
            receive_until_done(owner, running["prompt_id"])
            assert receive(late) == _status(0)


def test_interrupt_of_a_prompt_without_client_id_is_broadcast(start_server: Any) -> None:
    server = _long_prompt_server(start_server)
    body = json.loads(json.dumps(recorded_step(_QUEUE, "long running prompt")["request"]["json"]))
    body.pop("client_id")
    with server.socket("watcher") as ws:
        receive(ws)
        running = server.post_prompt(body)
        receive_until(ws, lambda f: f.get("type") == "progress")
        server.http.post("/interrupt")
        frames = receive_until(ws, lambda f: f.get("type") == "execution_interrupted")
        assert frames[-1]["data"]["prompt_id"] == running["prompt_id"]
        assert "executing" not in message_types(frames)


def test_history_paging_deleting_and_clearing_follow_comfyui(server: RunningServer) -> None:
    body = recorded_step(
        "validation_errors.json", "numeric string is accepted/coerced (EmptyImage.width='64')"
    )
    ids = []
    for color in range(4):
        request = json.loads(json.dumps(body["request"]["json"]))
        request["prompt"]["1"]["inputs"]["color"] = color
        ids.append(server.post_prompt(request)["prompt_id"])
        wait_for_history(server, ids[-1])

    assert list(server.http.get("/history").json()) == ids
    assert list(server.http.get("/history?max_items=2").json()) == ids[2:]
    assert list(server.http.get("/history?max_items=2&offset=0").json()) == ids[:2]
    assert list(server.http.get("/history?max_items=1&offset=1").json()) == ids[1:2]
    assert list(server.http.get("/api/history?max_items=5").json()) == ids

    name = "history_queries_and_mutations.json"
    for label, payload in (
        ("delete oldest history entry", {"delete": [ids[0]]}),
        ("POST /free", {"unload_models": True, "free_memory": True}),
    ):
        recorded = recorded_step(name, label)["response"]
        path = "/free" if label == "POST /free" else "/history"
        response = server.http.post(path, json=payload)
        assert (response.status_code, response.content) == (recorded["status"], b"")
        assert response.headers["content-length"] == recorded["headers"]["content-length"]
    assert server.http.get(f"/history/{ids[0]}").json() == {}
    assert list(server.http.get("/history").json()) == ids[1:]
    assert server.http.post("/history", json={"clear": True}).status_code == 200
    assert server.http.get("/history").json() == {}


def test_history_entry_keys_match_the_recorded_order(server: RunningServer) -> None:
    recorded = recording("history_queries_and_mutations.json")["steps"][3]["response"]["json"]
    body = recorded_step("prompt_emptyimage_save_preview.json", "first submission")["request"]["json"]
    prompt_id = server.post_prompt(body)["prompt_id"]
    entry = wait_for_history(server, prompt_id)
    recorded_entry = recorded["2c32b699-6835-41d0-8eec-412748175752"]
    assert list(entry) == list(recorded_entry)
    assert list(entry["status"]) == list(recorded_entry["status"])
    assert entry["meta"] == recorded_entry["meta"]

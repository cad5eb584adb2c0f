"""WebSocket message sequences compared frame by frame with the recorded ComfyUI runs."""

from __future__ import annotations

import json
import re
import struct
from io import BytesIO
from typing import Any

from PIL import Image

from .conftest import (
    DATA_DIR,
    RunningServer,
    assert_silent,
    drain,
    message_types,
    normalise,
    receive,
    receive_until,
    receive_until_done,
    recorded_frames,
    recorded_step,
    recording,
    strip_tracebacks,
    wait_for_history,
    warm_txt2img_cache,
)


def _request(name: str, label: str) -> dict[str, Any]:
    return recorded_step(name, label)["request"]["json"]


def _recorded_prompt_id(name: str, label: str) -> str:
    return recorded_step(name, label)["response"]["json"]["prompt_id"]


def _history_with_number(server: RunningServer, prompt_id: str, number: Any) -> dict[str, Any]:
    """History of one prompt, with the queue number set to the recorded one (the counters differ)."""
    entry = server.http.get(f"/history/{prompt_id}").json()
    entry[prompt_id]["prompt"][0] = number
    return entry


def test_txt2img_sends_the_recorded_sequence_and_reuses_cached_nodes_for_a_new_seed(
    server: RunningServer,
) -> None:
    name = "txt2img_ksampler_progress.json"
    first_label, second_label = (
        "txt2img first run (loads checkpoint)",
        "txt2img with a different seed (checkpoint/CLIP nodes cached)",
    )
    with server.socket("rec-t2i-c032175d") as ws:
        frames = [receive(ws)]
        first = server.post_prompt(_request(name, first_label))
        frames += receive_until_done(ws, first["prompt_id"])
        second = server.post_prompt(_request(name, second_label))
        frames += receive_until_done(ws, second["prompt_id"])

    ids = {
        _recorded_prompt_id(name, first_label): first["prompt_id"],
        _recorded_prompt_id(name, second_label): second["prompt_id"],
    }
    assert normalise(frames, {}) == normalise(recorded_frames(name, "websocket_client"), ids)

    recorded_history = recording(name)["steps"][3]["response"]["json"]
    ours = _history_with_number(server, second["prompt_id"], 30)
    assert normalise(ours, {}) == normalise(recorded_history, ids)


def test_identical_prompt_is_fully_cached_and_a_changed_save_node_is_partially_cached(
    server: RunningServer,
) -> None:
    name = "prompt_emptyimage_save_preview.json"
    labels = [
        "first submission",
        "identical resubmission (everything cached)",
        "only SaveImage input changed (EmptyImage + PreviewImage cached)",
    ]
    steps = recording(name)["steps"]
    labels[2] = next(s["label"] for s in steps if s["label"].startswith("only SaveImage"))
    ids: dict[str, str] = {}
    with server.socket("rec-simple-0e658cdd") as ws:
        frames = [receive(ws)]
        for label in labels:
            ours = server.post_prompt(_request(name, label))
            ids[_recorded_prompt_id(name, label)] = ours["prompt_id"]
            frames += receive_until_done(ws, ours["prompt_id"])

    assert normalise(frames, {}) == normalise(recorded_frames(name, "websocket_client"), ids)
    for step in steps:
        if step["label"].startswith("history"):
            recorded = step["response"]["json"]
            (recorded_id,) = recorded
            ours_entry = _history_with_number(server, ids[recorded_id], recorded[recorded_id]["prompt"][0])
            assert normalise(ours_entry, {}) == normalise(recorded, ids)


def test_saved_png_carries_the_prompt_and_workflow_chunks_like_comfyui(server: RunningServer) -> None:
    name = "prompt_emptyimage_save_preview.json"
    ours = server.post_prompt(_request(name, "first submission"))
    history = wait_for_history(server, ours["prompt_id"])
    recorded_view = recorded_step(name, "view output of node 2 (output)")["response"]
    image = history["outputs"]["2"]["images"][0]
    response = server.http.get("/view", params={**image, "type": image["type"]})
    assert response.status_code == 200
    assert response.headers["content-type"] == recorded_view["headers"]["content-type"]
    assert response.headers["content-disposition"] == recorded_view["headers"]["content-disposition"]
    with Image.open(BytesIO(response.content)) as png:
        summary = recorded_view["body_summary"]["image"]
        assert [png.format, list(png.size), png.mode] == [summary["format"], summary["size"], summary["mode"]]
        text = dict(png.text)
    storyboard = json.loads(text.pop("storyboard"))
    assert text == summary["png_text_chunks"]
    assert storyboard == {"label": "", "seed": None, "width": 64, "height": 48}


def test_runtime_failure_reports_execution_error_and_reruns_only_the_failed_node(
    server: RunningServer,
) -> None:
    name = "runtime_execution_error.json"
    labels = ["submit failing prompt", "resubmit same failing prompt"]
    ids: dict[str, str] = {}
    with server.socket("rec-err-6853c9f0") as ws:
        frames = [receive(ws)]
        for label in labels:
            ours = server.post_prompt(_request(name, label))
            ids[_recorded_prompt_id(name, label)] = ours["prompt_id"]
            frames += receive_until_done(ws, ours["prompt_id"])

    def comparable(value: Any) -> Any:
        value = strip_tracebacks(value)
        text = json.dumps(value)
        value = json.loads(text)

        def sort_outputs(item: Any) -> Any:
            if isinstance(item, dict):
                return {k: sorted(v) if k == "current_outputs" else sort_outputs(v) for k, v in item.items()}
            if isinstance(item, list):
                return [sort_outputs(v) for v in item]
            return item

        return sort_outputs(value)

    assert comparable(normalise(frames, {})) == comparable(
        normalise(recorded_frames(name, "websocket_client"), ids)
    )
    for label in ("history for failed prompt", "history for second failure"):
        recorded = recorded_step(name, label)["response"]["json"]
        (recorded_id,) = recorded
        ours_entry = _history_with_number(server, ids[recorded_id], recorded[recorded_id]["prompt"][0])
        # ComfyUI lists the outputs to execute from a set (hash order), so only their set is fixed.
        ours_entry[ids[recorded_id]]["prompt"][4].sort()
        recorded[recorded_id]["prompt"][4].sort()
        assert comparable(normalise(ours_entry, {})) == comparable(normalise(recorded, ids))


def test_prompt_without_client_id_only_broadcasts_status_and_progress_state(server: RunningServer) -> None:
    name = "prompt_without_client_id.json"
    with server.socket("rec-nc-a-40fa5d") as first, server.socket() as second:
        frames_first, frames_second = [receive(first)], [receive(second)]
        sid = frames_second[0]["data"]["sid"]
        # A socket without a clientId gets a fresh uuid4 hex as its sid, as ComfyUI gives it.
        assert re.fullmatch(r"[0-9a-f]{12}4[0-9a-f]{3}[89ab][0-9a-f]{15}", sid), sid
        assert sid != frames_first[0]["data"]["sid"]
        ours = server.post_prompt(_request(name, "no client_id"))

        def done(frame: dict[str, Any]) -> bool:
            return (
                frame.get("type") == "status" and frame["data"]["status"]["exec_info"]["queue_remaining"] == 0
            )

        frames_first += receive_until(first, done)
        frames_second += receive_until(second, done)
        assert_silent(first)

    ids = {_recorded_prompt_id(name, "no client_id"): ours["prompt_id"]}
    recorded_second = recorded_frames(name, "websocket_socket2_no_client_id")
    recorded_second[0]["data"]["sid"] = sid
    assert normalise(frames_first, {}) == normalise(recorded_frames(name, "websocket_socket1"), ids)
    assert normalise(frames_second, {}) == normalise(recorded_second, ids)


def test_a_bystander_socket_only_sees_status_of_another_clients_prompt(server: RunningServer) -> None:
    name = "prompt_of_other_client.json"
    # The recording came right after prompt_without_client_id, whose PreviewImage (same node id)
    # wrote ComfyUI_temp_xxxxx_00001_.png; replay it so the temp counter continues the same way.
    earlier = server.post_prompt(_request("prompt_without_client_id.json", "no client_id"))
    wait_for_history(server, earlier["prompt_id"])
    with server.socket("rec-x-d9d4ec") as submitter, server.socket("rec-y-b65062") as bystander:
        frames_x, frames_y = [receive(submitter)], [receive(bystander)]
        ours = server.post_prompt(_request(name, "X submits"))
        frames_x += receive_until_done(submitter, ours["prompt_id"])
        frames_y += receive_until(
            bystander,
            lambda f: f.get("type") == "status" and f["data"]["status"]["exec_info"]["queue_remaining"] == 0,
        )
        assert_silent(bystander)

    ids = {_recorded_prompt_id(name, "X submits"): ours["prompt_id"]}
    assert normalise(frames_x, {}) == normalise(recorded_frames(name, "websocket_X_submitter"), ids)
    assert normalise(frames_y, {}) == normalise(recorded_frames(name, "websocket_Y_bystander"), ids)


def test_connecting_with_and_without_client_id_and_negotiating_feature_flags(server: RunningServer) -> None:
    name = "ws_connect_and_feature_flags.json"
    with server.socket() as anonymous:
        first = receive(anonymous)
    recorded = recorded_frames(name, "websocket_no_client_id")
    assert list(first) == ["type", "data"] and list(first["data"]) == ["status", "sid"]
    assert first["data"]["status"] == recorded[0]["data"]["status"]
    assert len(first["data"]["sid"]) == 32

    for socket_name in (
        "websocket_with_client_id",
        "websocket_feature_flags_first_message",
        "websocket_other_first_message_then_feature_flags",
        "websocket_non_json_text_first",
    ):
        transcript = recording(name)[socket_name]
        client_id = transcript["url"].split("clientId=")[1]
        with server.socket(client_id) as ws:
            frames = [receive(ws)]
            for sent in transcript["sent_by_client"]:
                ws.send(json.dumps(sent["json"]) if "json" in sent else sent["text"])
            while True:
                try:
                    frames.append(receive(ws, timeout=0.3))
                except TimeoutError:
                    break
        assert frames == recorded_frames(name, socket_name), socket_name


def test_reconnecting_socket_takes_over_and_only_the_running_prompt_can_be_interrupted(
    start_server: Any,
) -> None:
    server = start_server(render_seconds=1000.0, max_step_seconds=0.01)
    name = "ws_reconnect_mid_run_and_targeted_interrupt.json"
    client_id = "rec-rc-2f6d13bd"
    warm_txt2img_cache(server, _request(name, "long running prompt"))
    with server.socket(client_id) as original:
        receive(original)
        ours = server.post_prompt(_request(name, "long running prompt"))
        before = receive_until(original, lambda f: f.get("type") == "progress")
        with server.socket(client_id) as reconnected:
            assert receive(reconnected) == {
                "type": "status",
                "data": {"status": {"exec_info": {"queue_remaining": 1}}, "sid": client_id},
            }
            assert receive(reconnected) == {"type": "executing", "data": {"node": "3"}}
            assert receive(reconnected)["type"] in ("progress", "progress_state")

            ignored = server.http.post(
                "/interrupt", json={"prompt_id": "00000000-dead-beef-0000-000000000000"}
            )
            assert (ignored.status_code, ignored.content) == (200, b"")
            assert receive(reconnected, timeout=2)["type"] in ("progress", "progress_state")

            targeted = server.http.post("/interrupt", json={"prompt_id": ours["prompt_id"]})
            assert (targeted.status_code, targeted.content) == (200, b"")
            tail = receive_until_done(reconnected, ours["prompt_id"])
        # The old socket stays open but only holds frames sent before the reconnect.
        assert set(message_types(drain(original))) <= {"progress", "progress_state"}

    assert message_types(before)[:5] == [
        "status",
        "status",
        "execution_start",
        "execution_cached",
        "progress_state",
    ]
    recorded_tail = recorded_frames(name, "websocket_C_reconnected_same_client_id")[-3:]
    ids = {_recorded_prompt_id(name, "long running prompt"): ours["prompt_id"]}
    assert normalise(tail[-3:], {}) == normalise(recorded_tail, ids)
    history = server.http.get(f"/history/{ours['prompt_id']}").json()[ours["prompt_id"]]
    assert (history["outputs"], history["status"]["status_str"], history["status"]["completed"]) == (
        {},
        "error",
        False,
    )
    assert history["status"]["messages"][-1][0] == "execution_interrupted"


def _binary_header(frame: bytes) -> dict[str, Any]:
    (event,) = struct.unpack(">I", frame[:4])
    if event == 4:
        (length,) = struct.unpack(">I", frame[4:8])
        metadata = json.loads(frame[8 : 8 + length])
        return {"event": 4, "metadata": metadata, "image": frame[8 + length : 8 + length + 2]}
    (image_type,) = struct.unpack(">I", frame[4:8])
    return {"event": event, "image_type": image_type, "image": frame[8:10]}


def _binary_as_recorded(frames: list[dict[str, Any]]) -> list[Any]:
    out: list[Any] = []
    for frame in frames:
        if "binary" not in frame:
            out.append(frame)
        elif isinstance(frame["binary"], bytes):
            out.append({"binary": {k: v for k, v in _binary_header(frame["binary"]).items() if k != "image"}})
        else:
            description = frame["binary"]
            entry: dict[str, Any] = {"event": description["event_type"]}
            if "metadata" in description:
                entry["metadata"] = description["metadata"]
            else:
                entry["image_type"] = description["image_type_code"]
            out.append({"binary": entry})
    return out


def test_latent_previews_use_event_4_before_progress_for_metadata_clients_and_event_1_after_for_others(
    start_server: Any,
) -> None:
    server = start_server(preview_method="latent2rgb")
    name = "txt2img_ksampler_progress_with_previews.json"
    # The recorded output folder already held two images from earlier runs.
    for counter in (1, 2):
        (server.settings.output_dir / f"ComfyUI_{counter:05}_.png").write_bytes(b"")
    meta_label, legacy_label = (
        s["label"] for s in recording(name)["steps"] if s["request"]["method"] == "POST"
    )
    with server.socket("rec-t2i-meta-84a5bd59") as meta:
        meta.send(json.dumps({"type": "feature_flags", "data": {"supports_preview_metadata": True}}))
        meta_frames = [receive(meta), receive(meta)]
        first = server.post_prompt(_request(name, meta_label))
        meta_frames += receive_until_done(meta, first["prompt_id"])
        with server.socket("rec-t2i-legacy-5a3b0198") as legacy:
            legacy_frames = [receive(legacy)]
            second = server.post_prompt(_request(name, legacy_label))
            legacy_frames += receive_until_done(legacy, second["prompt_id"])
        meta_frames += receive_until(
            meta,
            lambda f: f.get("type") == "status" and f["data"]["status"]["exec_info"]["queue_remaining"] == 0,
        )

    ids = {
        _recorded_prompt_id(name, meta_label): first["prompt_id"],
        _recorded_prompt_id(name, legacy_label): second["prompt_id"],
    }
    for ours, socket_name in ((meta_frames, "websocket_meta"), (legacy_frames, "websocket_legacy")):
        expected = normalise(_binary_as_recorded(recorded_frames(name, socket_name)), ids)
        assert normalise(_binary_as_recorded(ours), {}) == expected, socket_name

    meta_binary = next(f["binary"] for f in meta_frames if "binary" in f)
    recorded_meta = (DATA_DIR / "ws_binary_frame_meta_client_event4.bin").read_bytes()
    recorded_header = _binary_header(recorded_meta)
    assert list(_binary_header(meta_binary)["metadata"]) == list(recorded_header["metadata"])
    assert _binary_header(meta_binary)["image"] == recorded_header["image"] == b"\xff\xd8"
    legacy_binary = next(f["binary"] for f in legacy_frames if "binary" in f)
    assert legacy_binary[:10] == (DATA_DIR / "ws_binary_frame_legacy_client_event1.bin").read_bytes()[:10]


def test_previews_of_a_prompt_without_client_id_go_to_every_socket_as_event_1(start_server: Any) -> None:
    server = start_server(preview_method="latent2rgb")
    name = "txt2img_without_client_id_with_previews.json"
    warm_txt2img_cache(server, _request(name, "txt2img without client_id"))
    with server.socket("rec-ncp-a-7e05ce") as meta, server.socket() as legacy:
        meta.send(json.dumps({"type": "feature_flags", "data": {"supports_preview_metadata": True}}))
        meta_frames = [receive(meta), receive(meta)]
        legacy_frames = [receive(legacy)]
        server.post_prompt(_request(name, "txt2img without client_id"))

        def done(frame: dict[str, Any]) -> bool:
            return (
                frame.get("type") == "status" and frame["data"]["status"]["exec_info"]["queue_remaining"] == 0
            )

        meta_frames += receive_until(meta, done)
        legacy_frames += receive_until(legacy, done)

    for ours, socket_name in (
        (meta_frames, "websocket_meta_socket"),
        (legacy_frames, "websocket_legacy_socket"),
    ):
        recorded = _binary_as_recorded(recorded_frames(name, socket_name))
        assert message_types(_binary_as_recorded(ours)) == message_types(recorded), socket_name
        assert [f["binary"] for f in _binary_as_recorded(ours) if "binary" in f] == [
            {"event": 1, "image_type": 1}
        ] * 3

"""Our ComfyUIProvider, driven through whole renders against a replay of real ComfyUI traffic
and against the storyboard preview server."""

# Fixtures come from provider_fixtures (not conftest.py); a test's argument of the same name
# is how pytest passes them, which pyflakes reads as a redefinition.
# ruff: noqa: F811

from __future__ import annotations

import io
import itertools
import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from PIL import Image

from generation.providers.base import ErrorCode, EventKind, RemoteHandle, RenderRequest
from generation.providers.comfyui import ComfyUIProvider

from .conftest import DATA_DIR, recorded_step, recording
from .provider_fixtures import (  # noqa: F401 (fixtures)
    Target,
    collect_events,
    kinds,
    open_target,
    replay_target,
)

EMPTYIMAGE = "prompt_emptyimage_save_preview.json"
TXT2IMG = "txt2img_ksampler_progress.json"
PREVIEWS = "txt2img_ksampler_progress_with_previews.json"
RUNTIME_ERROR = "runtime_execution_error.json"
ENDPOINTS = "get_endpoints.json"
NO_CLIENT_ID = "txt2img_without_client_id_with_previews.json"


def _recorded_image_sizes(transcript: str) -> dict[str, tuple[int, int]]:
    """Folder type -> image size, from the transcript's recorded GET /view answers."""
    sizes = {}
    for step in recording(transcript)["steps"]:
        summary = step["response"].get("body_summary")
        if step["request"]["path"].startswith("/view?") and summary:
            folder_type = parse_qs(urlsplit(step["request"]["path"]).query)["type"][0]
            sizes[folder_type] = tuple(summary["image"]["size"])
    return sizes


def _fetch(provider: ComfyUIProvider, output: Any) -> bytes:
    with provider.fetch(output) as chunks:
        return b"".join(chunks)


def _run(target: Target, provider: ComfyUIProvider, request: RenderRequest) -> tuple[RemoteHandle, Any]:
    """Submit the request and follow it to its end: (handle, events)."""
    target.while_running(request.attempt_id)
    handle = provider.submit(request)
    events = collect_events(provider, handle)
    target.done_running()
    return handle, events


def test_a_finished_render_reports_its_progress_lists_output_and_temp_images_and_fetches_them(
    open_target: Any,
) -> None:
    target = open_target(EMPTYIMAGE)
    provider = target.provider("websocket_client")
    handle, events = _run(target, provider, target.render_request("first submission"))

    assert kinds(events)[-1] == EventKind.FINISHED
    assert EventKind.STARTED in kinds(events)
    assert {event.node for event in events if event.kind == EventKind.NODE} == {"1", "2", "3"}
    assert EventKind.FAILED not in kinds(events)

    outputs = provider.outputs(handle)
    assert sorted((o.node_id, o.folder_type, o.kind, o.subfolder) for o in outputs) == [
        ("2", "output", "image", ""),
        ("3", "temp", "image", ""),
    ]
    sizes = _recorded_image_sizes(EMPTYIMAGE)
    for output in outputs:
        image = Image.open(io.BytesIO(_fetch(provider, output)))
        image.load()
        assert (image.format, image.size) == ("PNG", sizes[output.folder_type])
    if target.replay is not None:
        saved = next(o for o in outputs if o.folder_type == "output")
        assert _fetch(provider, saved) == (DATA_DIR / "sample_output_emptyimage.png").read_bytes()


def _tiny_txt2img_for(target: Target) -> dict[str, Any] | None:
    """The preview server gets the tiny txt2img graph with a checkpoint it lists; the replay the recorded one."""
    if target.preview is None:
        return None
    workflow = json.loads((DATA_DIR / "default_workflow_api_tiny_variant.json").read_text(encoding="utf-8"))
    workflow["4"]["inputs"]["ckpt_name"] = target.preview.settings.checkpoints[0]
    return workflow


def _emptyimage() -> dict[str, Any]:
    return recorded_step(EMPTYIMAGE, "first submission")["request"]["json"]["prompt"]


def test_ksampler_progress_counts_every_step_from_one_to_the_step_count(open_target: Any) -> None:
    target = open_target(TXT2IMG, checkpoints=["storyboard-preview.safetensors"])
    provider = target.provider("websocket_client")
    request = target.render_request("txt2img first run (loads checkpoint)", _tiny_txt2img_for(target))
    _, events = _run(target, provider, request)

    steps = request.workflow["3"]["inputs"]["steps"]
    progress = [(e.node, e.value, e.maximum) for e in events if e.kind == EventKind.PROGRESS]
    assert progress == [("3", value, steps) for value in range(1, steps + 1)]
    assert kinds(events)[-1] == EventKind.FINISHED


def test_latent_previews_arrive_as_jpeg_preview_events_while_the_sampler_runs(open_target: Any) -> None:
    # Our provider never negotiates preview metadata, so it is the recording's "legacy" client (event 1).
    target = open_target(
        PREVIEWS, preview_method="latent2rgb", checkpoints=["storyboard-preview.safetensors"]
    )
    provider = target.provider("websocket_legacy")
    request = target.render_request("txt2img, legacy client (no feature_flags)", _tiny_txt2img_for(target))
    _, events = _run(target, provider, request)

    previews = [e for e in events if e.kind == EventKind.PREVIEW]
    assert previews, kinds(events)
    # An event 1 preview follows the `progress` of its step.
    assert kinds(events).index(EventKind.PROGRESS) < kinds(events).index(EventKind.PREVIEW)
    for preview in previews:
        assert preview.preview_type == "image/jpeg"
        assert preview.preview is not None and preview.preview[:2] == b"\xff\xd8"
        assert Image.open(io.BytesIO(preview.preview)).size == (512, 512)
    if target.replay is not None:
        assert len(previews) == 3
        recorded = (DATA_DIR / "ws_binary_frame_legacy_client_event1.bin").read_bytes()
        assert previews[0].preview == recorded[8:]
    assert kinds(events)[-1] == EventKind.FINISHED


def test_previews_with_metadata_are_decoded_for_a_client_that_negotiated_them(replay_target: Any) -> None:
    # Replay only: the recorded "meta" socket sent feature_flags; ours does not, so a live server
    # would send it event 1 frames. The replay shows that event 4 frames decode all the same.
    target = replay_target(PREVIEWS)
    provider = target.provider("websocket_meta")
    _, events = _run(
        target, provider, target.render_request("txt2img, client negotiated supports_preview_metadata")
    )

    previews = [e for e in events if e.kind == EventKind.PREVIEW]
    assert len(previews) == 3
    recorded = (DATA_DIR / "ws_binary_frame_meta_client_event4.bin").read_bytes()
    assert previews[0].preview == recorded[8 + 166 :]
    assert all(p.preview_type == "image/jpeg" and p.preview[:2] == b"\xff\xd8" for p in previews if p.preview)
    assert kinds(events)[-1] == EventKind.FINISHED


def test_a_node_that_fails_at_run_time_ends_the_events_with_execution_failed_naming_it(
    open_target: Any,
) -> None:
    target = open_target(RUNTIME_ERROR)
    provider = target.provider("websocket_client")
    _, events = _run(target, provider, target.render_request("submit failing prompt"))

    final = events[-1]
    assert final.kind == EventKind.FAILED and final.error is not None
    assert final.error.code == ErrorCode.EXECUTION_FAILED
    assert "node 2 (ImageToMask)" in final.error.message
    assert "IndexError" in final.error.message
    recorded = next(
        f["json"]["data"]
        for f in recording(RUNTIME_ERROR)["websocket_client"]["received"]
        if "json" in f and f["json"]["type"] == "execution_error"
    )
    if target.replay is not None:
        assert recorded["exception_message"].strip() in final.error.message
    assert final.error.detail["exception_type"] == recorded["exception_type"]


def test_health_reports_a_reachable_server_with_its_devices_and_an_unknown_prompt_has_no_history(
    open_target: Any,
) -> None:
    target = open_target(ENDPOINTS)
    provider = target.provider()

    health = provider.health()
    assert health.reachable, health.message
    assert (health.queue_running, health.queue_pending) == (0, 0)
    assert health.devices and all("name" in device and "type" in device for device in health.devices)
    if target.replay is not None:
        recorded = recorded_step(ENDPOINTS, "system_stats")["response"]["json"]
        assert health.devices == recorded["devices"]
        assert health.message == f"ComfyUI {recorded['system']['comfyui_version']}"

    unknown = RemoteHandle("comfyui", "00000000-0000-0000-0000-000000000000")
    assert provider.history(unknown) is None


def test_previews_of_another_clients_prompt_are_not_reported_while_ours_waits(open_target: Any) -> None:
    target = open_target(
        NO_CLIENT_ID,
        preview_method="latent2rgb",
        render_seconds=0.6,
        checkpoints=["storyboard-preview.safetensors"],
    )
    # Someone else's script posts a txt2img without client_id; it runs first.
    other = recorded_step(NO_CLIENT_ID, "txt2img without client_id")["request"]["json"]
    if target.preview is not None:
        other = {"prompt": _tiny_txt2img_for(target)}
    assert httpx.post(f"{target.base_url}/prompt", json=other, timeout=10).status_code == 200

    provider = target.provider("websocket_meta_socket")
    if target.replay is not None:
        # The recording has no prompt of ours: follow one that waits behind the other (stand-ins).
        handle = RemoteHandle("comfyui", "0d5c1f4e-0000-4000-8000-000000000001")
        [running] = target.replay.received_for("POST", "/prompt")
        target.replay.stand_in_no_history(handle.remote_id)
        target.replay.stand_in_post(
            "/queue", {"delete": [handle.remote_id]}, "ours withdrawn after its max wait"
        )
        target.replay.stand_in(
            "/queue",
            {
                "queue_running": [[0, "other", {}, {}, ["9"]]],
                "queue_pending": [[1, handle.remote_id, {}, {}, ["2"]]],
            },
            "ours pending behind the other",
        )
        assert running.answered_by == "txt2img without client_id"
    else:
        handle = provider.submit(target.render_request("txt2img without client_id", _emptyimage()))
    # A short max wait: on the replay ours never runs, and the checks end it as attempt_check
    # would (TIMEOUT); on the preview server it runs once the other is done.
    events = collect_events(provider, handle, max_wait=1.5)

    before_ours_started = list(itertools.takewhile(lambda e: e.kind != EventKind.STARTED, events))
    assert [e for e in before_ours_started if e.kind == EventKind.PREVIEW] == []
    if target.replay is not None:
        assert [(e.kind, e.error.code if e.error else None) for e in events] == [
            (EventKind.FAILED, ErrorCode.TIMEOUT)
        ]
        assert target.bodies_sent("POST", "/queue") == [{"delete": [handle.remote_id]}]

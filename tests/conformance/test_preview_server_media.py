"""The preview server's video, audio and batch nodes answer as ComfyUI's own do.

Their /object_info entries are the recorded ones; their outputs are real files (H.264 MP4,
VP9 WEBM, FLAC, MP3, Opus) reported the way ComfyUI reports them: video like an animation,
under `images` with `animated: [true]`, and audio under `audio`; /view serves each with the
content type a real server gives it.
"""

from __future__ import annotations

import io
import json
import pathlib
import uuid
from collections.abc import Callable
from typing import Any

import av
import pytest
from PIL import Image

from generation.bundled_backends.preview_server.settings import template_catalogue
from generation.workflow_binding import bind_workflow, load_template_file

from .conftest import DATA_DIR, RunningServer, receive_until_done

WORKFLOWS = pathlib.Path(__file__).resolve().parents[2] / "workflows"
RECORDED = json.loads((DATA_DIR / "object_info.json").read_text(encoding="utf-8"))
SAMPLE = (DATA_DIR / "sample_upload.png").read_bytes()
NEW_NODES = (
    "ImageBatch",
    "ImageAddNoise",
    "CreateVideo",
    "SaveVideo",
    "SaveWEBM",
    "EmptyAudio",
    "SaveAudio",
    "SaveAudioMP3",
    "SaveAudioOpus",
    "PreviewAudio",
    "LoadImageMask",
)


@pytest.fixture
def studio_server(start_server: Callable[..., RunningServer]) -> RunningServer:
    return start_server(**template_catalogue(), render_seconds=0.02)


def _run(server: RunningServer, graph: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    client_id = str(uuid.uuid4())
    with server.socket(client_id) as ws:
        ws.recv(timeout=5)  # status
        prompt_id = server.post_prompt({"prompt": graph, "client_id": client_id})["prompt_id"]
        frames = receive_until_done(ws, prompt_id, timeout=30)
    history = server.http.get(f"/history/{prompt_id}").json()[prompt_id]
    return frames, history


def _view(server: RunningServer, entry: dict[str, str]) -> tuple[bytes, str]:
    response = server.http.get("/view", params=entry)
    assert response.status_code == 200, entry
    assert response.headers["content-disposition"] == f'filename="{entry["filename"]}"'
    return response.content, response.headers["content-type"]


def _decode(body: bytes) -> dict[str, Any]:
    """What PyAV reads in a file: its container, streams, and the frames of its first stream."""
    with av.open(io.BytesIO(body)) as container:
        streams = [(s.type, s.codec_context.name) for s in container.streams if s.type in ("video", "audio")]
        first = container.streams.video[0] if container.streams.video else container.streams.audio[0]
        decoded = sum(1 for _ in container.decode(first))
        return {
            "format": container.format.name,
            "streams": streams,
            "frames": decoded,
            "duration_s": container.duration / 1_000_000 if container.duration else None,
            "size": (first.width, first.height) if first.type == "video" else None,
            "metadata": dict(container.metadata),
        }


@pytest.mark.parametrize("name", NEW_NODES)
def test_object_info_of_the_new_nodes_is_the_recorded_one(studio_server: RunningServer, name: str) -> None:
    served = studio_server.http.get(f"/object_info/{name}").json()[name]
    expected = json.loads(json.dumps(RECORDED[name]))
    if name == "LoadImageMask":
        # Like LoadImage, its list is the server's own input folder (empty on a fresh one).
        expected["input"]["required"]["image"][0] = []
    assert served == expected


def test_object_info_lists_the_new_nodes_in_the_real_servers_order(studio_server: RunningServer) -> None:
    served = [name for name in studio_server.http.get("/object_info").json() if name in RECORDED]
    assert served == [name for name in RECORDED if name in served]
    assert set(NEW_NODES) <= set(served)


def test_the_all_outputs_workflow_saves_every_kind_like_comfyui(studio_server: RunningServer) -> None:
    spec = load_template_file(WORKFLOWS / "storyboard-all-outputs.json")
    prefix = f"storycore/{uuid.uuid4()}"
    graph = bind_workflow(
        spec.graph, spec.bindings, {"filename_prefix": prefix, "steps": 2, "width": 128, "height": 72}
    )
    frames, history = _run(studio_server, graph)
    assert history["status"]["status_str"] == "success", history["status"]
    outputs = history["outputs"]
    executed = {f["data"]["node"]: f["data"]["output"] for f in frames if f.get("type") == "executed"}
    assert executed == outputs

    stem = prefix.rsplit("/", 1)[1]
    extensions = {"9": "png", "10": "webp", "12": "mp4", "13": "webm", "15": "flac"}
    listed = {"9": "images", "10": "images", "12": "images", "13": "images", "15": "audio"}
    assert set(outputs) == set(extensions)
    counters = set()
    for node, extension in extensions.items():
        [entry] = outputs[node][listed[node]]
        assert (entry["subfolder"], entry["type"]) == ("storycore", "output")
        assert entry["filename"].startswith(f"{stem}_") and entry["filename"].endswith(f"_.{extension}")
        counters.add(entry["filename"].removeprefix(f"{stem}_")[:5])
        # Video is reported like an animation; a still and a sound are not.
        assert outputs[node].get("animated") == ([True] if node in ("10", "12", "13") else None)
    # The save nodes share the prefix, so they share its counter: each took the next number.
    assert counters == {"00001", "00002", "00003", "00004", "00005"}

    still, still_type = _view(studio_server, outputs["9"]["images"][0])
    assert still_type == "image/png"
    assert Image.open(io.BytesIO(still)).size == (128, 72)

    animation, animation_type = _view(studio_server, outputs["10"]["images"][0])
    assert animation_type == "image/webp"
    assert Image.open(io.BytesIO(animation)).n_frames == 4

    mp4, mp4_type = _view(studio_server, outputs["12"]["images"][0])
    assert mp4_type == "video/mp4"
    facts = _decode(mp4)
    assert facts["streams"] == [("video", "h264"), ("audio", "aac")]
    assert (facts["frames"], facts["size"]) == (4, (128, 72))
    assert json.loads(facts["metadata"]["prompt"])["12"]["class_type"] == "SaveVideo"

    webm, webm_type = _view(studio_server, outputs["13"]["images"][0])
    assert webm_type == "video/webm"
    facts = _decode(webm)
    assert facts["streams"] == [("video", "vp9")]
    assert (facts["frames"], facts["size"]) == (4, (128, 72))

    flac, flac_type = _view(studio_server, outputs["15"]["audio"][0])
    assert flac_type == "audio/flac"
    facts = _decode(flac)
    assert facts["streams"] == [("audio", "flac")]
    assert facts["duration_s"] == pytest.approx(1.0, abs=0.01)


def test_mp3_opus_and_preview_audio_are_written_and_reported_like_comfyui(
    studio_server: RunningServer,
) -> None:
    graph = {
        "1": {"inputs": {"duration": 0.5, "sample_rate": 44100, "channels": 1}, "class_type": "EmptyAudio"},
        "2": {
            "inputs": {"audio": ["1", 0], "filename_prefix": "audio/ComfyUI", "quality": "128k"},
            "class_type": "SaveAudioMP3",
        },
        "3": {
            "inputs": {"audio": ["1", 0], "filename_prefix": "audio/ComfyUI", "quality": "64k"},
            "class_type": "SaveAudioOpus",
        },
        "4": {"inputs": {"audio": ["1", 0]}, "class_type": "PreviewAudio"},
    }
    _frames, history = _run(studio_server, graph)
    assert history["status"]["status_str"] == "success", history["status"]
    outputs = history["outputs"]
    [mp3_entry], [opus_entry] = outputs["2"]["audio"], outputs["3"]["audio"]
    assert {mp3_entry["filename"], opus_entry["filename"]} <= {
        f"ComfyUI_{n:05}_.{ext}" for n in (1, 2) for ext in ("mp3", "opus")
    }
    assert mp3_entry["filename"].endswith(".mp3") and opus_entry["filename"].endswith(".opus")
    assert mp3_entry["filename"][:13] != opus_entry["filename"][:13]
    assert (
        (mp3_entry["subfolder"], mp3_entry["type"])
        == (opus_entry["subfolder"], opus_entry["type"])
        == ("audio", "output")
    )
    [preview] = outputs["4"]["audio"]
    assert preview["type"] == "temp" and preview["subfolder"] == ""
    assert preview["filename"].startswith("ComfyUI_temp_") and preview["filename"].endswith("_00001_.flac")

    mp3, mp3_type = _view(studio_server, outputs["2"]["audio"][0])
    assert mp3_type == "audio/mpeg"
    assert _decode(mp3)["streams"] == [("audio", "mp3float")]
    opus, opus_type = _view(studio_server, outputs["3"]["audio"][0])
    assert opus_type == "audio/ogg"
    facts = _decode(opus)
    assert facts["streams"] == [("audio", "opus")]
    assert facts["duration_s"] == pytest.approx(0.5, abs=0.02)
    temp, temp_type = _view(studio_server, preview)
    assert temp_type == "audio/flac"
    assert _decode(temp)["streams"] == [("audio", "flac")]


def test_load_image_mask_and_image_batch_follow_comfyui(studio_server: RunningServer) -> None:
    uploaded = studio_server.upload("mask-source.png", SAMPLE).json()["name"]
    graph = {
        "1": {"inputs": {"image": uploaded, "channel": "red"}, "class_type": "LoadImageMask"},
        "2": {"inputs": {"mask": ["1", 0]}, "class_type": "MaskToImage"},
        "3": {"inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}, "class_type": "EmptyImage"},
        # The second batch is fitted to the first one's size before they are joined.
        "4": {"inputs": {"image1": ["3", 0], "image2": ["2", 0]}, "class_type": "ImageBatch"},
        "5": {"inputs": {"image": ["4", 0], "seed": 7, "strength": 0.5}, "class_type": "ImageAddNoise"},
        "6": {"inputs": {"images": ["5", 0], "filename_prefix": "batch"}, "class_type": "SaveImage"},
    }
    _frames, history = _run(studio_server, graph)
    assert history["status"]["status_str"] == "success", history["status"]
    images = history["outputs"]["6"]["images"]
    assert [entry["filename"] for entry in images] == ["batch_00001_.png", "batch_00002_.png"]
    sizes = {Image.open(io.BytesIO(_view(studio_server, entry)[0])).size for entry in images}
    assert sizes == {(64, 64)}
    info = studio_server.http.get("/object_info/LoadImageMask").json()["LoadImageMask"]
    assert info["input"]["required"]["image"][0] == [uploaded]


def test_a_video_input_refuses_an_image_link(studio_server: RunningServer) -> None:
    graph = {
        "1": {"inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}, "class_type": "EmptyImage"},
        "2": {
            "inputs": {"video": ["1", 0], "filename_prefix": "v", "format": "auto", "codec": "auto"},
            "class_type": "SaveVideo",
        },
    }
    response = studio_server.http.post("/prompt", json={"prompt": graph})
    assert response.status_code == 400
    [error] = response.json()["node_errors"]["2"]["errors"]
    assert error["type"] == "return_type_mismatch"
    assert error["extra_info"]["input_name"] == "video"


def test_every_kind_is_found_again_after_the_server_forgot_the_render(studio_server: RunningServer) -> None:
    from generation.providers.comfyui import ComfyUIProvider

    spec = load_template_file(WORKFLOWS / "storyboard-all-outputs.json")
    prefix = f"storycore/{uuid.uuid4()}"
    graph = bind_workflow(
        spec.graph, spec.bindings, {"filename_prefix": prefix, "steps": 1, "width": 64, "height": 64}
    )
    _frames, history = _run(studio_server, graph)
    assert history["status"]["status_str"] == "success", history["status"]
    studio_server.http.post("/history", json={"clear": True})  # what a restart leaves: no history

    with ComfyUIProvider(studio_server.base_url) as provider:
        found = provider.recover_outputs(prefix=prefix, reported=[])
    # The save nodes share one counter, each number in its own extension: all five come back.
    assert sorted((o.filename.rsplit(".", 1)[1], o.kind) for o in found) == [
        ("flac", "audio"),
        ("mp4", "video"),
        ("png", "image"),
        ("webm", "video"),
        ("webp", "animated"),
    ]

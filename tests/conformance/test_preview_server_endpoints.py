"""The informational GET routes on an idle server, compared with get_endpoints.json."""

from __future__ import annotations

import json
from typing import Any

import pytest

from .conftest import DATA_DIR, RunningServer, recording

_ENDPOINTS = recording("get_endpoints.json")["steps"]
_OBJECT_INFO = json.loads((DATA_DIR / "object_info.json").read_text(encoding="utf-8"))
_EXACT = [
    step
    for step in _ENDPOINTS
    if step["request"]["path"]
    in (
        "/queue",
        "/prompt",
        "/history",
        "/history?max_items=5",
        "/history/00000000-0000-0000-0000-000000000000",
        "/features",
        "/embeddings",
        "/models",
        "/models/checkpoints",
        "/models/loras",
        "/models/vae",
        "/models/not_a_folder",
        "/this/does/not/exist",
    )
    or step["request"]["path"].startswith("/object_info/")
]


@pytest.fixture
def idle_server(server: RunningServer) -> RunningServer:
    # The recorded input folder held one image, which LoadImage lists in its object_info.
    (server.settings.input_dir / "example.png").write_bytes((DATA_DIR / "sample_upload.png").read_bytes())
    return server


@pytest.mark.parametrize("step", _EXACT, ids=[s["request"]["path"] for s in _EXACT])
def test_idle_server_answers_get_routes_byte_for_byte(
    idle_server: RunningServer, step: dict[str, Any]
) -> None:
    recorded = step["response"]
    response = idle_server.http.get(step["request"]["path"])
    assert response.status_code == recorded["status"]
    for header in ("content-type", "content-length", "transfer-encoding"):
        assert response.headers.get(header) == recorded["headers"].get(header), header
    expected = recorded.get("raw_body", "")
    assert response.text == expected


@pytest.mark.parametrize("path", ["/system_stats", "/api/system_stats"])
def test_system_stats_has_the_recorded_shape_and_reports_a_cpu_device(
    server: RunningServer, path: str
) -> None:
    recorded = next(s for s in _ENDPOINTS if s["request"]["path"] == path)["response"]["json"]
    stats = server.http.get(path).json()
    assert list(stats) == list(recorded)
    assert list(stats["system"]) == list(recorded["system"])
    assert [list(d) for d in stats["devices"]] == [list(d) for d in recorded["devices"]]
    for key, value in recorded["system"].items():
        assert type(stats["system"][key]) is type(value), key
    assert stats["system"]["comfyui_version"] == "0.3.64"
    device = stats["devices"][0]
    assert (device["name"], device["type"], device["index"]) == ("storyboard preview (no GPU)", "cpu", None)
    assert device["vram_total"] >= device["vram_free"] > 0


def test_fake_vram_numbers_come_from_settings(start_server: Any) -> None:
    server = start_server(vram_total_mb=8192, vram_free_mb=6000)
    device = server.http.get("/system_stats").json()["devices"][0]
    assert (device["vram_total"], device["vram_free"]) == (8192 * 1024 * 1024, 6000 * 1024 * 1024)
    assert (device["torch_vram_total"], device["torch_vram_free"]) == (
        device["vram_total"],
        device["vram_free"],
    )


def test_full_object_info_holds_the_recorded_entries_of_the_implemented_nodes(
    idle_server: RunningServer,
) -> None:
    response = idle_server.http.get("/object_info")
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    info = response.json()
    assert set(info) >= {
        "CheckpointLoaderSimple", "CLIPTextEncode", "EmptyLatentImage", "KSampler", "VAEDecode", "SaveImage",
        "PreviewImage", "EmptyImage", "LoadImage", "ImageInvert", "ImageToMask",
    }  # fmt: skip
    recorded_order = [name for name in _OBJECT_INFO if name in info]
    assert list(info) == recorded_order
    for name, entry in info.items():
        assert entry == _OBJECT_INFO[name], name


def test_checkpoint_list_comes_from_settings(start_server: Any) -> None:
    server = start_server(
        checkpoints=["storyboard-preview.safetensors", "v1-5-pruned-emaonly-fp16.safetensors"]
    )
    entry = server.http.get("/object_info/CheckpointLoaderSimple").json()["CheckpointLoaderSimple"]
    assert entry["input"]["required"]["ckpt_name"][0] == [
        "storyboard-preview.safetensors",
        "v1-5-pruned-emaonly-fp16.safetensors",
    ]
    assert server.http.get("/models/checkpoints").json() == entry["input"]["required"]["ckpt_name"][0]


def test_uploaded_images_appear_in_the_load_image_list(server: RunningServer) -> None:
    server.upload("b.png", (DATA_DIR / "sample_upload.png").read_bytes())
    server.upload("a.png", (DATA_DIR / "sample_upload.png").read_bytes())
    entry = server.http.get("/api/object_info/LoadImage").json()["LoadImage"]
    assert entry["input"]["required"]["image"][0] == ["a.png", "b.png"]


def test_mismatched_loopback_origin_is_refused_like_comfyui(server: RunningServer) -> None:
    refused = server.http.get("/queue", headers={"Origin": "http://127.0.0.1:1"})
    assert (refused.status_code, refused.content) == (403, b"")
    same_origin = server.http.get("/queue", headers={"Origin": server.base_url})
    assert same_origin.status_code == 200

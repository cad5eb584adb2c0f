"""POST /upload/image, GET /view and the files nodes write, against the recorded answers."""

from __future__ import annotations

import hashlib
import io
import json
import os
from typing import Any

import pytest
from PIL import Image

from .conftest import DATA_DIR, RunningServer, recorded_step, recording, wait_for_history

_UPLOADS = "upload_image_and_view.json"
_SAMPLE = (DATA_DIR / "sample_upload.png").read_bytes()


def _other_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 10, 10)).save(buffer, format="PNG")
    return buffer.getvalue()


def _replay_upload(server: RunningServer, label: str, content: bytes) -> Any:
    request = recorded_step(_UPLOADS, label)["request"]
    (field, meta), *_ = request["form_files"].items()
    files = {field: (meta["filename"], content, meta["content_type"])}
    return server.http.post(request["path"], files=files, data=request.get("form_fields", {}))


def test_uploads_reuse_rename_overwrite_and_place_files_as_recorded(server: RunningServer) -> None:
    other = _other_png()
    plan = [
        ("first upload (no type/subfolder/overwrite fields)", _SAMPLE),
        ("same name, identical bytes -> same name returned (dedupe by hash)", _SAMPLE),
        ("same name, different bytes -> renamed 'name (1).png'", other),
        ("overwrite=true -> keeps name, replaces file", other),
        ("restore original content", _SAMPLE),
        ("upload into subfolder", _SAMPLE),
        ("upload with type=temp", _SAMPLE),
        ("multipart without 'image' field -> 400", _SAMPLE),
        ("path traversal in filename", _SAMPLE),
        ("path traversal in subfolder -> 400", _SAMPLE),
    ]
    for label, content in plan:
        recorded = recorded_step(_UPLOADS, label)["response"]
        response = _replay_upload(server, label, content)
        assert response.status_code == recorded["status"], label
        if "json" in recorded:
            assert response.text == recorded["raw_body"], label
            assert response.headers["content-type"] == recorded["headers"]["content-type"]
        else:
            assert response.content == b"", label

    settings = server.settings
    assert (settings.input_dir / "rec_upload_46f82c.png").read_bytes() == _SAMPLE
    assert (settings.input_dir / "rec_upload_46f82c (1).png").read_bytes() == other
    assert (settings.input_dir / "rec_sub" / "sub_rec_upload_46f82c.png").is_file()
    assert (settings.temp_dir / "tmp_rec_upload_46f82c.png").is_file()
    assert not (settings.data_dir / "evil.png").exists()
    assert not (settings.data_dir.parent / "evil2.png").exists()


def test_view_answers_every_recorded_request_with_the_same_status_and_headers(server: RunningServer) -> None:
    server.upload("rec_upload_46f82c.png", _SAMPLE)
    server.upload("sub_rec_upload_46f82c.png", _SAMPLE, subfolder="rec_sub", type="input")
    server.upload("tmp_rec_upload_46f82c.png", _SAMPLE, type="temp")
    for step in recording(_UPLOADS)["steps"]:
        if step["request"]["method"] != "GET":
            continue
        recorded = step["response"]
        response = server.http.get(step["request"]["path"])
        label = step["label"]
        assert response.status_code == recorded["status"], label
        expected_headers = {
            k: v
            for k, v in recorded["headers"].items()
            if k not in ("date", "server", "etag", "last-modified")
        }
        ours = {k: v for k, v in response.headers.items() if k in expected_headers}
        if "body_summary" in recorded and recorded["body_summary"]["image"]["format"] in ("WEBP", "JPEG"):
            expected_headers.pop("content-length")  # encoder output size depends on the libwebp/libjpeg build
            ours.pop("content-length", None)
        assert ours == expected_headers, label
        if recorded["status"] != 200:
            assert response.content == b"", label
            continue
        assert ("etag" in response.headers) == ("etag" in recorded["headers"]), label
        summary = recorded["body_summary"]
        if summary["image"]["format"] == "PNG" and "etag" in recorded["headers"]:
            assert response.content == _SAMPLE
        with Image.open(io.BytesIO(response.content)) as image:
            assert [image.format, list(image.size), image.mode] == [
                summary["image"]["format"],
                summary["image"]["size"],
                summary["image"]["mode"],
            ], label


def test_view_supports_ranges_and_conditional_requests(server: RunningServer) -> None:
    server.upload("ranged.png", _SAMPLE)
    params = {"filename": "ranged.png", "type": "input"}
    full = server.http.get("/view", params=params)
    assert full.headers["accept-ranges"] == "bytes"
    partial = server.http.get("/view", params=params, headers={"Range": "bytes=0-7"})
    assert partial.status_code == 206
    assert partial.content == _SAMPLE[:8]
    assert partial.headers["content-range"] == f"bytes 0-7/{len(_SAMPLE)}"
    cached = server.http.get("/view", params=params, headers={"If-None-Match": full.headers["etag"]})
    assert (cached.status_code, cached.content) == (304, b"")


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"filename": "/etc/passwd", "type": "input"}, 400),
        ({"filename": "..", "type": "output"}, 400),
        ({"filename": "x.png", "subfolder": "/etc", "type": "input"}, 403),
        ({"filename": "passwd", "subfolder": "../../../../../../etc", "type": "input"}, 403),
        ({"filename": "escape.png", "subfolder": "link", "type": "input"}, 403),
        ({"filename": "escape.png [output]"}, 404),
    ],
)
def test_view_refuses_paths_that_leave_the_data_folders(
    server: RunningServer, params: dict[str, str], status: int
) -> None:
    outside = server.settings.data_dir.parent / "outside"
    outside.mkdir(exist_ok=True)
    (outside / "escape.png").write_bytes(_SAMPLE)
    link = server.settings.input_dir / "link"
    if not link.exists():
        os.symlink(outside, link)
    response = server.http.get("/view", params=params)
    assert (response.status_code, response.content) == (status, b"")


def test_upload_through_a_symlinked_subfolder_is_refused(server: RunningServer) -> None:
    outside = server.settings.data_dir.parent / "outside_upload"
    outside.mkdir()
    os.symlink(outside, server.settings.input_dir / "sneaky")
    response = server.upload("x.png", _SAMPLE, subfolder="sneaky")
    assert (response.status_code, response.content) == (400, b"")
    assert list(outside.iterdir()) == []


def test_load_image_invert_saves_into_the_prefix_subfolder_with_is_changed_in_the_png(
    server: RunningServer,
) -> None:
    name = "prompt_loadimage_invert.json"
    upload = recorded_step(name, "upload source image")
    source = (DATA_DIR / "sample_upload.png").read_bytes()
    response = server.http.post(
        "/upload/image",
        files={"image": ("rec_invert_src_ea02b9.png", source, "image/png")},
        data=upload["request"]["form_fields"],
    )
    assert response.text == upload["response"]["raw_body"]

    body = recorded_step(name, "submit LoadImage workflow")["request"]["json"]
    prompt_id = server.post_prompt(body)["prompt_id"]
    history = wait_for_history(server, prompt_id)
    recorded = recorded_step(name, "history")["response"]["json"]
    (recorded_entry,) = recorded.values()
    assert history["outputs"]["12"] == recorded_entry["outputs"]["12"]
    assert list(history["outputs"]) == list(recorded_entry["outputs"])

    image = history["outputs"]["12"]["images"][0]
    view = server.http.get(
        "/view", params={"filename": image["filename"], "subfolder": "rec", "type": "output"}
    )
    assert view.status_code == 200
    with Image.open(io.BytesIO(view.content)) as png:
        assert png.size == (40, 30)
        prompt_chunk = json.loads(png.text["prompt"])
        original = Image.open(io.BytesIO(source)).convert("RGB")
        assert png.convert("RGB").getpixel((0, 0)) == tuple(255 - c for c in original.getpixel((0, 0)))
    assert prompt_chunk["10"]["is_changed"] == [hashlib.sha256(source).hexdigest()]
    assert list(prompt_chunk["10"]) == ["inputs", "class_type", "_meta", "is_changed"]


def test_load_image_reads_from_an_input_subfolder(server: RunningServer) -> None:
    name = "prompt_loadimage_invert.json"
    server.upload("rec_invert_src_ea02b9.png", _SAMPLE, subfolder="rec_sub2")
    body = recorded_step(name, "LoadImage with 'subfolder/name' value")["request"]["json"]
    history = wait_for_history(server, server.post_prompt(body)["prompt_id"])
    assert history["status"]["status_str"] == "success"
    assert history["outputs"]["12"]["images"][0] == {
        "filename": "rec_from_sub_00001_.png",
        "subfolder": "",
        "type": "output",
    }


def test_load_image_cannot_reach_outside_the_input_folder(server: RunningServer) -> None:
    (server.settings.output_dir / "secret.png").write_bytes(_SAMPLE)
    body = {
        "prompt": {
            "10": {"inputs": {"image": "../output/secret.png"}, "class_type": "LoadImage"},
            "12": {"inputs": {"filename_prefix": "x", "images": ["10", 0]}, "class_type": "SaveImage"},
        }
    }
    response = server.http.post("/prompt", json=body)
    assert response.status_code == 400
    assert response.json()["node_errors"]["10"]["errors"][0]["details"] == (
        "image - Invalid image file: ../output/secret.png"
    )


def test_save_image_prefix_that_escapes_the_output_folder_fails_at_run_time(server: RunningServer) -> None:
    body = recorded_step("prompt_emptyimage_save_preview.json", "first submission")["request"]["json"]
    body["prompt"]["2"]["inputs"]["filename_prefix"] = "../../escaped"
    history = wait_for_history(server, server.post_prompt(body)["prompt_id"])
    error = history["status"]["messages"][-1]
    assert error[0] == "execution_error"
    assert (error[1]["node_id"], error[1]["exception_type"]) == ("2", "Exception")
    assert not list(server.settings.data_dir.parent.glob("escaped*"))


def test_txt2img_frame_is_a_labelled_storyboard_at_the_latent_size(server: RunningServer) -> None:
    body = recording("txt2img_ksampler_progress.json")["steps"][0]["request"]["json"]
    body["prompt"]["5"]["inputs"].update(width=96, height=80, batch_size=2)
    history = wait_for_history(server, server.post_prompt(body)["prompt_id"])
    images = history["outputs"]["9"]["images"]
    assert [i["filename"] for i in images] == ["ComfyUI_00001_.png", "ComfyUI_00002_.png"]
    view = server.http.get("/view", params={"filename": images[0]["filename"], "type": "output"})
    with Image.open(io.BytesIO(view.content)) as png:
        assert png.size == (96, 80)
        assert json.loads(png.text["storyboard"]) == {
            "label": body["prompt"]["6"]["inputs"]["text"],
            "seed": body["prompt"]["3"]["inputs"]["seed"],
            "width": 96,
            "height": 80,
        }
        assert json.loads(png.text["prompt"])["3"]["inputs"]["cfg"] == 8.0
        assert len(png.convert("RGB").getcolors(96 * 80) or []) > 2  # text was drawn, not a flat fill


def test_temp_folder_is_wiped_when_the_server_starts(start_server: Any, tmp_path: Any) -> None:
    data_dir = tmp_path / "reused"
    (data_dir / "temp").mkdir(parents=True)
    (data_dir / "temp" / "stale.png").write_bytes(_SAMPLE)
    (data_dir / "output").mkdir()
    (data_dir / "output" / "kept.png").write_bytes(_SAMPLE)
    start_server(data_dir=data_dir)
    assert not (data_dir / "temp" / "stale.png").exists()
    assert (data_dir / "output" / "kept.png").exists()
    assert (data_dir / "input").is_dir()

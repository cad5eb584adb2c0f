"""The preview server renders every shipped template, over real HTTP and WebSocket.

Each template is bound like the render pipeline binds it (the uploaded sample
image in every LoadImage binding), run to the final `executing {node: null}`,
and its saved output is fetched from /view and checked for size and frames.
"""

from __future__ import annotations

import io
import json
import pathlib
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from PIL import Image

from generation.bundled_backends.preview_server.settings import template_catalogue
from generation.workflow_binding import IMAGE_PARAMETERS, bind_workflow, load_template_file

from .conftest import DATA_DIR, RunningServer, receive_until_done

WORKFLOWS = pathlib.Path(__file__).resolve().parents[2] / "workflows"
SAMPLE = (DATA_DIR / "sample_upload.png").read_bytes()
SAMPLE_SIZE = Image.open(io.BytesIO(SAMPLE)).size  # 40x30
# The clip is rendered smaller than the template's 1024x576 to keep the suite fast.
SVD_SIZE = (256, 144)
EXPECTED: dict[str, tuple[int, int]] = {
    "storyboard-txt2img": (512, 512),
    "sdxl-txt2img": (1024, 1024),
    # img2img keeps the init image's size, cropped to whole 8-pixel VAE cells.
    "img2img": (SAMPLE_SIZE[0] // 8 * 8, SAMPLE_SIZE[1] // 8 * 8),
    "controlnet-pose": (512, 768),
    "controlnet-depth": (512, 512),
    "controlnet-lineart": (512, 512),
    "upscale": (SAMPLE_SIZE[0] * 4, SAMPLE_SIZE[1] * 4),
    "ipadapter-character": (512, 768),
    "svd-img2vid": SVD_SIZE,
}


@pytest.fixture
def studio_server(start_server: Callable[..., RunningServer]) -> RunningServer:
    return start_server(**template_catalogue(), render_seconds=0.02)


def _bound_template(server: RunningServer, slug: str, **values: Any) -> tuple[dict[str, Any], str]:
    """The template's graph with its images uploaded and bound, and the id of its save node."""
    spec = load_template_file(WORKFLOWS / f"{slug}.json")
    uploaded = server.upload(f"{slug}.png", SAMPLE)
    assert uploaded.status_code == 200, uploaded.text
    for parameter in IMAGE_PARAMETERS:
        if parameter in spec.bindings:
            values[parameter] = uploaded.json()["name"]
    values.setdefault("prompt", f"{slug}: the hero crosses the bridge")
    values["filename_prefix"] = f"storycore/{uuid.uuid4()}"
    graph = bind_workflow(spec.graph, spec.bindings, values)
    return graph, spec.bindings["filename_prefix"][0].node


def _run(server: RunningServer, graph: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    client_id = str(uuid.uuid4())
    with server.socket(client_id) as ws:
        ws.recv(timeout=5)  # status
        prompt_id = server.post_prompt({"prompt": graph, "client_id": client_id})["prompt_id"]
        frames = receive_until_done(ws, prompt_id)
    history = server.http.get(f"/history/{prompt_id}").json()[prompt_id]
    return frames, history


def _fetch(server: RunningServer, entry: dict[str, str]) -> Image.Image:
    response = server.http.get("/view", params=entry)
    assert response.status_code == 200
    image = Image.open(io.BytesIO(response.content))
    image.load()
    return image


@pytest.mark.parametrize("slug", sorted(EXPECTED))
def test_preview_server_renders_the_template(studio_server: RunningServer, slug: str) -> None:
    values: dict[str, Any] = {"steps": 4}
    if slug == "svd-img2vid":
        values.update(width=SVD_SIZE[0], height=SVD_SIZE[1])
    graph, save_node = _bound_template(studio_server, slug, **values)
    frames, history = _run(studio_server, graph)

    assert history["status"]["status_str"] == "success", history["status"]
    types = [frame.get("type") for frame in frames]
    assert "execution_success" in types
    samplers = [node_id for node_id, node in graph.items() if node["class_type"] == "KSampler"]
    progress = [frame["data"] for frame in frames if frame.get("type") == "progress"]
    assert [(p["value"], p["max"]) for p in progress] == [(step, 4) for step in range(1, 5)] * len(samplers)

    output = history["outputs"][save_node]
    [entry] = output["images"]
    image = _fetch(studio_server, entry)
    assert image.size == EXPECTED[slug]
    if slug == "svd-img2vid":
        assert output["animated"] == [True]
        assert entry["filename"].endswith("_00001_.webp")
        assert image.format == "WEBP"
        assert getattr(image, "n_frames", 1) == graph["12"]["inputs"]["video_frames"]
    else:
        assert "animated" not in output
        assert image.format == "PNG"
    if samplers and image.format == "PNG":
        # The prompt text that reached the sampler is what the frame is labelled with.
        assert json.loads(image.info["storyboard"])["label"] == graph["6"]["inputs"]["text"]


def test_animated_webp_carries_the_prompt_in_exif_like_comfyui(studio_server: RunningServer) -> None:
    graph, save_node = _bound_template(studio_server, "svd-img2vid", steps=1, width=64, height=64)
    graph["12"]["inputs"]["video_frames"] = 8
    _frames, history = _run(studio_server, graph)
    image = _fetch(studio_server, history["outputs"][save_node]["images"][0])
    assert image.n_frames == 8
    prompt_tag = image.getexif()[0x0110]
    assert prompt_tag.startswith("prompt:")
    assert json.loads(prompt_tag.removeprefix("prompt:"))["12"]["class_type"] == "SVD_img2vid_Conditioning"


def test_a_templates_own_parameters_reach_the_server_through_its_bindings(
    studio_server: RunningServer,
) -> None:
    graph, save_node = _bound_template(
        studio_server, "svd-img2vid", steps=1, width=64, height=64, video_frames=5, fps=8, motion_bucket_id=40
    )
    assert (graph["12"]["inputs"]["fps"], graph["10"]["inputs"]["fps"]) == (8, 8)
    _frames, history = _run(studio_server, graph)
    assert history["status"]["status_str"] == "success", history["status"]
    assert _fetch(studio_server, history["outputs"][save_node]["images"][0]).n_frames == 5


def test_guide_images_are_drawn_into_the_frame(studio_server: RunningServer) -> None:
    plain, save_plain = _bound_template(studio_server, "storyboard-txt2img", steps=1)
    guided, save_guided = _bound_template(studio_server, "controlnet-depth", steps=1)
    images = []
    for graph, save_node in ((plain, save_plain), (guided, save_guided)):
        _frames, history = _run(studio_server, graph)
        images.append(_fetch(studio_server, history["outputs"][save_node]["images"][0]).convert("RGB"))
    # Same seed, size and prompt: only the control image thumbnail tells the frames apart.
    assert images[0].size == images[1].size
    assert images[0].tobytes() != images[1].tobytes()


def test_upscale_refuses_results_over_the_megapixel_cap(start_server: Callable[..., RunningServer]) -> None:
    server = start_server(**template_catalogue(), max_megapixels=0.01)
    graph, _save_node = _bound_template(server, "upscale")
    frames, history = _run(server, graph)
    assert history["status"]["status_str"] == "error"
    [error] = [frame["data"] for frame in frames if frame.get("type") == "execution_error"]
    assert error["node_type"] == "ImageUpscaleWithModel"
    assert "megapixels" in error["exception_message"]


def test_a_stock_server_offers_no_custom_nodes_and_no_extra_models(server: RunningServer) -> None:
    assert server.http.get("/object_info/IPAdapterAdvanced").json() == {}
    assert "IPAdapterUnifiedLoader" not in server.http.get("/object_info").json()
    graph, _save_node = _bound_template(server, "ipadapter-character")
    rejected = server.http.post("/prompt", json={"prompt": graph})
    assert rejected.status_code == 400
    # The first unknown class in the prompt's order is the one named, as in ComfyUI.
    assert rejected.json()["error"]["message"] == (
        "Cannot execute because node IPAdapterUnifiedLoader does not exist."
    )

    graph, _save_node = _bound_template(server, "upscale")
    rejected = server.http.post("/prompt", json={"prompt": graph})
    assert rejected.status_code == 400
    [error] = rejected.json()["node_errors"]["11"]["errors"]
    assert (error["type"], error["details"]) == (
        "value_not_in_list",
        "model_name: 'RealESRGAN_x4plus.pth' not in []",
    )


def test_model_lists_come_from_settings(studio_server: RunningServer) -> None:
    info = studio_server.http.get("/object_info").json()
    catalogue = template_catalogue()
    assert info["ControlNetLoader"]["input"]["required"]["control_net_name"][0] == catalogue["controlnets"]
    assert (
        info["UpscaleModelLoader"]["input"]["required"]["model_name"][1]["options"]
        == catalogue["upscale_models"]
    )
    assert info["ImageOnlyCheckpointLoader"]["input"]["required"]["ckpt_name"][0] == catalogue["checkpoints"]
    assert (
        info["IPAdapterModelLoader"]["input"]["required"]["ipadapter_file"][0]
        == catalogue["ipadapter_models"]
    )
    assert list(info)[-3:] == ["IPAdapterAdvanced", "IPAdapterUnifiedLoader", "IPAdapterModelLoader"]
    assert studio_server.http.get("/models/controlnet").json() == catalogue["controlnets"]


def test_an_ipadapter_preset_without_its_models_fails_with_the_packs_message(
    start_server: Callable[..., RunningServer],
) -> None:
    server = start_server(**template_catalogue(), ipadapter_presets=["STANDARD (medium strength)"])
    graph, _save_node = _bound_template(server, "ipadapter-character", steps=1)
    frames, _history = _run(server, graph)
    [error] = [frame["data"] for frame in frames if frame.get("type") == "execution_error"]
    assert (error["node_type"], error["exception_message"]) == (
        "IPAdapterUnifiedLoader",
        "IPAdapter model not found.\n",
    )

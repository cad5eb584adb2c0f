"""Every shipped template loads, and its graph uses node and input names a real ComfyUI accepts.

Core nodes are checked against the full object_info recorded from ComfyUI 0.3.64;
the IPAdapter pack's nodes against the preview server's entries built from the
pack's INPUT_TYPES.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import pytest

from generation.bundled_backends.preview_server.nodebase import recorded_object_info
from generation.workflow_binding import IMAGE_PARAMETERS, load_template_file

ROOT = pathlib.Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / "workflows").glob("*.json"))
RECORDED = json.loads((ROOT / "tests" / "data" / "comfyui" / "object_info.json").read_text(encoding="utf-8"))
# Inputs whose list is the server's model folder; the recorded server had no such models installed.
MODEL_INPUTS = {"ckpt_name", "control_net_name", "model_name", "clip_name", "ipadapter_file"}
EXPECTED = {
    "storyboard-txt2img",
    "sdxl-txt2img",
    "img2img",
    "controlnet-pose",
    "controlnet-depth",
    "controlnet-lineart",
    "upscale",
    "ipadapter-character",
    "svd-img2vid",
    "storyboard-all-outputs",
}


def _node_info(class_type: str) -> dict[str, Any]:
    if class_type in RECORDED:
        return RECORDED[class_type]
    info = recorded_object_info()[class_type]
    assert info["python_module"].startswith("custom_nodes."), class_type
    return info


def _declared_inputs(info: dict[str, Any]) -> dict[str, list[Any]]:
    return {**info["input"].get("required", {}), **info["input"].get("optional", {})}


def test_every_expected_template_is_shipped() -> None:
    assert {path.stem for path in WORKFLOWS} == EXPECTED


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.stem for p in WORKFLOWS])
def test_template_loads_with_the_binding_loader(path: pathlib.Path) -> None:
    spec = load_template_file(path)
    assert spec.slug == path.stem
    assert spec.name and spec.description
    assert "filename_prefix" in spec.bindings
    for parameter in IMAGE_PARAMETERS:
        for target in spec.bindings.get(parameter, []):
            assert spec.graph[target.node]["class_type"] == "LoadImage"
            assert target.input == "image"


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.stem for p in WORKFLOWS])
def test_template_graph_matches_comfyui_node_definitions(path: pathlib.Path) -> None:
    graph = load_template_file(path).graph
    for node_id, node in graph.items():
        info = _node_info(node["class_type"])
        declared = _declared_inputs(info)
        where = f"{path.name} node {node_id} ({node['class_type']})"
        assert set(node["inputs"]) <= set(declared), where
        assert set(info["input"].get("required", {})) <= set(node["inputs"]), where
        for name, value in node["inputs"].items():
            input_type = declared[name][0]
            options = declared[name][1] if len(declared[name]) > 1 else {}
            if isinstance(value, list):
                source = graph[value[0]]
                produced = _node_info(source["class_type"])["output"][value[1]]
                assert produced == input_type, f"{where}: {name} gets {produced}, wants {input_type}"
                continue
            choices = options.get("options") if input_type == "COMBO" else input_type
            if isinstance(choices, list) and name not in MODEL_INPUTS and node["class_type"] != "LoadImage":
                assert value in choices, f"{where}: {name}={value!r}"
            if input_type in ("INT", "FLOAT"):
                assert options.get("min", value) <= value <= options.get("max", value), f"{where}: {name}"


def test_sdxl_template_renders_at_the_sdxl_base_resolution() -> None:
    graph = load_template_file(ROOT / "workflows" / "sdxl-txt2img.json").graph
    assert graph["4"]["inputs"]["ckpt_name"] == "sd_xl_base_1.0.safetensors"
    assert (graph["5"]["inputs"]["width"], graph["5"]["inputs"]["height"]) == (1024, 1024)


def test_svd_template_saves_an_animated_webp_of_several_frames() -> None:
    graph = load_template_file(ROOT / "workflows" / "svd-img2vid.json").graph
    classes = {node["class_type"] for node in graph.values()}
    assert {"ImageOnlyCheckpointLoader", "SVD_img2vid_Conditioning", "SaveAnimatedWEBP"} <= classes
    conditioning = next(n for n in graph.values() if n["class_type"] == "SVD_img2vid_Conditioning")
    assert 8 <= conditioning["inputs"]["video_frames"] <= 14

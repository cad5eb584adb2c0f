"""Binding detection and template documents for workflows exported with ComfyUI's "Save (API)"."""

from __future__ import annotations

import copy
import json
import pathlib
from typing import Any

import pytest

from generation.workflow_binding import KNOWN_PARAMETERS, TemplateError, load_template_file
from generation.workflow_import import detect_bindings, template_document

ROOT = pathlib.Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "comfyui"
WORKFLOWS = sorted((ROOT / "workflows").glob("*.json"))
# The hand-written storyboard template predates cfg/denoise bindings; detection also finds
# those literal KSampler inputs, which is harmless: an unset scene value leaves the graph's own.
EXTRA_DETECTED = {
    name: {("cfg", "3", "cfg"), ("denoise", "3", "denoise")}
    for name in ("storyboard-txt2img", "storyboard-all-outputs")
}


def _flat(bindings: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {(name, t["node"], t["input"]) for name, targets in bindings.items() for t in targets}


def _load(path: pathlib.Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.stem for p in WORKFLOWS])
def test_detection_finds_each_shipped_templates_bindings(path: pathlib.Path) -> None:
    document = _load(path)
    detected = _flat(detect_bindings(document["workflow"]))
    # A template's own parameters (sampler, video frames...) are declared by hand, never detected.
    declared = _flat({k: v for k, v in document["bindings"].items() if k in KNOWN_PARAMETERS})
    assert detected - declared == EXTRA_DETECTED.get(path.stem, set())
    assert declared <= detected


def test_default_api_export_gets_the_canonical_bindings() -> None:
    graph = _load(DATA / "default_workflow_api.json")
    assert detect_bindings(graph) == {
        "prompt": [{"node": "6", "input": "text"}],
        "negative_prompt": [{"node": "7", "input": "text"}],
        "seed": [{"node": "3", "input": "seed"}],
        "width": [{"node": "5", "input": "width"}],
        "height": [{"node": "5", "input": "height"}],
        "steps": [{"node": "3", "input": "steps"}],
        "cfg": [{"node": "3", "input": "cfg"}],
        "denoise": [{"node": "3", "input": "denoise"}],
        "filename_prefix": [{"node": "9", "input": "filename_prefix"}],
    }


def test_template_document_from_the_default_export_loads_like_a_shipped_file(tmp_path: pathlib.Path) -> None:
    graph = _load(DATA / "default_workflow_api.json")
    document = template_document(name="Default txt2img", description="imported", graph=graph)
    assert document["name"] == "Default txt2img"
    assert document["version"] == 1
    assert document["workflow"] == graph
    path = tmp_path / "default-txt2img.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    spec = load_template_file(path)
    assert spec.bindings_as_json() == document["bindings"]


def test_a_ui_format_export_is_refused_with_the_save_api_hint() -> None:
    ui = _load(DATA / "default_workflow_ui_frontend_1.27.10.json")
    with pytest.raises(TemplateError, match=r"this is a UI workflow; use Save \(API\)"):
        template_document(name="ui", description="", graph=ui)


def test_given_bindings_are_checked_against_the_graph() -> None:
    graph = _load(DATA / "default_workflow_api.json")
    with pytest.raises(TemplateError, match="points at node '99'"):
        template_document(
            name="x",
            description="",
            graph=graph,
            bindings={"filename_prefix": [{"node": "99", "input": "filename_prefix"}]},
        )
    document = template_document(
        name="x",
        description="",
        graph=graph,
        bindings={"filename_prefix": {"node": "9", "input": "filename_prefix"}},
    )
    assert document["bindings"] == {"filename_prefix": {"node": "9", "input": "filename_prefix"}}


def test_a_graph_without_a_save_node_is_refused() -> None:
    graph = _load(DATA / "default_workflow_api.json")
    graph["9"]["class_type"] = "PreviewImage"
    del graph["9"]["inputs"]["filename_prefix"]
    with pytest.raises(TemplateError, match="no save node with a filename_prefix"):
        template_document(name="x", description="", graph=graph)


def test_a_dangling_link_is_refused_with_the_node_named() -> None:
    graph = _load(DATA / "default_workflow_api.json")
    graph["8"]["inputs"]["samples"] = ["42", 0]
    with pytest.raises(TemplateError, match=r"input 'samples' of node '8' \(VAEDecode\) links to node '42'"):
        template_document(name="x", description="", graph=graph)


@pytest.mark.parametrize("raw", [[], {}, {"1": "not a node"}])
def test_a_graph_that_is_not_api_format_is_refused(raw: Any) -> None:
    with pytest.raises(TemplateError):
        template_document(name="x", description="", graph=raw)


def test_a_template_document_is_not_mistaken_for_an_export() -> None:
    document = _load(ROOT / "workflows" / "img2img.json")
    with pytest.raises(TemplateError, match="already a template document"):
        template_document(name="x", description="", graph=document)


def test_ksampler_advanced_binds_noise_seed_and_linked_text_is_left_alone() -> None:
    graph = _load(DATA / "default_workflow_api.json")
    sampler = graph["3"]["inputs"]
    graph["3"] = {
        "class_type": "KSamplerAdvanced",
        "inputs": {
            "add_noise": "enable",
            "noise_seed": sampler["seed"],
            "steps": 20,
            "cfg": 7.0,
            "sampler_name": "euler",
            "scheduler": "normal",
            "start_at_step": 0,
            "end_at_step": 10000,
            "return_with_leftover_noise": "disable",
            **{k: sampler[k] for k in ("model", "positive", "negative", "latent_image")},
        },
    }
    graph["20"] = {"class_type": "PrimitiveString", "inputs": {"value": "from a primitive"}}
    graph["7"]["inputs"]["text"] = ["20", 0]
    detected = detect_bindings(graph)
    assert detected["seed"] == [{"node": "3", "input": "noise_seed"}]
    assert "denoise" not in detected
    assert "negative_prompt" not in detected


def test_one_encoder_feeding_both_sides_is_bound_as_the_prompt_only() -> None:
    graph = _load(DATA / "default_workflow_api.json")
    graph["3"]["inputs"]["negative"] = ["6", 0]
    del graph["7"]
    detected = detect_bindings(graph)
    assert detected["prompt"] == [{"node": "6", "input": "text"}]
    assert "negative_prompt" not in detected


def test_load_image_roles_follow_image_operations() -> None:
    graph = copy.deepcopy(_load(ROOT / "workflows" / "controlnet-depth.json")["workflow"])
    # A scale step between the loader and the ControlNet does not hide the control image.
    graph["30"] = {
        "class_type": "ImageScale",
        "inputs": {
            "upscale_method": "lanczos",
            "width": 512,
            "height": 512,
            "crop": "center",
            "image": ["10", 0],
        },
    }
    graph["12"]["inputs"]["image"] = ["30", 0]
    assert detect_bindings(graph)["control_image"] == [{"node": "10", "input": "image"}]

"""A template's typed parameters: declared in its file, else typed from /object_info, and checked."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import pytest

from generation.workflow_binding import load_template_file, spec_from_document
from generation.workflow_parameters import (
    Parameter,
    TemplateError,
    check_values,
    parameters_from_json,
    values_to_send,
)

ROOT = pathlib.Path(__file__).resolve().parents[2]
OBJECT_INFO = json.loads(
    (ROOT / "generation/bundled_backends/preview_server/object_info.json").read_text(encoding="utf-8")
)
WORKFLOWS = sorted((ROOT / "workflows").glob("*.json"))

GRAPH = {
    "3": {
        "class_type": "KSampler",
        "inputs": {
            "seed": 1,
            "steps": 20,
            "cfg": 7.0,
            "sampler_name": "euler",
            "scheduler": "normal",
            "denoise": 1.0,
            "model": ["4", 0],
        },
    },
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "x.safetensors"}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 1}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
    "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI", "images": ["3", 0]}},
    "10": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
}
BINDINGS = {
    "prompt": {"node": "6", "input": "text"},
    "seed": {"node": "3", "input": "seed"},
    "steps": {"node": "3", "input": "steps"},
    "width": {"node": "5", "input": "width"},
    "filename_prefix": {"node": "9", "input": "filename_prefix"},
}


def _spec(
    bindings: dict[str, Any] | None = None,
    parameters: dict[str, Any] | None = None,
    object_info: dict[str, Any] | None = OBJECT_INFO,
) -> list[Parameter]:
    document: dict[str, Any] = {"workflow": GRAPH, "bindings": bindings or BINDINGS}
    if parameters is not None:
        document["parameters"] = parameters
    spec = spec_from_document(document, slug="t", where="t.json", object_info=object_info)
    return list(spec.parameters)


def _by_name(parameters: list[Parameter]) -> dict[str, Parameter]:
    return {p.name: p for p in parameters}


def test_undeclared_inputs_are_typed_from_object_info_with_the_graphs_value_as_default() -> None:
    parameters = _by_name(_spec())
    assert set(parameters) == {"steps", "width"}  # prompt, seed and the file prefix are the scene's
    steps, width = parameters["steps"], parameters["width"]
    assert (steps.type, steps.min, steps.max, steps.default) == ("int", 1, 10000, 20)
    assert (width.type, width.min, width.max, width.step, width.default) == ("int", 16, 16384, 8, 512)


def test_a_combo_input_becomes_a_choice_of_its_options() -> None:
    bindings = {**BINDINGS, "sampler_name": {"node": "3", "input": "sampler_name"}}
    declared = {"sampler_name": {"label": "Sampler"}}
    sampler = _by_name(_spec(bindings, declared))["sampler_name"]
    assert sampler.type == "choice"
    assert "dpmpp_2m" in sampler.choices and sampler.default == "euler"


def test_without_a_catalogue_the_type_comes_from_the_value() -> None:
    parameters = _by_name(_spec(object_info=None))
    assert (parameters["steps"].type, parameters["steps"].min, parameters["steps"].max) == ("int", None, None)


def test_a_declaration_narrows_the_range_and_sets_label_and_help() -> None:
    declared = {"steps": {"type": "int", "label": "Steps", "min": 4, "max": 60, "help": "More is finer."}}
    steps = _by_name(_spec(parameters=declared))["steps"]
    assert (steps.label, steps.help, steps.min, steps.max, steps.default) == (
        "Steps",
        "More is finer.",
        4,
        60,
        20,
    )


def test_a_template_may_bind_its_own_parameter_to_any_input_once_declared() -> None:
    bindings = {**BINDINGS, "batch": {"node": "5", "input": "batch_size"}}
    with pytest.raises(
        TemplateError, match=r"t.json: binding 'batch' is not a scene parameter.*'parameters'"
    ):
        _spec(bindings)
    batch = _by_name(_spec(bindings, {"batch": {"type": "int", "min": 1, "max": 4}}))["batch"]
    assert (batch.type, batch.max, batch.default) == ("int", 4, 1)


@pytest.mark.parametrize(
    ("declared", "message"),
    [
        ({"steps": {"type": "number"}}, r"t.json: parameter 'steps': 'type' must be one of"),
        ({"steps": {"min": 10, "max": 5}}, r"parameter 'steps': 'min' \(10\) is above 'max' \(5\)"),
        (
            {"steps": {"max": 20000}},
            r"parameter 'steps': 'max' 20000 is outside what steps's node input accepts",
        ),
        ({"steps": {"min": 30}}, r"parameter 'steps': the default is not allowed: steps must be"),
        ({"steps": {"minimum": 1}}, r"parameter 'steps': unknown keys minimum"),
        ({"steps": {"step": 0.5}}, r"'step' of an int parameter must be a whole number"),
        ({"cfg": {"type": "float"}}, r"parameter 'cfg' is declared but not bound"),
        ({"seed": {"type": "int"}}, r"parameter 'seed' belongs to the scene"),
        ({"steps": {"type": "image"}}, r"only init_image, control_image, reference_image are images"),
        ({"steps": "int"}, r"parameter 'steps': a declaration is an object"),
    ],
)
def test_a_bad_declaration_names_the_file_and_the_parameter(declared: dict[str, Any], message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        _spec(parameters=declared)


def test_a_choice_the_node_does_not_offer_is_refused() -> None:
    bindings = {**BINDINGS, "sampler_name": {"node": "3", "input": "sampler_name"}}
    with pytest.raises(
        TemplateError, match=r"parameter 'sampler_name': the node input does not accept turbo"
    ):
        _spec(bindings, {"sampler_name": {"type": "choice", "choices": ["euler", "turbo"]}})


def test_image_bindings_are_typed_image_and_not_settable() -> None:
    bindings = {**BINDINGS, "init_image": {"node": "10", "input": "image"}}
    image = _by_name(_spec(bindings, {"init_image": {"label": "Starting image"}}))["init_image"]
    assert (image.type, image.label, image.settable) == ("image", "Starting image", False)


STEPS = Parameter("steps", "int", "Steps", default=20, min=1, max=60)
WIDTH = Parameter("width", "int", "Width", default=512, min=64, max=2048, step=8)
CFG = Parameter("cfg", "float", "CFG", default=7.0, min=1.0, max=20.0, step=0.5)
SAMPLER = Parameter("sampler_name", "choice", "Sampler", default="euler", choices=("euler", "dpmpp_2m"))
IMAGE = Parameter("init_image", "image", "Starting image")
ALL = [STEPS, WIDTH, CFG, SAMPLER, IMAGE]


def test_values_in_range_are_kept_and_defaults_are_not_stored() -> None:
    kept, errors = check_values(
        ALL, {"steps": 30, "cfg": 7, "sampler_name": "euler", "width": 768}, template="T"
    )
    assert errors == {}
    assert kept == {"steps": 30, "width": 768}  # cfg 7 and euler are the defaults


@pytest.mark.parametrize(
    ("values", "name", "message"),
    [
        ({"steps": 500}, "steps", "steps must be a whole number from 1 to 60 (got 500)"),
        ({"steps": "many"}, "steps", "steps must be a whole number from 1 to 60 (got 'many')"),
        ({"steps": True}, "steps", "steps must be a whole number"),
        ({"width": 515}, "width", "width must be a whole number from 64 to 2048 in steps of 8 (got 515)"),
        ({"cfg": 0.5}, "cfg", "cfg must be a number from 1 to 20 (got 0.5)"),
        (
            {"sampler_name": "turbo"},
            "sampler_name",
            "sampler_name must be one of euler, dpmpp_2m (got 'turbo')",
        ),
        ({"init_image": "x.png"}, "init_image", "the workflow T has no parameter 'init_image'"),
        ({"frames": 3}, "frames", "the workflow T has no parameter 'frames' (it takes: steps, width, cfg"),
    ],
)
def test_a_wrong_value_is_named_with_what_is_allowed(values: dict[str, Any], name: str, message: str) -> None:
    kept, errors = check_values(ALL, values, template="T")
    assert kept == {}
    assert message in errors[name]


def test_what_is_sent_is_every_parameter_with_the_scenes_values_over_the_defaults() -> None:
    assert values_to_send(ALL, {"steps": 30}) == {
        "steps": 30,
        "width": 512,
        "cfg": 7.0,
        "sampler_name": "euler",
    }


def test_parameters_survive_their_json_form() -> None:
    assert parameters_from_json([p.as_json() for p in ALL]) == ALL


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.stem for p in WORKFLOWS])
def test_every_shipped_default_is_one_a_real_comfyui_accepts(path: pathlib.Path) -> None:
    spec = load_template_file(path, object_info=OBJECT_INFO)
    for parameter in spec.parameters:
        for target in spec.bindings[parameter.name]:
            node = spec.graph[target.node]
            info = OBJECT_INFO[node["class_type"]]["input"]
            kind, *rest = {**info.get("optional", {}), **info["required"]}[target.input]
            options = rest[0] if rest else {}
            if parameter.type in ("int", "float"):
                assert kind in ("INT", "FLOAT")
                assert parameter.min is not None and parameter.min >= options.get("min", parameter.min)
                assert parameter.max is not None and parameter.max <= options.get("max", parameter.max)
            elif parameter.type == "choice":
                assert set(parameter.choices) <= set(kind)

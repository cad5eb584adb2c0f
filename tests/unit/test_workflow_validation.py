"""Workflows checked against a real server's node catalogue (recorded /object_info)."""

import copy
import json
from pathlib import Path

import pytest

from generation.providers.base import ErrorCode, ProviderError
from generation.providers.comfyui import check_output_name, parse_outputs
from generation.workflow_validation import find_problems, has_model, models_used, validate_workflow

DATA = Path(__file__).resolve().parent.parent / "data" / "comfyui"
OBJECT_INFO = json.loads((DATA / "object_info.json").read_text())
TINY = json.loads((DATA / "default_workflow_api_tiny_variant.json").read_text())


def _graph() -> dict:
    return copy.deepcopy(TINY)


def test_the_recorded_workflow_passes_against_the_recorded_server():
    assert find_problems(_graph(), OBJECT_INFO) == []


def test_an_unknown_node_type_is_missing_node():
    graph = _graph()
    graph["10"] = {"class_type": "IPAdapterAdvanced", "inputs": {}}
    [problem] = find_problems(graph, OBJECT_INFO)
    assert problem.code == ErrorCode.MISSING_NODE
    assert problem.describe() == "node 10 (IPAdapterAdvanced): this node type is not installed on the server"


def test_a_missing_checkpoint_is_missing_model_naming_node_and_input():
    graph = _graph()
    graph["4"]["inputs"]["ckpt_name"] = "sdxl_base.safetensors"
    with pytest.raises(ProviderError) as caught:
        validate_workflow(graph, OBJECT_INFO)
    assert caught.value.code == ErrorCode.MISSING_MODEL
    assert (
        "node 4 (CheckpointLoaderSimple) input ckpt_name: the server has no 'sdxl_base.safetensors'"
        in str(caught.value)
    )


def test_a_missing_required_input_is_named():
    graph = _graph()
    del graph["3"]["inputs"]["steps"]
    [problem] = find_problems(graph, OBJECT_INFO)
    assert (problem.code, problem.node_id, problem.input_name) == (ErrorCode.WORKFLOW_REJECTED, "3", "steps")


@pytest.mark.parametrize(
    ("node", "name", "value", "message"),
    [
        ("5", "width", 0, "0 is below the minimum of 16"),
        ("3", "steps", 100000, "100000 is above the maximum of 10000"),
        ("3", "cfg", "strong", "'strong' is not a number"),
        ("3", "sampler_name", "warp", "'warp' is not one of 'euler'"),
    ],
)
def test_values_outside_an_inputs_range_or_list_are_refused(node, name, value, message):
    graph = _graph()
    graph[node]["inputs"][name] = value
    [problem] = find_problems(graph, OBJECT_INFO)
    assert problem.code == ErrorCode.WORKFLOW_REJECTED
    assert problem.input_name == name
    assert problem.message.startswith(message)


def test_links_to_a_missing_node_or_output_are_refused():
    graph = _graph()
    graph["8"]["inputs"]["samples"] = ["99", 0]
    graph["3"]["inputs"]["model"] = ["4", 7]
    messages = [p.message for p in find_problems(graph, OBJECT_INFO)]
    assert "links to output 7 of node 4, which has 3 output(s)" in messages
    assert "links to node 99, which is not in the workflow" in messages


def test_the_gravest_problem_decides_the_code():
    graph = _graph()
    graph["3"]["inputs"]["steps"] = 0
    graph["4"]["inputs"]["ckpt_name"] = "nope.safetensors"
    graph["10"] = {"class_type": "NoSuchNode", "inputs": {}}
    with pytest.raises(ProviderError) as caught:
        validate_workflow(graph, OBJECT_INFO)
    assert caught.value.code == ErrorCode.MISSING_NODE
    assert [p["code"] for p in caught.value.detail["problems"]] == [
        "missing_node",
        "missing_model",
        "workflow_rejected",
    ]


def test_models_used_and_has_model_read_the_catalogue():
    assert models_used(_graph()) == {("ckpt_name", "tiny_sd15_random.safetensors")}
    assert has_model(OBJECT_INFO, "ckpt_name", "tiny_sd15_random.safetensors")
    assert not has_model(OBJECT_INFO, "ckpt_name", "sdxl_base.safetensors")


@pytest.mark.parametrize(
    ("filename", "subfolder"),
    [("../../etc/passwd", ""), ("passwd", "../../etc"), ("/etc/passwd", ""), ("ok.png", "/abs"), ("..", "")],
)
def test_an_output_with_an_unsafe_name_is_refused(filename, subfolder):
    with pytest.raises(ProviderError) as caught:
        check_output_name(filename, subfolder, "output")
    assert caught.value.code == ErrorCode.OUTPUT_INVALID
    history = {"9": {"images": [{"filename": filename, "subfolder": subfolder, "type": "output"}]}}
    with pytest.raises(ProviderError, match="unsafe name"):
        parse_outputs(history)


def test_ordinary_output_names_pass():
    check_output_name("ComfyUI_00001_.png", "storycore/abc", "output")
    check_output_name("ComfyUI_temp_abcde_00001_.png", "", "temp")

"""POST /prompt: accepted bodies, counters, and the recorded 400/500 answers."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import (
    DATA_DIR,
    RunningServer,
    recorded_step,
    recording,
    strip_tracebacks,
    wait_for_history,
)

_NAME = "validation_errors.json"
_REJECTED = [step["label"] for step in recording(_NAME)["steps"] if step["response"]["status"] in (400, 500)]


def _send(server: RunningServer, step: dict[str, Any]) -> Any:
    request = step["request"]
    path = request["path"]
    if "json" in request:
        return server.http.post(path, json=request["json"])
    return server.http.post(path, content=request["raw_body"], headers={"Content-Type": "application/json"})


@pytest.mark.parametrize("label", _REJECTED)
def test_rejected_prompt_gets_the_recorded_status_headers_and_body(server: RunningServer, label: str) -> None:
    # The type-mismatch case links to an uploaded image that must exist.
    server.upload("rec_invert_src_ea02b9.png", (DATA_DIR / "sample_upload.png").read_bytes())
    step = recorded_step(_NAME, label)
    response = _send(server, step)
    recorded = step["response"]
    assert response.status_code == recorded["status"]
    assert response.headers["content-type"] == recorded["headers"]["content-type"]
    if "text" in recorded:
        assert response.text == recorded["text"]
        return
    assert strip_tracebacks(response.json()) == strip_tracebacks(recorded["json"])
    # Key order matters to clients that diff bodies; compare the raw text where no traceback is involved.
    if "traceback" not in recorded["raw_body"]:
        assert response.text == recorded["raw_body"]


def test_prompt_with_one_valid_and_one_invalid_output_is_queued_with_node_errors(
    server: RunningServer,
) -> None:
    step = recorded_step(
        _NAME, "two outputs, one valid and one invalid -> accepted (200) with node_errors for the bad one"
    )
    response = _send(server, step)
    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["prompt_id", "number", "node_errors"]
    assert strip_tracebacks(body["node_errors"]) == strip_tracebacks(step["response"]["json"]["node_errors"])
    history = wait_for_history(server, body["prompt_id"])
    assert history["prompt"][4] == ["2"]
    assert list(history["outputs"]) == ["2"]


@pytest.mark.parametrize("width", ["64", 64.7])
def test_int_inputs_are_coerced_and_the_coerced_value_is_echoed(server: RunningServer, width: Any) -> None:
    body = recorded_step(_NAME, "float for INT input (EmptyImage.width=64.7)")["request"]["json"]
    body["prompt"]["1"]["inputs"]["width"] = width
    prompt_id = server.post_prompt(body)["prompt_id"]
    history = wait_for_history(server, prompt_id)
    assert history["prompt"][2]["1"]["inputs"]["width"] == 64
    assert isinstance(history["prompt"][2]["1"]["inputs"]["width"], int)


def test_float_widgets_are_echoed_as_floats_in_queue_and_history(server: RunningServer) -> None:
    body = recording("txt2img_ksampler_progress.json")["steps"][0]["request"]["json"]
    prompt_id = server.post_prompt(body)["prompt_id"]
    history = wait_for_history(server, prompt_id)
    recorded = recording("txt2img_ksampler_progress.json")["steps"][1]["response"]["json"]
    (recorded_id,) = recorded
    assert history["prompt"][2] == recorded[recorded_id]["prompt"][2]
    assert history["prompt"][2]["3"]["inputs"]["cfg"] == 8.0
    assert isinstance(history["prompt"][2]["3"]["inputs"]["denoise"], float)


def test_number_counts_every_parsed_prompt_including_rejected_ones(server: RunningServer) -> None:
    valid = recorded_step(_NAME, "numeric string is accepted/coerced (EmptyImage.width='64')")["request"][
        "json"
    ]
    invalid = recorded_step(_NAME, "unknown class_type")["request"]["json"]
    assert server.post_prompt(valid)["number"] == 0
    assert server.http.post("/prompt", json=invalid).status_code == 400
    assert server.http.post("/prompt", json={"client_id": "x"}).status_code == 400
    assert server.http.post("/prompt", content=b"{nope").status_code == 500
    assert server.post_prompt(valid)["number"] == 3
    assert server.http.post("/api/prompt", json=valid).json()["number"] == 4


def test_client_prompt_id_explicit_number_and_front_are_honoured(server: RunningServer) -> None:
    name = "prompt_body_options.json"
    body = recorded_step(name, "client-supplied prompt_id")["request"]["json"]
    response = server.http.post("/prompt", json=body)
    assert response.json() == {"prompt_id": body["prompt_id"], "number": 0, "node_errors": {}}
    wait_for_history(server, body["prompt_id"])

    explicit = recorded_step(name, "explicit number=5")
    response = server.http.post("/prompt", json=explicit["request"]["json"])
    assert response.json()["number"] == 5.0
    assert '"number": 5.0' in response.text

    front = recorded_step(name, "front=true")["request"]["json"]
    assert server.http.post("/prompt", json=front).json()["number"] == -1


def test_client_id_is_copied_into_extra_data_and_secrets_are_dropped(server: RunningServer) -> None:
    name = "prompt_body_options.json"
    step = recorded_step(name, "extra_data with sensitive keys")
    prompt_id = server.post_prompt(step["request"]["json"])["prompt_id"]
    history = wait_for_history(server, prompt_id)
    recorded = recorded_step(name, "history: sensitive extra_data keys removed")["response"]["json"]
    (recorded_id,) = recorded
    assert history["prompt"][3] == recorded[recorded_id]["prompt"][3]


def test_partial_execution_targets_run_only_the_named_output(server: RunningServer) -> None:
    name = "prompt_body_options.json"
    body = recorded_step(name, "partial_execution_targets=['3'] (only PreviewImage)")["request"]["json"]
    prompt_id = server.post_prompt(body)["prompt_id"]
    history = wait_for_history(server, prompt_id)
    assert history["prompt"][4] == ["3"]
    assert list(history["outputs"]) == ["3"]
    assert history["outputs"]["3"]["images"][0]["type"] == "temp"


def test_checkpoint_names_are_validated_against_the_configured_list(start_server: Any) -> None:
    server = start_server(checkpoints=["storyboard-preview.safetensors"])
    body = recording("txt2img_ksampler_progress.json")["steps"][0]["request"]["json"]
    response = server.http.post("/prompt", json=body)
    assert response.status_code == 400
    error = response.json()["node_errors"]["4"]["errors"][0]
    assert error["type"] == "value_not_in_list"
    assert (
        error["details"]
        == "ckpt_name: 'tiny_sd15_random.safetensors' not in ['storyboard-preview.safetensors']"
    )
    body["prompt"]["4"]["inputs"]["ckpt_name"] = "storyboard-preview.safetensors"
    assert server.http.post("/prompt", json=body).status_code == 200

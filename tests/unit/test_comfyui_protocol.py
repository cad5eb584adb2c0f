"""The ComfyUI adapter's parsing, against bodies recorded from a real server."""

import json
from pathlib import Path

import pytest

from generation.providers.base import ErrorCode, RetryClass
from generation.providers.comfyui import (
    decode_binary_frame,
    error_from_execution,
    error_from_rejection,
    parse_history_entry,
)

DATA = Path(__file__).resolve().parent.parent / "data" / "comfyui"


def _steps(name: str) -> dict[str, dict]:
    recording = json.loads((DATA / name).read_text())
    return {step["label"]: step for step in recording["steps"]}


def _rejection(label: str) -> dict:
    return _steps("validation_errors.json")[label]["response"]["json"]


def test_an_unknown_node_type_is_missing_node_and_never_retried():
    error = error_from_rejection(_rejection("unknown class_type"))
    assert error.code == ErrorCode.MISSING_NODE
    assert error.retry == RetryClass.NEVER
    assert "NoSuchNodeType does not exist" in error.message


def test_a_missing_checkpoint_alone_is_missing_model_naming_node_and_input():
    body = _rejection("txt2img with bad sampler_name and missing checkpoint (two errors, two nodes)")
    body = dict(body, node_errors={"4": body["node_errors"]["4"]})
    error = error_from_rejection(body)
    assert error.code == ErrorCode.MISSING_MODEL
    assert error.retry == RetryClass.ANOTHER_BACKEND
    assert "node 4 (CheckpointLoaderSimple) input ckpt_name: Value not in list" in error.message
    assert "missing_model.safetensors" in error.message


def test_a_missing_checkpoint_with_another_error_is_rejected_everywhere():
    error = error_from_rejection(
        _rejection("txt2img with bad sampler_name and missing checkpoint (two errors, two nodes)")
    )
    assert error.code == ErrorCode.WORKFLOW_REJECTED
    assert error.retry == RetryClass.NEVER
    assert "node 4 (CheckpointLoaderSimple) input ckpt_name" in error.message
    assert "node 3 (KSampler) input sampler_name" in error.message


def test_a_value_out_of_range_is_workflow_rejected_with_the_input_named():
    error = error_from_rejection(_rejection("int below min (EmptyImage.width=0)"))
    assert error.code == ErrorCode.WORKFLOW_REJECTED
    assert error.message == "node 1 (EmptyImage) input width: Value 0 smaller than min of 1: width"


def test_a_bad_enum_that_is_not_a_model_is_workflow_rejected():
    error = error_from_rejection(_rejection("bad enum value (ImageToMask.channel='purple')"))
    assert error.code == ErrorCode.WORKFLOW_REJECTED
    assert "input channel" in error.message


def test_a_runtime_error_keeps_node_and_exception():
    recording = json.loads((DATA / "runtime_execution_error.json").read_text())
    sockets = [value for key, value in recording.items() if key.startswith("websocket")]
    data = next(
        frame["json"]["data"]
        for socket in sockets
        for frame in socket["received"]
        if "json" in frame and frame["json"]["type"] == "execution_error"
    )
    error = error_from_execution(data)
    assert error.code == ErrorCode.EXECUTION_FAILED
    assert error.message.startswith("node 2 (ImageToMask) failed: IndexError: index 3 is out of bounds")
    assert error.detail["node_type"] == "ImageToMask"


def test_an_out_of_memory_error_is_classed_apart():
    error = error_from_execution(
        {
            "node_id": "3",
            "node_type": "KSampler",
            "exception_type": "torch.OutOfMemoryError",
            "exception_message": "CUDA out of memory.",
        }
    )
    assert error.code == ErrorCode.OUT_OF_MEMORY


def test_history_outputs_are_parsed_with_their_folder_types():
    history = _steps("prompt_emptyimage_save_preview.json")["history after success"]["response"]["json"]
    [entry] = history.values()
    parsed = parse_history_entry(entry)
    assert parsed.status == "success"
    assert parsed.completed
    by_type = {output.folder_type: output for output in parsed.outputs}
    assert by_type["output"].filename == "rec_empty_00001_.png"
    assert by_type["output"].node_id == "2"
    assert by_type["temp"].filename.startswith("ComfyUI_temp_")
    assert [name for name, _ in parsed.messages] == [
        "execution_start",
        "execution_cached",
        "execution_success",
    ]


@pytest.mark.parametrize(
    ("name", "content_type", "has_meta"),
    [
        ("ws_binary_frame_legacy_client_event1.bin", "image/jpeg", False),
        ("ws_binary_frame_meta_client_event4.bin", "image/jpeg", True),
    ],
)
def test_binary_preview_frames_decode_to_images(name, content_type, has_meta):
    image, decoded_type, meta = decode_binary_frame((DATA / name).read_bytes())
    assert decoded_type == content_type
    assert image[:3] == b"\xff\xd8\xff"  # a JPEG
    assert bool(meta) is has_meta
    if has_meta:
        assert meta["node_id"] == "3"
        assert "prompt_id" in meta

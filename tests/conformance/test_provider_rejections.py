"""What our ComfyUIProvider makes of each POST /prompt that ComfyUI refused, as recorded."""

# Fixtures come from provider_fixtures (not conftest.py); a test's argument of the same name
# is how pytest passes them, which pyflakes reads as a redefinition.
# ruff: noqa: F811

from __future__ import annotations

from typing import Any

import pytest

from generation.providers.base import ErrorCode, ProviderError, RetryClass

from .conftest import recording
from .provider_fixtures import open_target  # noqa: F401 (fixtures)

VALIDATION = "validation_errors.json"
# The recorded prompt names something the server lacks: a node type, or a model file.
EXPECTED_CODES = {
    "unknown class_type": ErrorCode.MISSING_NODE,
    # A bad sampler name besides the missing checkpoint: no other backend could run it either.
    "txt2img with bad sampler_name and missing checkpoint (two errors, two nodes)": ErrorCode.WORKFLOW_REJECTED,
}


def _rejections(status: int) -> list[Any]:
    """Recorded refusals the provider can reproduce: it always sends a `prompt`, never raw bytes."""
    return [
        pytest.param(step["label"], step["response"]["json"] if status == 400 else None, id=step["label"])
        for step in recording(VALIDATION)["steps"]
        if step["response"]["status"] == status
        and isinstance(step["request"].get("json"), dict)
        and "prompt" in step["request"]["json"]
    ]


@pytest.mark.parametrize(("label", "body"), _rejections(400))
def test_a_refused_prompt_raises_the_matching_code_with_node_class_and_input_named(
    open_target: Any, label: str, body: dict[str, Any]
) -> None:
    target = open_target(VALIDATION)
    provider = target.provider()
    with pytest.raises(ProviderError) as caught:
        provider.submit(target.render_request(label))

    error = caught.value
    assert error.code == EXPECTED_CODES.get(label, ErrorCode.WORKFLOW_REJECTED), error
    node_errors = body.get("node_errors") or {}
    for node_id, node in node_errors.items():
        assert f"node {node_id} ({node['class_type']})" in error.message
        for item in node["errors"]:
            input_name = (item.get("extra_info") or {}).get("input_name")
            if input_name:
                assert f"input {input_name}" in error.message
    if not node_errors:
        # Whole-prompt errors name the node (if any) in `details` and the class in `message`.
        assert body["error"]["message"] in error.message
        assert body["error"]["details"] in error.message


@pytest.mark.parametrize(("label", "body"), _rejections(500))
def test_a_prompt_comfyui_cannot_read_is_a_rejected_workflow_not_an_unavailable_server(
    open_target: Any, label: str, body: None
) -> None:
    # ComfyUI answers `500 text/plain` ("Server got itself in trouble") to a body it cannot
    # parse. The fault is in what we sent: another backend would refuse it the same way.
    target = open_target(VALIDATION)
    provider = target.provider()
    with pytest.raises(ProviderError) as caught:
        provider.submit(target.render_request(label))

    assert caught.value.code == ErrorCode.WORKFLOW_REJECTED, caught.value
    assert caught.value.retry == RetryClass.NEVER

"""A brief rendered through the real stack leaves telemetry that satisfies the contract and a
run report that validates, written without anyone asking; read over the REST API, as a
pipeline script would. test_run_telemetry_probes_failing.py does the same with every
GPU probe forced to fail."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from telemetry.validation import validate_attempt

pytestmark = pytest.mark.integration


def _api(studio) -> httpx.Client:
    return httpx.Client(
        base_url=studio["stack"].web_url, headers={"Authorization": f"Token {studio['token']}"}, timeout=10
    )


def _render_brief(api: httpx.Client) -> str:
    created = api.post(
        "/api/v1/briefs/",
        json={
            "title": "Lighthouse",
            "scenes": [
                {"title": "Cliff", "prompt": "a lighthouse keeper on a cliff", "seed": 1},
                {"title": "Lamp", "prompt": "the lamp room at dusk", "seed": 2},
            ],
        },
    )
    assert created.status_code == 201, created.text
    submitted = api.post(f"/api/v1/briefs/{created.json()['uuid']}/renders/", json={})
    assert submitted.status_code == 202, submitted.text
    return submitted.json()["batch"]


def _validated_batch(api: httpx.Client, batch: str, stack, timeout: float = 60) -> dict:
    """The batch once its run report is written and validated, without any call to make it so."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = api.get(f"/api/v1/batches/{batch}/").json()
        if body["validation"] is not None:
            return body
        time.sleep(0.25)
    raise AssertionError(f"batch {batch} never validated: {body}\n{stack.log('worker')[-3000:]}")


def _check_run(studio) -> tuple[dict, dict]:
    with _api(studio) as api:
        batch = _validated_batch(api, _render_brief(api), studio["stack"])
        metadata = api.get(f"/api/v1/batches/{batch['uuid']}/metadata/").json()
        summary = api.get(f"/api/v1/batches/{batch['uuid']}/summary/").text
    assert batch["finished"] and batch["jobs_total"] == 2
    assert batch["validation"]["passed"], json.dumps(batch["validation"]["failures"], indent=2)
    assert "Scenes: 2 (2 succeeded)" in summary
    for scene in metadata["scenes"]:
        [attempt] = scene["attempts"]
        record = attempt["telemetry"]
        assert all(r.passed for r in validate_attempt(record)), record
        assert record["history_exit_reason"] == "success"
        assert record["output_complete_detected"] is True
        assert record["execution_success_detected"] is True
        assert record["backend_kind"] == "comfyui"
        [artifact] = scene["artifacts"]
        assert len(artifact["sha256"]) == 64
    return batch, metadata


def test_a_brief_rendered_on_the_preview_backend_leaves_a_run_that_validates(studio):
    _, metadata = _check_run(studio)
    record = metadata["scenes"][0]["attempts"][0]["telemetry"]
    # Whatever this machine has, the record names the probe that answered or why none did.
    assert record["gpu_probe_before"] is not None or any(
        "gave none" in note for note in record["fallback_notes"]
    ), record["fallback_notes"]
    assert len(record["warnings"]) >= len(record["fallback_notes"])

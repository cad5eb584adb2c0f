"""The local RunPod endpoint answers what the cloud answers: paths, methods, auth, statuses and
the fields of each body, compared with the recorded cloud examples in tests/data/runpod/cloud/."""

from __future__ import annotations

import base64
import io
import time
from typing import Any

import httpx
from PIL import Image

from .conftest import example, s3_target, storyboard_workflow


def _shape(body: Any) -> Any:
    """Field names and JSON types, recursively: what must match, values aside."""
    if isinstance(body, dict):
        return {key: _shape(value) for key, value in body.items()}
    if isinstance(body, list):
        return [_shape(body[0])] if body else []
    return type(body).__name__ if not isinstance(body, int | float) or isinstance(body, bool) else "number"


def _cloud(name: str) -> dict[str, Any]:
    return example(f"cloud/{name}")["response"]["body"]


def test_run_then_status_goes_through_the_cloud_states_with_the_cloud_fields(start_endpoint):
    endpoint = start_endpoint(workers=1)
    endpoint.knobs(next_jobs=["slow:0.6"])
    submitted = endpoint.http.post("/run", json={"input": {"workflow": storyboard_workflow()}})
    assert submitted.status_code == 200
    assert _shape(submitted.json()) == _shape(_cloud("run.response.json"))
    assert submitted.json()["status"] == "IN_QUEUE"
    job_id = submitted.json()["id"]
    running = endpoint.wait_for(job_id, {"IN_PROGRESS"})
    recorded = _cloud("status.in-progress.json")
    assert set(running) == set(recorded)
    assert running["input"] == {"workflow": storyboard_workflow()}
    done = endpoint.wait_for(job_id, {"COMPLETED"})
    recorded = _cloud("status.completed.json")
    assert set(done) == set(recorded)
    assert _shape(done) == _shape(recorded)
    assert done["executionTime"] >= 500
    [image] = done["output"]["images"]
    assert image["type"] == "base64"
    assert image["filename"].endswith(".png")
    picture = Image.open(io.BytesIO(base64.b64decode(image["data"])))
    assert picture.format == "PNG"


def test_a_queued_job_and_its_cancel_answer_like_the_cloud(start_endpoint):
    endpoint = start_endpoint()
    endpoint.knobs(next_jobs=["hold"])
    job_id = endpoint.http.post("/run", json={"input": {"workflow": {}}}).json()["id"]
    queued = endpoint.http.get(f"/status/{job_id}").json()
    assert queued == {"id": job_id, "status": "IN_QUEUE"}
    assert _shape(queued) == _shape(_cloud("status.in-queue.json"))
    cancelled = endpoint.http.post(f"/cancel/{job_id}")
    assert cancelled.status_code == 200
    assert cancelled.json() == {"id": job_id, "status": "CANCELLED"}
    assert _shape(endpoint.http.get(f"/status/{job_id}").json()) == _shape(_cloud("status.cancelled.json"))


def test_failures_carry_the_workers_error_as_the_cloud_does(start_endpoint):
    endpoint = start_endpoint()
    endpoint.knobs(next_jobs=["oom", "crash"])
    first = endpoint.http.post("/run", json={"input": {"workflow": {}}}).json()["id"]
    second = endpoint.http.post("/run", json={"input": {"workflow": {}}}).json()["id"]
    failed = endpoint.wait_for(first, {"FAILED"})
    assert set(failed) == set(_cloud("status.failed.handler-error.json"))
    assert failed["error"] == "Job processing failed"
    assert "CUDA out of memory" in failed["output"]["details"][0]
    crashed = endpoint.wait_for(second, {"FAILED"})
    assert set(crashed) == set(_cloud("status.failed.handler-exception.json"))
    assert isinstance(crashed["error"], str) and '"error_type"' in crashed["error"]


def test_the_worker_refusals_are_worker_comfyuis_texts(start_endpoint):
    endpoint = start_endpoint()
    scenarios = {s["scenario"]: s for s in example("worker-comfyui/errors.scenarios.json")["scenarios"]}
    missing = endpoint.http.post("/run", json={"input": {"prompt": {}}}).json()["id"]
    assert (
        endpoint.wait_for(missing, {"FAILED"})["error"]
        == scenarios["error_missing_workflow"]["expected_cloud_status_body_min"]["error"]
    )
    bad_images = endpoint.http.post("/run", json={"input": {"workflow": {}, "images": "x"}}).json()["id"]
    assert (
        endpoint.wait_for(bad_images, {"FAILED"})["error"]
        == scenarios["error_images_wrong_shape"]["expected_cloud_status_body_min"]["error"]
    )
    graph = storyboard_workflow()
    graph["4"]["inputs"]["ckpt_name"] = "not-installed.safetensors"
    invalid = endpoint.http.post("/run", json={"input": {"workflow": graph}}).json()["id"]
    error = endpoint.wait_for(invalid, {"FAILED"})["error"]
    assert error.startswith("Workflow validation failed:\n• Node 4 (errors): [{'type': 'value_not_in_list'")


def test_timed_out_when_the_job_runs_past_its_execution_timeout(start_endpoint):
    endpoint = start_endpoint()
    endpoint.knobs(next_jobs=["timeout"])
    job_id = endpoint.http.post(
        "/run", json={"input": {"workflow": {}}, "policy": {"executionTimeout": 300}}
    ).json()["id"]
    timed_out = endpoint.wait_for(job_id, {"TIMED_OUT"})
    assert set(timed_out) == set(_cloud("status.timed-out.json"))
    assert timed_out["executionTime"] >= 300
    retried = endpoint.http.post(f"/retry/{job_id}")
    assert retried.json() == {"id": job_id, "status": "IN_QUEUE"}
    assert endpoint.http.post(f"/retry/{job_id}").status_code == 400  # no longer FAILED / TIMED_OUT


def test_auth_is_required_in_both_documented_forms(start_endpoint):
    endpoint = start_endpoint()
    base = f"{endpoint.api_base}/{endpoint.endpoint_id}"
    assert httpx.get(f"{base}/health").status_code == 401
    assert httpx.get(f"{base}/health", headers={"Authorization": "Bearer wrong"}).json() == {
        "error": "Unauthorized"
    }
    assert httpx.get(f"{base}/health", headers={"Authorization": endpoint.api_key}).status_code == 200
    health = endpoint.http.get("/health").json()
    recorded = _cloud("health.response.json")
    assert set(health["jobs"]) == set(recorded["jobs"])
    assert set(health["workers"]) == set(recorded["workers"])


def test_unknown_paths_jobs_and_endpoints_are_404_and_limits_are_kept(start_endpoint):
    endpoint = start_endpoint()
    assert endpoint.http.get("/status/no-such-job").status_code == 404
    other = httpx.get(
        endpoint.api_base + "/someone-else/health", headers={"Authorization": f"Bearer {endpoint.api_key}"}
    )
    assert other.status_code == 404
    # The SDK's local server takes /run at the root; the cloud does not.
    assert endpoint.root.post("/run", json={"input": {}}).status_code == 404
    assert endpoint.http.post("/run", json={"nothing": 1}).status_code == 400
    too_big = endpoint.http.post("/run", json={"input": {"workflow": {"x": "a" * (10 * 1024 * 1024)}}})
    assert too_big.status_code == 413
    assert too_big.json() == {"error": "Payload Too Large"}
    endpoint.knobs(rate_limit_next=1, retry_after=2)
    limited = endpoint.http.get("/health")
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "2"
    assert endpoint.http.get("/health").status_code == 200


def test_results_expire_after_the_retention_time(start_endpoint):
    endpoint = start_endpoint(result_retention_s=0.3)
    endpoint.knobs(next_jobs=["fail"])
    job_id = endpoint.http.post("/run", json={"input": {"workflow": {}}}).json()["id"]
    endpoint.wait_for(job_id, {"FAILED"})
    time.sleep(0.4)
    assert endpoint.http.get(f"/status/{job_id}").status_code == 404


def test_runsync_stream_and_purge_queue(start_endpoint):
    endpoint = start_endpoint()
    synced = endpoint.http.post("/runsync", json={"input": {"workflow": storyboard_workflow()}}, timeout=30)
    body = synced.json()
    assert body["id"].startswith("sync-")
    assert body["status"] == "COMPLETED"
    assert set(body) == set(example("cloud/status.completed.json")["response"]["body"])
    streamed = endpoint.http.get(f"/stream/{body['id']}").json()
    assert streamed == {"status": "COMPLETED", "stream": []}  # worker-comfyui streams nothing
    endpoint.knobs(next_jobs=["hold", "hold"])
    for _ in range(2):
        endpoint.http.post("/run", json={"input": {"workflow": {}}})
    assert endpoint.http.post("/purge-queue").json() == {"removed": 2, "status": "completed"}


def test_s3_mode_uploads_to_the_month_bucket_and_returns_a_presigned_url(start_endpoint, s3_server):
    endpoint = start_endpoint(s3=s3_target(s3_server))
    job_id = endpoint.http.post("/run", json={"input": {"workflow": storyboard_workflow()}}).json()["id"]
    done = endpoint.wait_for(job_id, {"COMPLETED"})
    [image] = done["output"]["images"]
    recorded = example("worker-comfyui/output.success.s3_url.json")["output"]["images"][0]
    assert set(image) == set(recorded)
    assert image["type"] == "s3_url"
    assert image["data"].startswith(f"{s3_server}/{time.strftime('%m-%y')}/{job_id}/")
    assert "X-Amz-Expires=604800" in image["data"]
    fetched = httpx.get(image["data"])
    assert fetched.status_code == 200
    assert Image.open(io.BytesIO(fetched.content)).format == "PNG"

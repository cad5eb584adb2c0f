"""The RunPod provider against the local RunPod endpoint over real HTTP, case by case, and its
reading of every worker-comfyui output and failure shape recorded in tests/data/runpod/."""

from __future__ import annotations

import io
import time

import pytest
from PIL import Image

from generation.artifact_check import inspect_image
from generation.providers.base import (
    ErrorCode,
    EventKind,
    InputImage,
    ProviderError,
    RemoteHandle,
    RenderRequest,
    RetryClass,
)
from generation.providers.runpod import (
    RunPodProvider,
    Timeouts,
    error_from_worker,
    excerpt,
    parse_images,
)
from tests.following import poll_until_done

from .conftest import Endpoint, example, s3_target, storyboard_workflow

FAST = Timeouts(connect=2, read=10, rate_limit_wait=1)
# The queue policy a job is followed under: PollWatch's poll interval and attempt_check's max wait.
POLL_INTERVAL = 0.05
MAX_WAIT = 15.0


def _provider(endpoint: Endpoint, **overrides) -> RunPodProvider:
    options = {"timeouts": FAST}
    options.update(overrides)
    return RunPodProvider(endpoint.api_base, endpoint.endpoint_id, endpoint.api_key, **options)


def _request(workflow=None, images=()) -> RenderRequest:
    return RenderRequest(
        attempt_id="3f1c2a9e-0000-4000-8000-000000000001",
        workflow=workflow or storyboard_workflow(),
        images=images,
    )


def _until_done(provider: RunPodProvider, handle: RemoteHandle, *, max_wait: float = MAX_WAIT):
    """Follow the job as the render watcher does: a check on the poll interval until one ends it."""
    events = poll_until_done(provider, handle, poll_interval=POLL_INTERVAL, max_wait=max_wait)
    assert events[-1].kind in (EventKind.FINISHED, EventKind.FAILED)
    return events


def _fetch_all(provider: RunPodProvider, handle: RemoteHandle) -> list[bytes]:
    files = []
    for output in provider.outputs(handle):
        with provider.fetch(output) as chunks:
            files.append(b"".join(chunks))
    return files


def test_success_with_base64_output_and_the_timings_in_telemetry(start_endpoint):
    endpoint = start_endpoint()
    with _provider(endpoint) as provider:
        handle = provider.submit(_request())
        assert handle.backend_kind == "runpod" and handle.remote_id.endswith("-u1")
        events = _until_done(provider, handle)
        assert events[-1].kind == EventKind.FINISHED
        [png] = _fetch_all(provider, handle)
        assert provider.telemetry["runpod_status"] == "COMPLETED"
        assert provider.telemetry["execution_ms"] >= 0 and provider.telemetry["delay_ms"] >= 0
        assert provider.telemetry["worker_id"].startswith("local")
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.size == (512, 512)


def test_success_with_s3_url_output_fetched_from_a_real_s3_server(start_endpoint, s3_server):
    endpoint = start_endpoint(s3=s3_target(s3_server))
    with _provider(endpoint) as provider:
        handle = provider.submit(_request())
        _until_done(provider, handle)
        [output] = provider.outputs(handle)
        assert output.source.startswith("s3_url:")
        with provider.fetch(output) as chunks:
            png = b"".join(chunks)
    assert Image.open(io.BytesIO(png)).format == "PNG"


def test_input_images_travel_as_base64_under_the_attempts_name(start_endpoint):
    endpoint = start_endpoint()
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 40, 40)).save(buffer, "PNG")
    import json
    import pathlib

    graph = json.loads(
        (pathlib.Path(__file__).resolve().parents[3] / "workflows" / "img2img.json").read_text()
    )["workflow"]
    load = next(node_id for node_id, node in graph.items() if node["class_type"] == "LoadImage")
    image = InputImage(node_id=load, input_name="image", filename="init.png", content=buffer.getvalue())
    with _provider(endpoint) as provider:
        handle = provider.submit(_request(graph, images=(image,)))
        assert _until_done(provider, handle)[-1].kind == EventKind.FINISHED
        assert len(_fetch_all(provider, handle)) == 1


def test_failed_with_the_workers_error_maps_to_our_codes(start_endpoint):
    endpoint = start_endpoint()
    endpoint.knobs(next_jobs=["fail", "oom", "crash"])
    with _provider(endpoint) as provider:
        ends = [_until_done(provider, provider.submit(_request()))[-1].error for _ in range(3)]
    failed, oom, crash = ends
    assert failed is not None and failed.code == ErrorCode.EXECUTION_FAILED
    assert "Job processing failed" in failed.message and "told to fail" in failed.message
    assert oom is not None and oom.code == ErrorCode.OUT_OF_MEMORY
    assert crash is not None and crash.code == ErrorCode.EXECUTION_FAILED
    assert "RuntimeError" in crash.message and "Traceback" not in crash.message


def test_a_workflow_refused_by_the_workers_comfyui_names_the_node(start_endpoint):
    endpoint = start_endpoint()
    graph = storyboard_workflow()
    graph["4"]["inputs"]["ckpt_name"] = "not-installed.safetensors"
    with _provider(endpoint) as provider:
        error = _until_done(provider, provider.submit(_request(graph)))[-1].error
    assert error is not None and error.code == ErrorCode.MISSING_MODEL
    assert "Node 4" in error.message and "ckpt_name" in error.message


def test_cancelled_on_runpod(start_endpoint):
    endpoint = start_endpoint()
    endpoint.knobs(next_jobs=["hold"])
    with _provider(endpoint) as provider:
        handle = provider.submit(_request())
        assert provider.locate(handle) == "pending"
        provider.cancel(handle)
        end = provider.outcome(handle)
    assert end is not None and end.error is not None and end.error.code == ErrorCode.CANCELLED
    assert endpoint.stats()["jobs"][handle.remote_id] == "CANCELLED"


def test_timed_out_on_runpod(start_endpoint):
    endpoint = start_endpoint(execution_timeout_ms=300)
    endpoint.knobs(next_jobs=["timeout"])
    with _provider(endpoint) as provider:
        error = _until_done(provider, provider.submit(_request()))[-1].error
    assert error is not None and error.code == ErrorCode.TIMEOUT
    assert error.retry == RetryClass.ANOTHER_BACKEND


def test_stuck_in_queue_past_max_wait_is_cancelled_on_runpod_and_times_out(start_endpoint):
    endpoint = start_endpoint()
    endpoint.knobs(next_jobs=["hold"])
    with _provider(endpoint) as provider:
        handle = provider.submit(_request())
        # The max wait is the queue policy's, enforced by attempt_check's checks (which cancel).
        events = _until_done(provider, handle, max_wait=0.4)
    assert events[0].kind == EventKind.QUEUED
    assert events[-1].error is not None and events[-1].error.code == ErrorCode.TIMEOUT
    assert endpoint.stats()["jobs"][handle.remote_id] == "CANCELLED"


def test_401_is_auth_failed_never_retried_and_never_shows_the_key(start_endpoint):
    endpoint = start_endpoint()
    wrong = "rp-wrong-key-0f9e8d7c6b5a"
    with RunPodProvider(endpoint.api_base, endpoint.endpoint_id, wrong, timeouts=FAST) as provider:
        with pytest.raises(ProviderError) as refused:
            provider.submit(_request())
        health = provider.health()
    assert refused.value.code == ErrorCode.AUTH_FAILED
    assert refused.value.retry == RetryClass.NEVER
    assert not health.reachable
    for text in (str(refused.value), repr(refused.value.detail), health.message, repr(provider)):
        assert wrong not in text and endpoint.api_key not in text


def test_404_is_a_config_error_for_an_unknown_endpoint_and_lost_for_an_expired_job(start_endpoint):
    endpoint = start_endpoint(result_retention_s=0.2)
    with RunPodProvider(endpoint.api_base, "no-such-endpoint", endpoint.api_key, timeouts=FAST) as provider:
        with pytest.raises(ProviderError) as unknown:
            provider.submit(_request())
    assert unknown.value.code == ErrorCode.CONFIG_INVALID
    endpoint.knobs(next_jobs=["fail"])
    with _provider(endpoint) as provider:
        handle = provider.submit(_request())
        _until_done(provider, handle)
        time.sleep(0.3)
        end = provider.outcome(handle)
        assert provider.locate(handle) == "unknown"
    assert end is not None and end.error is not None and end.error.code == ErrorCode.LOST
    assert "30 minutes" in end.error.message


def test_429_is_waited_out_within_the_budget_and_rate_limited_beyond_it(start_endpoint):
    endpoint = start_endpoint()
    endpoint.knobs(rate_limit_next=2, retry_after=0.1)
    with _provider(endpoint) as provider:
        handle = provider.submit(_request())
        assert any("HTTP 429" in note for note in provider.fallback_notes)
        assert _until_done(provider, handle)[-1].kind == EventKind.FINISHED
    assert endpoint.stats()["requests"]["POST run"] == 3
    endpoint.knobs(rate_limit_next=5, retry_after=3)
    with _provider(endpoint) as provider:
        with pytest.raises(ProviderError) as limited:
            provider.submit(_request())
    assert limited.value.code == ErrorCode.RATE_LIMITED
    assert limited.value.retry == RetryClass.SAME_BACKEND
    assert limited.value.detail["retry_after"] == 3


@pytest.mark.parametrize(
    "variant", ["no_output", "not_object", "no_images", "empty", "s3_local_path", "missing_fields", "huge"]
)
def test_malformed_output_is_output_invalid_with_the_answer_kept_short(start_endpoint, variant):
    endpoint = start_endpoint()
    endpoint.knobs(next_jobs=[f"malformed:{variant}"])
    with _provider(endpoint, max_output_bytes=1024 * 1024) as provider:
        handle = provider.submit(_request())
        assert _until_done(provider, handle)[-1].kind == EventKind.FINISHED
        with pytest.raises(ProviderError) as invalid:
            provider.outputs(handle)
    assert invalid.value.code == ErrorCode.OUTPUT_INVALID
    kept = repr(invalid.value.detail)
    assert len(kept) < 5000  # 4 MB of base64 in "huge" is cut


@pytest.mark.parametrize("variant", ["not_image", "bad_base64"])
def test_output_that_is_not_an_image_fails_when_decoded(start_endpoint, variant, tmp_path):
    endpoint = start_endpoint()
    endpoint.knobs(next_jobs=[f"malformed:{variant}"])
    with _provider(endpoint) as provider:
        handle = provider.submit(_request())
        _until_done(provider, handle)
        [output] = provider.outputs(handle)
        with pytest.raises(ProviderError) as invalid:
            with provider.fetch(output) as chunks:
                path = tmp_path / "out"
                path.write_bytes(b"".join(chunks))
            inspect_image(path, max_pixels=1 << 24, label="output")
    assert invalid.value.code == ErrorCode.OUTPUT_INVALID


def test_the_legacy_message_shape_gives_one_image(start_endpoint):
    endpoint = start_endpoint()
    endpoint.knobs(next_jobs=["legacy"])
    with _provider(endpoint) as provider:
        handle = provider.submit(_request())
        _until_done(provider, handle)
        [png] = _fetch_all(provider, handle)
    assert Image.open(io.BytesIO(png)).format == "PNG"


def test_a_restarted_worker_reattaches_by_job_id_without_submitting_again(start_endpoint):
    endpoint = start_endpoint()
    endpoint.knobs(next_jobs=["slow:0.5"])
    with _provider(endpoint) as first:
        handle = first.submit(_request())
        assert first.locate(handle) in ("pending", "running")
    stored = handle.remote_id  # what the attempt row keeps
    with _provider(endpoint) as second:
        again = RemoteHandle(backend_kind="runpod", remote_id=stored)
        assert _until_done(second, again)[-1].kind == EventKind.FINISHED
        assert len(_fetch_all(second, again)) == 1
    assert endpoint.stats()["requests"]["POST run"] == 1


def test_a_workflow_too_large_for_run_is_refused_before_sending(start_endpoint):
    endpoint = start_endpoint()
    graph = storyboard_workflow()
    graph["6"]["inputs"]["text"] = "x" * (10 * 1024 * 1024)
    with _provider(endpoint) as provider:
        with pytest.raises(ProviderError) as refused:
            provider.submit(_request(graph))
    assert refused.value.code == ErrorCode.WORKFLOW_REJECTED
    assert "over the 10 MB" in refused.value.message
    assert endpoint.stats()["requests"].get("POST run", 0) == 0


def test_health_reports_jobs_and_workers(start_endpoint):
    endpoint = start_endpoint(workers=3)
    endpoint.knobs(next_jobs=["hold"])
    with _provider(endpoint) as provider:
        provider.submit(_request())
        health = provider.health()
    assert health.reachable
    assert health.queue_pending == 1 and health.queue_running == 0
    assert "idle 3" in health.message


# -- the recorded shapes, without a server --------------------------------------
@pytest.mark.parametrize(
    "name",
    [
        "output.success.base64.json",
        "output.success.s3_url.json",
        "output.success.with-nonfatal-errors.json",
    ],
)
def test_every_recorded_success_shape_is_read(name):
    images = parse_images(example(f"worker-comfyui/{name}")["output"])
    assert [image.filename for image in images] == ["ComfyUI_00001_.png"]


@pytest.mark.parametrize(
    "name", ["output.success.no-images.json", "output.success.s3-env-without-credentials.json"]
)
def test_recorded_shapes_without_a_usable_image_are_output_invalid(name):
    with pytest.raises(ProviderError) as invalid:
        parse_images(example(f"worker-comfyui/{name}")["output"])
    assert invalid.value.code == ErrorCode.OUTPUT_INVALID


EXPECTED_CODES = {
    "success_s3_upload_fails": ErrorCode.CONFIG_INVALID,
    "error_missing_workflow": ErrorCode.WORKFLOW_REJECTED,
    "error_images_wrong_shape": ErrorCode.WORKFLOW_REJECTED,
    "error_images_bad_base64": ErrorCode.WORKFLOW_REJECTED,
    "error_missing_node_type": ErrorCode.MISSING_NODE,
    "error_validation_model_not_in_list": ErrorCode.MISSING_MODEL,
    "error_node_execution_error": ErrorCode.OUT_OF_MEMORY,
    "error_comfyui_crashed_mid_job": ErrorCode.UNAVAILABLE,
    "error_comfyui_unreachable": ErrorCode.UNAVAILABLE,
}


def test_every_recorded_worker_failure_maps_to_a_code():
    scenarios = example("worker-comfyui/errors.scenarios.json")["scenarios"]
    assert {s["scenario"] for s in scenarios} == set(EXPECTED_CODES)
    for scenario in scenarios:
        body = scenario["expected_cloud_status_body_min"]
        error = error_from_worker(body["error"], body.get("output"))
        assert error.code == EXPECTED_CODES[scenario["scenario"]], scenario["scenario"]


def test_excerpt_cuts_base64_but_keeps_the_shape():
    kept = excerpt({"images": [{"filename": "a.png", "type": "base64", "data": "A" * 100_000}]})
    assert kept["images"][0]["filename"] == "a.png"
    assert kept["images"][0]["data"].endswith("(100000 characters)")
    assert len(kept["images"][0]["data"]) < 300

"""The demo brief rendered on the local RunPod endpoint (a real process, `manage.py runpod_endpoint`)
through the real stack gives the same live states and the same artifacts as on the preview
server; a watcher restart mid-job re-attaches by job id; the API key shows up nowhere."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest
import websockets
from PIL import Image

from briefs.demo import demo_seed
from generation.models import Attempt, Backend, JobEvent
from generation.services import backend_register_local_runpod
from telemetry.validation import validate_attempt
from tests.stack import free_port, running

pytestmark = pytest.mark.integration

KEY_ENV = "RUNPOD_TEST_INTEGRATION_KEY"
API_KEY = "rp-integration-key-5b2e91c4d7a8"
ENDPOINT_ID = "local-it"
RUNPOD = "Local RunPod endpoint"
PRICE = Decimal("0.00044")


@pytest.fixture(scope="module", autouse=True)
def _key_in_the_environment() -> Iterator[None]:
    # Set before the module's stack starts, so the watcher and workers can read it by name.
    os.environ[KEY_ENV] = API_KEY
    yield
    os.environ.pop(KEY_ENV, None)


@pytest.fixture(scope="module")
def endpoint(stack) -> Iterator[str]:
    port = free_port()
    env = dict(os.environ, PYTHONUNBUFFERED="1", STORYCORE_VAR_DIR=str(stack.log_dir.parent))
    argv = [
        sys.executable,
        "manage.py",
        "runpod_endpoint",
        "--port",
        str(port),
        "--comfyui-url",
        stack.preview_url,
        "--endpoint-id",
        ENDPOINT_ID,
        "--api-key-env",
        KEY_ENV,
        "--workers",
        "2",
        "--test-knobs",
    ]
    with running("runpod-endpoint", argv, env, stack.log_dir, port):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def runpod(studio, endpoint):
    backend = backend_register_local_runpod(
        url=f"{endpoint}/v2", endpoint_id=ENDPOINT_ID, api_key_env=KEY_ENV, name=RUNPOD
    )
    return {**studio, "endpoint": endpoint, "backend": backend}


def _knobs(endpoint: str, **body) -> None:
    response = httpx.post(
        f"{endpoint}/_test/knobs", json=body, headers={"Authorization": f"Bearer {API_KEY}"}
    )
    assert response.status_code == 200


def _stats(endpoint: str) -> dict:
    return httpx.get(f"{endpoint}/_test/stats", headers={"Authorization": f"Bearer {API_KEY}"}).json()


async def _render_and_follow(studio, brief_uuid: str, backend: str) -> dict[str, list[dict]]:
    """Render every scene of the brief on one backend; the socket's updates, per job."""
    stack = studio["stack"]
    headers = {"Authorization": f"Token {studio['token']}"}
    url = stack.web_url.replace("http://", "ws://") + f"/ws/briefs/{brief_uuid}/"
    per_job: dict[str, list[dict]] = defaultdict(list)
    async with websockets.connect(url, additional_headers=headers, origin=stack.web_url) as socket:
        assert json.loads(await asyncio.wait_for(socket.recv(), 10))["type"] == "snapshot"
        async with httpx.AsyncClient(base_url=stack.web_url, headers=headers) as api:
            response = await api.post(f"/api/v1/briefs/{brief_uuid}/renders/", json={"backend": backend})
            assert response.status_code == 202, response.text
            jobs = {job["uuid"] for job in response.json()["jobs"]}
        ended: set[str] = set()
        while ended != jobs:
            message = json.loads(await asyncio.wait_for(socket.recv(), 60))
            if message["type"] == "job.preview":
                continue  # a picture of a render in progress, outside the numbered stream
            data = message["data"]
            if data.get("job") in jobs:
                per_job[data["job"]].append(data)
                if data["state"] in ("succeeded", "failed", "cancelled", "lost"):
                    ended.add(data["job"])
    return per_job


def _states(updates: list[dict]) -> list[str]:
    states = [u["state"] for u in updates]
    return [s for i, s in enumerate(states) if i == 0 or states[i - 1] != s]


def _artifacts(api: httpx.Client, per_job: dict[str, list[dict]]) -> list[dict]:
    found = []
    for job_uuid in per_job:
        job = api.get(f"/api/v1/jobs/{job_uuid}/").json()
        [artifact] = job["artifacts"]
        image = Image.open(io.BytesIO(api.get(artifact["download_url"]).content))
        label = json.loads(image.text["storyboard"])
        found.append(
            {
                "scene": job["scene"],
                "content_type": artifact["content_type"],
                "size": (artifact["width"], artifact["height"]),
                "label": label["label"],
                # The demo's scenes name no seed: each render draws its own, on either backend.
                "seed_drawn": isinstance(label["seed"], int),
            }
        )
    return sorted(found, key=lambda a: a["scene"])


def test_the_demo_brief_renders_the_same_on_runpod_and_on_the_preview_server(runpod):
    demo = demo_seed()
    # What the endpoint costs per second of execution, as staff set it in the admin.
    Backend.objects.filter(pk=runpod["backend"].pk).update(price_per_second=PRICE)
    on_runpod = asyncio.run(_render_and_follow(runpod, demo.brief_uuid, RUNPOD))
    on_preview = asyncio.run(_render_and_follow(runpod, demo.brief_uuid, "Storyboard preview"))
    assert len(on_runpod) == len(on_preview) == 3
    order = ["queued", "dispatched", "running", "fetching", "succeeded"]
    for updates in [*on_runpod.values(), *on_preview.values()]:
        assert _states(updates) == order, updates
        assert updates[-1]["progress"] == 100
        assert updates[-1]["artifact_url"].startswith("/artifacts/")
    with httpx.Client(
        base_url=runpod["stack"].web_url, headers={"Authorization": f"Token {runpod['token']}"}
    ) as api:
        assert _artifacts(api, on_runpod) == _artifacts(api, on_preview)
    for job_uuid in on_runpod:
        attempt = Attempt.objects.get(job__uuid=job_uuid)
        assert attempt.backend.name == RUNPOD
        assert attempt.remote_handle.endswith("-u1")  # RunPod's job id, recorded before waiting
        record = attempt.telemetry  # the contract record, with RunPod's own timings
        assert record["backend_kind"] == "runpod"
        assert record["runpod_execution_time_ms"] > 0 and record["runpod_delay_time_ms"] >= 0
        assert record["gpu_seconds"] == record["runpod_execution_time_ms"] / 1000
        assert record["price_per_gpu_second_usd"] == float(PRICE)
        assert record["estimated_cost_usd"] == pytest.approx(record["gpu_seconds"] * float(PRICE))
        assert record["gpu_probe_before"] is None  # no probe reaches a RunPod worker's GPU, and it says so
        assert any("no probe reaches the GPU of runpod backend" in note for note in record["fallback_notes"])
        assert all(result.passed for result in validate_attempt(record)), record
        events = list(JobEvent.objects.filter(job__uuid=job_uuid).values_list("to_state", flat=True))
        assert events == order


def _submit(runpod, prompt: str) -> str:
    with httpx.Client(
        base_url=runpod["stack"].web_url, headers={"Authorization": f"Token {runpod['token']}"}
    ) as api:
        brief = api.post(
            "/api/v1/briefs/", json={"title": "T", "scenes": [{"title": "S", "prompt": prompt}]}
        ).json()
        job = api.post(f"/api/v1/scenes/{brief['scenes'][0]['uuid']}/renders/", json={"backend": RUNPOD})
        assert job.status_code == 202, job.text
        return job.json()["uuid"]


def _wait_for_end(runpod, job_uuid: str, timeout: float = 60) -> dict:
    with httpx.Client(
        base_url=runpod["stack"].web_url, headers={"Authorization": f"Token {runpod['token']}"}
    ) as api:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = api.get(f"/api/v1/jobs/{job_uuid}/").json()
            if job["state"] in ("succeeded", "failed", "cancelled", "lost"):
                return job
            time.sleep(0.2)
    raise AssertionError(f"job {job_uuid} still {job['state']}\n{runpod['stack'].log('watcher')[-3000:]}")


def test_a_worker_error_fails_the_job_with_the_workers_message(runpod):
    _knobs(runpod["endpoint"], next_jobs=["fail"])
    job = _wait_for_end(runpod, _submit(runpod, "a storm"))
    assert job["state"] == "failed"
    assert job["error_code"] == "execution_failed"
    assert "told to fail" in job["error_message"]


def test_malformed_output_fails_as_output_invalid_and_keeps_the_answer(runpod):
    _knobs(runpod["endpoint"], next_jobs=["malformed:not_image"])
    job = _wait_for_end(runpod, _submit(runpod, "a gull"))
    assert job["state"] == "failed" and job["error_code"] == "output_invalid"
    attempt = Attempt.objects.get(job__uuid=job["uuid"])
    assert attempt.error_detail["response"]["status"] == "COMPLETED"


def test_a_rate_limited_submit_is_retried_on_the_same_backend(runpod):
    # More 429s than one call waits out (5 s budget): the job waits Retry-After and tries again.
    _knobs(runpod["endpoint"], rate_limit_next=3, retry_after=2)
    job = _wait_for_end(runpod, _submit(runpod, "a buoy"))
    assert job["state"] == "succeeded", job
    attempts = list(Attempt.objects.filter(job__uuid=job["uuid"]).order_by("number"))
    assert [a.error_code for a in attempts] == ["rate_limited", ""]
    assert {a.backend.name for a in attempts} == {RUNPOD}


def test_the_api_key_is_in_no_log_response_or_error_message(runpod):
    _knobs(runpod["endpoint"], next_jobs=["fail"])
    failed = _wait_for_end(runpod, _submit(runpod, "a key"))
    with httpx.Client(
        base_url=runpod["stack"].web_url, headers={"Authorization": f"Token {runpod['token']}"}
    ) as api:
        texts = [
            json.dumps(failed),
            api.get("/api/v1/backends/").text,
            api.get(f"/api/v1/jobs/{failed['uuid']}/").text,
            api.get("/health/").text,
        ]
    texts += [
        runpod["stack"].log(name) for name in ("watcher", "worker", "asgi", "preview", "runpod-endpoint")
    ]
    texts += [json.dumps(a.error_detail) + a.error_message for a in Attempt.objects.all()]
    assert "runpod-endpoint" in [p.stem for p in runpod["stack"].log_dir.glob("*.log")]
    for text in texts:
        assert API_KEY not in text


def test_a_watcher_restart_mid_job_reattaches_by_job_id_without_submitting_again(runpod):
    # Last in the module: the stack's own watcher is killed, and its replacement stops with the test.
    stack = runpod["stack"]
    before = _stats(runpod["endpoint"])["requests"].get("POST run", 0)
    _knobs(runpod["endpoint"], next_jobs=["slow:3"])
    job_uuid = _submit(runpod, "a lantern")
    deadline = time.monotonic() + 20
    while not Attempt.objects.filter(job__uuid=job_uuid, remote_handle__endswith="-u1").exists():
        assert time.monotonic() < deadline, "the job was never submitted"
        time.sleep(0.05)
    watcher = stack.processes["watcher"]
    os.killpg(watcher.pid, signal.SIGKILL)  # no chance to tidy up
    watcher.wait()
    argv = [sys.executable, "manage.py", "render_watcher"]
    with running("watcher-restarted", argv, stack.env, stack.log_dir):
        job = _wait_for_end(runpod, job_uuid)
    assert job["state"] == "succeeded", job
    assert _stats(runpod["endpoint"])["requests"]["POST run"] == before + 1
    assert Attempt.objects.filter(job__uuid=job_uuid).count() == 1

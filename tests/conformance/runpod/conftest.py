"""The local RunPod endpoint and a preview server (its ComfyUI) on loopback ports, in threads,
plus an S3 API server (moto) for the S3-output cases."""

from __future__ import annotations

import dataclasses
import json
import pathlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from generation.bundled_backends.preview_server import PreviewSettings
from generation.bundled_backends.preview_server import create_app as create_preview_app
from generation.bundled_backends.preview_server.settings import template_catalogue
from generation.bundled_backends.runpod_endpoint import EndpointSettings, S3Target
from generation.bundled_backends.runpod_endpoint import create_app as create_endpoint_app
from tests.app_thread import AppThread
from tests.stack import free_port

DATA_DIR = pathlib.Path(__file__).resolve().parents[2] / "data" / "runpod"
WORKFLOWS_DIR = pathlib.Path(__file__).resolve().parents[3] / "workflows"
API_KEY = "rp-test-key-7c1d9e0b5a3f46e2"
ENDPOINT_ID = "local-test"


def example(name: str) -> dict[str, Any]:
    return json.loads((DATA_DIR / name).read_text(encoding="utf-8"))


def storyboard_workflow(prompt: str = "a lighthouse in a storm", seed: int = 7) -> dict[str, Any]:
    graph = json.loads((WORKFLOWS_DIR / "storyboard-txt2img.json").read_text())["workflow"]
    graph["6"]["inputs"]["text"] = prompt
    graph["3"]["inputs"]["seed"] = seed
    return graph


@dataclasses.dataclass
class Endpoint:
    api_base: str  # what a Backend's base_url holds: .../v2
    endpoint_id: str
    api_key: str
    http: httpx.Client  # authorised, based at .../v2/{endpoint_id}
    root: httpx.Client  # authorised, based at the server root (test knobs)

    def knobs(self, **body: Any) -> None:
        assert self.root.post("/_test/knobs", json=body).status_code == 200

    def stats(self) -> dict[str, Any]:
        return self.root.get("/_test/stats").json()

    def wait_for(self, job_id: str, statuses: set[str], timeout: float = 15) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            body = self.http.get(f"/status/{job_id}").json()
            if body["status"] in statuses:
                return body
            assert time.monotonic() < deadline, body
            time.sleep(0.05)


@pytest.fixture(scope="module")
def comfyui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The storyboard preview server as the worker's ComfyUI."""
    settings = PreviewSettings(
        data_dir=tmp_path_factory.mktemp("comfyui"), render_seconds=0.05, **template_catalogue()
    )
    server = AppThread(lambda: create_preview_app(settings)).start()
    yield f"http://127.0.0.1:{server.port}"
    server.stop()


@pytest.fixture(scope="module")
def s3_server() -> Iterator[str]:
    """A real S3 API (moto's server mode) on loopback, with the month-year bucket worker-comfyui uses."""
    import boto3
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    boto3.client(
        "s3",
        endpoint_url=url,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="us-east-1",
    ).create_bucket(Bucket=time.strftime("%m-%y"))
    yield url
    server.stop()


@pytest.fixture
def start_endpoint(comfyui: str) -> Iterator[Callable[..., Endpoint]]:
    started: list[tuple[AppThread, Endpoint]] = []

    def start(**overrides: Any) -> Endpoint:
        options: dict[str, Any] = {
            "comfyui_url": comfyui,
            "api_key": API_KEY,
            "endpoint_id": ENDPOINT_ID,
            "workers": 2,
            "test_knobs": True,
        }
        options.update(overrides)
        settings = EndpointSettings(**options)
        server = AppThread(lambda: create_endpoint_app(settings)).start()
        base = f"http://127.0.0.1:{server.port}"
        headers = {"Authorization": f"Bearer {settings.api_key}"}
        endpoint = Endpoint(
            api_base=f"{base}/v2",
            endpoint_id=settings.endpoint_id,
            api_key=settings.api_key,
            http=httpx.Client(base_url=f"{base}/v2/{settings.endpoint_id}", headers=headers, timeout=10),
            root=httpx.Client(base_url=base, headers=headers, timeout=10),
        )
        started.append((server, endpoint))
        return endpoint

    yield start
    for server, endpoint in started:
        endpoint.http.close()
        endpoint.root.close()
        server.stop()


def s3_target(url: str) -> S3Target:
    return S3Target(endpoint_url=url, access_key_id="test", secret_access_key="test")

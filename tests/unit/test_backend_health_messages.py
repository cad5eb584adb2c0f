"""A backend's answer never reaches a page verbatim: health messages are a status and a short reason
("ComfyUI answered 500 to GET /system_stats"), and error messages carry no response body. What a
backend sent is kept, bounded, only in an error's detail for staff."""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Iterator

import pytest
from aiohttp import web

from generation import services
from generation.models import Backend, BackendKind, HealthState
from generation.providers.base import ErrorCode, ProviderError, RenderRequest
from generation.providers.comfyui import ComfyUIProvider, error_from_rejection
from generation.providers.runpod import parse_images
from tests.app_thread import AppThread

HOSTILE = "<script>alert(1)</script>SECRETBODY"


class Hostile:
    """A ComfyUI and a RunPod endpoint on loopback whose answers carry HOSTILE in some way."""

    def __init__(self) -> None:
        self.mode = "500"

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/system_stats", self.system_stats)
        app.router.add_get("/queue", self.queue)
        app.router.add_post("/prompt", self.prompt)
        app.router.add_get("/v2/ep/health", self.runpod_health)
        return app

    async def system_stats(self, request: web.Request) -> web.Response:
        if self.mode == "version":
            return web.json_response({"system": {"comfyui_version": HOSTILE}, "devices": []})
        return web.Response(status=500, text=HOSTILE, content_type="text/html")

    async def queue(self, request: web.Request) -> web.Response:
        return web.json_response({"queue_running": [], "queue_pending": []})

    async def prompt(self, request: web.Request) -> web.Response:
        if self.mode == "not json":
            return web.Response(status=400, text=HOSTILE, content_type="text/html")
        return web.json_response({"error": HOSTILE, "node_errors": []}, status=400)

    async def runpod_health(self, request: web.Request) -> web.Response:
        if self.mode == "400":
            return web.json_response({"error": HOSTILE}, status=400)
        if self.mode == "workers":
            return web.json_response({"jobs": {"inQueue": 0}, "workers": {HOSTILE: 1, "idle": 2}})
        return web.Response(status=int(self.mode), text=HOSTILE, content_type="text/html")


@pytest.fixture
def hostile() -> Iterator[tuple[Hostile, str]]:
    server = Hostile()
    thread = AppThread(server.app).start()
    yield server, f"http://127.0.0.1:{thread.port}"
    thread.stop()


@pytest.fixture
def garbage_url() -> Iterator[str]:
    """A server that answers every connection with bytes that are not HTTP."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(65536)
                conn.sendall(f"{HOSTILE}\r\n\r\n".encode())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join(5)
    listener.close()


def _pages(client, api_client, backend: Backend) -> list[str]:
    return [
        client.get(f"/admin/generation/backend/{backend.pk}/change/").content.decode(),
        client.get("/admin/generation/backend/").content.decode(),
        api_client.get("/api/v1/backends/").content.decode(),
        client.get("/health/").content.decode(),
    ]


@pytest.fixture
def ops(client, django_user_model):
    admin = django_user_model.objects.create_superuser("ops", password="a-long-password-9")
    client.force_login(admin)
    return client


def _clean(*texts: str) -> None:
    for text in texts:
        assert "SECRETBODY" not in text
        assert "<script>" not in text


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("mode", "reachable", "said"),
    [("500", False, "ComfyUI answered 500 to GET /system_stats"), ("version", True, "ComfyUI ?")],
)
def test_a_comfyui_answer_never_becomes_the_health_message(
    hostile, ops, api_client, mode: str, reachable: bool, said: str
) -> None:
    server, url = hostile
    server.mode = mode
    backend = Backend.objects.create(name="gpu", base_url=url)
    result = services.backend_check_health(backend=backend)
    backend.refresh_from_db()
    assert result.reachable is reachable
    assert backend.health_state == (HealthState.HEALTHY if reachable else HealthState.DOWN)
    assert backend.health_message == said
    _clean(result.message, *_pages(ops, api_client, backend))


@pytest.mark.django_db
def test_a_server_that_does_not_speak_http_is_not_quoted(garbage_url, ops, api_client) -> None:
    backend = Backend.objects.create(name="gpu", base_url=garbage_url)
    result = services.backend_check_health(backend=backend)
    backend.refresh_from_db()
    assert not result.reachable and "cannot be reached: RemoteProtocolError" in backend.health_message
    _clean(result.message, *_pages(ops, api_client, backend))


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("mode", "said"),
    [
        ("500", "RunPod endpoint ep answered HTTP 500 to GET /health"),
        ("503", "RunPod endpoint ep answered HTTP 503 to GET /health"),
        ("400", "RunPod endpoint ep refused GET /health (HTTP 400)"),
        ("workers", "RunPod endpoint ep: workers idle 2"),
    ],
)
def test_a_runpod_answer_never_becomes_the_health_message(
    hostile, ops, api_client, mode: str, said: str
) -> None:
    server, url = hostile
    server.mode = mode
    backend = Backend.objects.create(
        name="rp", kind=BackendKind.RUNPOD, base_url=f"{url}/v2", endpoint_id="ep"
    )
    services.backend_set_api_key(backend=backend, api_key="rp-key")
    backend.refresh_from_db()
    result = services.backend_check_health(backend=backend)
    backend.refresh_from_db()
    assert backend.health_message == said
    _clean(result.message, *_pages(ops, api_client, backend))


@pytest.mark.parametrize("mode", ["not json", "json"])
def test_a_rejected_workflow_names_no_body_but_keeps_it_bounded_for_staff(hostile, mode: str) -> None:
    server, url = hostile
    server.mode = mode
    request = RenderRequest(attempt_id=str(uuid.uuid4()), workflow={"1": {"class_type": "X", "inputs": {}}})
    with ComfyUIProvider(url) as provider, pytest.raises(ProviderError) as rejected:
        provider.submit(request)
    assert rejected.value.code == ErrorCode.WORKFLOW_REJECTED
    _clean(rejected.value.message)
    assert "SECRETBODY" in str(rejected.value.detail)


def test_node_errors_are_kept_short_and_on_one_line() -> None:
    error = error_from_rejection(
        {
            "error": {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed"},
            "node_errors": {"4": {"class_type": "X\nY", "errors": [{"message": "bad\r\n" + "z" * 5000}]}},
        }
    )
    assert "\n" not in error.message and "\r" not in error.message
    assert len(error.message) < 400


def test_runpods_output_text_stays_out_of_the_message() -> None:
    for output in (
        {"status": "error", "message": HOSTILE},
        {"images": [{"filename": "a.png", "type": "s3_url", "data": f"file:///{HOSTILE}"}]},
    ):
        with pytest.raises(ProviderError) as invalid:
            parse_images(output)
        assert invalid.value.code == ErrorCode.OUTPUT_INVALID
        _clean(invalid.value.message)
        assert "SECRETBODY" in str(invalid.value.detail)

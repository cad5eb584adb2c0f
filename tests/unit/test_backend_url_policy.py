"""A backend's URL never reaches a link-local or cloud-metadata address, however it is spelled or
resolved: refused when saved (admin form, model validation, services) with a message that says
what is wrong, and again at connect, on the address the host resolves to, by the providers'
HTTP clients, the ComfyUI socket, the watcher's socket and the GPU probe."""

from __future__ import annotations

import asyncio
import html
import logging
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from aiohttp import WSMsgType, web
from django.core.exceptions import ValidationError

from generation import services
from generation.models import Backend, BackendKind, HealthState
from generation.providers.base import ErrorCode, ProviderError, RenderRequest
from generation.providers.comfyui import ComfyUIProvider
from generation.providers.comfyui_follow import SocketFollower
from generation.providers.runpod import RunPodProvider
from generation.providers.url_policy import (
    COMFYUI,
    DOWNLOAD,
    RUNPOD,
    GuardedTransport,
    UrlRefused,
    check_url,
    checked_addresses,
)
from telemetry.probes import ProbeError, read_system_stats
from tests.app_thread import AppThread

LINK_LOCAL = "link-local address"
METADATA = "cloud metadata"

# Every spelling of the metadata address, and its neighbours, that a resolver or URL parser accepts.
HOSTILE = [
    ("http://169.254.169.254/latest/meta-data/", LINK_LOCAL),
    ("http://2852039166/", "(the address 169.254.169.254)"),
    ("http://0xa9fea9fe/", "(the address 169.254.169.254)"),
    ("http://0xA9.0xFE.0xA9.0xFE/", "(the address 169.254.169.254)"),
    ("http://0251.0376.0251.0376/", "(the address 169.254.169.254)"),
    ("http://169.254.43518/", "(the address 169.254.169.254)"),
    ("http://169.16689662/", "(the address 169.254.169.254)"),
    ("http://169.254.169.254./", LINK_LOCAL),
    # Full-width digits and dots, which IDNA folds to 169.254.169.254.
    (
        "http://\uff11\uff16\uff19\uff0e\uff12\uff15\uff14\uff0e\uff11\uff16\uff19\uff0e\uff12\uff15\uff14/",
        LINK_LOCAL,
    ),
    ("http://[::ffff:169.254.169.254]/", "(the address 169.254.169.254)"),
    ("http://[::ffff:a9fe:a9fe]:8188/", "(the address 169.254.169.254)"),
    ("http://[::169.254.169.254]/", "(the address 169.254.169.254)"),
    ("http://[64:ff9b::169.254.169.254]/", "(the address 169.254.169.254)"),
    ("http://[2002:a9fe:a9fe::1]/", "(the address 169.254.169.254)"),
    ("http://169.254.10.20:8188/", LINK_LOCAL),
    ("http://[fe80::1]:8188/", LINK_LOCAL),
    ("http://[fe80::1%25eth0]:8188/", LINK_LOCAL),
    ("http://[fd00:ec2::254]/", METADATA),
    ("http://100.100.100.200/latest/meta-data/", METADATA),
    ("http://metadata.google.internal/computeMetadata/v1/", METADATA),
    ("http://METADATA.Google.Internal./computeMetadata/v1/", METADATA),
    ("http://metadata.goog/", METADATA),
    ("http://0.0.0.0:8188/", "not an address a server answers on"),
    ("http://999999999999/", "not a valid IPv4 address"),
    ("http://ops:hunter2@gpu-01:8188/", "user name or password"),
    ("http://gpu-01:8188@169.254.169.254/", "user name or password"),
    ("http://gpu-01\\@169.254.169.254/", "backslashes"),
    ("file:///etc/passwd", "not file"),
    ("ftp://gpu-01/", "not ftp"),
    ("gopher://gpu-01:70/_GET", "not gopher"),
    ("javascript:alert(1)", "not javascript"),
    ("ws://gpu-01:8188/ws", "not ws"),
]

FAKE_DNS = {
    "metadata.test": "169.254.169.254",
    "mapped.test": "::ffff:169.254.169.254",
    "aws6.test": "fd00:ec2::254",
    "private.test": "10.1.2.3",
    "gpu.test": "127.0.0.1",
}


@pytest.fixture
def dns(monkeypatch) -> list[str]:
    """Names in FAKE_DNS resolve as listed; returns every address a TCP connection was opened to."""
    real_getaddrinfo, real_connect = socket.getaddrinfo, socket.create_connection

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name in FAKE_DNS:
            ip = FAKE_DNS[name]
            if ":" in ip:
                return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", (ip, port, 0, 0))]
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port))]
        return real_getaddrinfo(host, port, *args, **kwargs)

    opened: list[str] = []

    def create_connection(address: Any, *args: Any, **kwargs: Any) -> socket.socket:
        opened.append(address[0])
        return real_connect(address, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket, "create_connection", create_connection)
    return opened


@pytest.fixture
def ops(client, django_user_model):
    admin = django_user_model.objects.create_superuser("ops", password="a-long-password-9")
    client.force_login(admin)
    return client


class FakeComfyUI:
    """Just enough of ComfyUI on loopback: /system_stats, /queue, /prompt and the socket."""

    def __init__(self) -> None:
        self.hosts: list[str] = []
        self.sockets = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/system_stats", self.system_stats)
        app.router.add_get("/queue", self.queue)
        app.router.add_post("/prompt", self.prompt)
        app.router.add_get("/ws", self.ws)
        return app

    async def system_stats(self, request: web.Request) -> web.Response:
        self.hosts.append(request.host)
        return web.json_response({"system": {"comfyui_version": "0.3.40"}, "devices": []})

    async def queue(self, request: web.Request) -> web.Response:
        return web.json_response({"queue_running": [], "queue_pending": []})

    async def prompt(self, request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response({"prompt_id": body["prompt_id"], "number": 1, "node_errors": {}})

    async def ws(self, request: web.Request) -> web.WebSocketResponse:
        self.hosts.append(request.host)
        self.sockets += 1
        socket_ = web.WebSocketResponse()
        await socket_.prepare(request)
        async for message in socket_:
            if message.type == WSMsgType.CLOSE:
                break
        return socket_


@pytest.fixture
def comfyui() -> Iterator[tuple[FakeComfyUI, int]]:
    fake = FakeComfyUI()
    server = AppThread(fake.app).start()
    yield fake, server.port
    server.stop()


def _request() -> RenderRequest:
    return RenderRequest(attempt_id=str(uuid.uuid4()), workflow={"1": {"class_type": "X", "inputs": {}}})


# -- the rule itself -----------------------------------------------------------------
@pytest.mark.parametrize(("url", "why"), HOSTILE)
def test_a_hostile_url_is_refused_saying_why(url: str, why: str) -> None:
    for policy in (COMFYUI, RUNPOD, DOWNLOAD):
        with pytest.raises(UrlRefused) as refused:
            check_url(url, policy)
        assert refused.value.code == ErrorCode.CONFIG_INVALID
        assert why in refused.value.message, refused.value.message


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8188",
        "http://127.1:8188/",
        "http://localhost:8188",
        "http://[::1]:8188",
        "http://gpu-01:8188",
        "http://10.0.0.5:8188",
        "http://192.168.1.20:8188",
        "https://comfy.example.com/",
        "http://[fd12:3456::7]:8188",
    ],
)
def test_comfyui_backends_may_live_on_private_and_loopback_addresses(url: str) -> None:
    assert check_url(url, COMFYUI).host


def test_runpod_backends_use_https_on_the_public_internet_or_the_local_endpoint_on_loopback() -> None:
    for allowed in (
        "https://api.runpod.ai/v2",
        "http://127.0.0.1:8191/v2",
        "http://localhost:8191/v2",
        "http://[::1]:8191/v2",
    ):
        check_url(allowed, RUNPOD)
    with pytest.raises(UrlRefused, match="must use https"):
        check_url("http://api.runpod.ai/v2", RUNPOD)
    with pytest.raises(UrlRefused, match="must use https"):
        check_url("http://localhost.example.com/v2", RUNPOD)
    for private in ("https://10.0.0.5/v2", "https://192.168.1.1/v2", "https://100.64.0.9/v2"):
        with pytest.raises(UrlRefused, match="private or reserved address"):
            check_url(private, RUNPOD)


def test_a_name_is_refused_when_any_address_it_resolves_to_is_forbidden() -> None:
    def resolver(host: str, port: int, **kwargs: Any) -> list[tuple[Any, ...]]:
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", port)),
        ]

    with pytest.raises(UrlRefused, match=r"gpu\.example resolves to 169\.254\.169\.254"):
        checked_addresses("gpu.example", 8188, COMFYUI, resolver=resolver)


# -- at save ---------------------------------------------------------------------------
def _add(ops, **fields: Any) -> str:
    data = {"name": "Hostile", "kind": BackendKind.COMFYUI, "capacity": 1, "queue_depth": 1, **fields}
    response = ops.post("/admin/generation/backend/add/", data)
    assert response.status_code == 200, "the form was accepted"
    assert not Backend.objects.filter(name="Hostile").exists()
    return html.unescape(response.content.decode())


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://169.254.169.254/latest/meta-data/", LINK_LOCAL),
        ("http://2852039166/", "2852039166 (the address 169.254.169.254) is a link-local address"),
        ("http://0xa9fea9fe/", "0xa9fea9fe (the address 169.254.169.254) is a link-local address"),
        ("http://0251.0376.0251.0376/", "(the address 169.254.169.254) is a link-local address"),
        ("http://[::ffff:169.254.169.254]/", "(the address 169.254.169.254) is a link-local address"),
        ("http://metadata.google.internal/", "the name of a cloud metadata service"),
        ("http://ops:hunter2@gpu-01:8188/", "user name or password"),
        ("file:///etc/passwd", "only http and https URLs are allowed, not file"),
        ("gopher://gpu-01:70/", "only http and https URLs are allowed, not gopher"),
        ("javascript:alert(1)", "only http and https URLs are allowed, not javascript"),
    ],
)
def test_the_admin_form_refuses_a_hostile_url_and_says_why(ops, url: str, why: str) -> None:
    page = _add(ops, base_url=url)
    assert "This URL is refused" in page and why in page


@pytest.mark.django_db
def test_the_admin_form_holds_runpod_backends_to_https_and_public_addresses(ops) -> None:
    runpod = {"kind": BackendKind.RUNPOD, "endpoint_id": "ep", "api_key": "rp-key"}
    page = _add(ops, base_url="http://api.runpod.ai/v2", **runpod)
    assert "a RunPod backend must use https" in page
    page = _add(ops, base_url="https://10.0.0.8/v2", **runpod)
    assert "10.0.0.8 is a private or reserved address" in page


@pytest.mark.django_db
def test_the_services_refuse_a_hostile_url() -> None:
    with pytest.raises(ValidationError) as refused:
        services.backend_register_preview(url="http://0xa9fea9fe:8188")
    assert (
        "(the address 169.254.169.254) is a link-local address" in refused.value.message_dict["base_url"][0]
    )
    with pytest.raises(ValidationError) as refused:
        services.backend_register_local_runpod(
            url="http://api.runpod.ai/v2", endpoint_id="ep", api_key_env="RUNPOD_LOCAL_API_KEY"
        )
    assert "must use https" in refused.value.message_dict["base_url"][0]
    assert not Backend.objects.exists()
    with pytest.raises(ValidationError, match="link-local"):
        Backend(name="x", base_url="http://[fe80::1]:8188").full_clean()


# -- at connect ------------------------------------------------------------------------
@pytest.mark.django_db
@pytest.mark.parametrize(
    ("host", "ip"), [("metadata.test", "169.254.169.254"), ("mapped.test", "169.254.169.254")]
)
def test_a_comfyui_name_resolving_to_the_metadata_address_is_refused_before_connecting(
    dns: list[str], host: str, ip: str
) -> None:
    # Saved before the rule, or re-pointed in DNS since: the row itself looks harmless.
    backend = Backend.objects.create(name="gpu", base_url=f"http://{host}:8188")
    health = services.backend_check_health(backend=backend)
    backend.refresh_from_db()
    assert not health.reachable and backend.health_state == HealthState.DOWN
    assert f"{host} resolves to" in backend.health_message and "link-local" in backend.health_message
    with ComfyUIProvider(backend.base_url) as provider:
        with pytest.raises(ProviderError) as over_http:
            provider.object_info()
        with pytest.raises(ProviderError) as on_submit:
            provider.submit(_request())
    # (The render watcher's socket to it is refused too: test_the_watchers_socket_is_refused_before_connecting.)
    assert over_http.value.code == on_submit.value.code == ErrorCode.CONFIG_INVALID
    assert ip not in dns and dns == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("host", "why"),
    [("metadata.test", LINK_LOCAL), ("aws6.test", METADATA), ("private.test", "private or reserved")],
)
def test_a_runpod_name_resolving_to_a_forbidden_address_never_gets_the_key(
    dns: list[str], host: str, why: str
) -> None:
    backend = Backend.objects.create(
        name="runpod", kind=BackendKind.RUNPOD, base_url=f"https://{host}/v2", endpoint_id="ep"
    )
    services.backend_set_api_key(backend=backend, api_key="rp-key-never-sent")
    backend.refresh_from_db()
    health = services.backend_check_health(backend=backend)
    assert not health.reachable and f"{host} resolves to" in health.message and why in health.message
    assert dns == []


@pytest.mark.django_db
def test_an_allowed_name_is_connected_to_at_the_address_it_was_checked_at(dns: list[str], comfyui) -> None:
    fake, port = comfyui
    backend = Backend.objects.create(name="gpu", base_url=f"http://gpu.test:{port}")
    health = services.backend_check_health(backend=backend)
    assert health.reachable, health.message
    with ComfyUIProvider(backend.base_url) as provider:
        provider.submit(_request())
    asyncio.run(_watchers_socket_comes_up(backend.base_url))
    assert fake.sockets == 1
    assert set(dns) == {"127.0.0.1"}
    assert set(fake.hosts) == {f"gpu.test:{port}"}  # the name still goes in the Host header


async def _nothing(*args: Any) -> None:
    pass


async def _watchers_socket_comes_up(base_url: str) -> None:
    """The render watcher's socket loop connects to the backend once, then stops."""
    up = asyncio.Event()

    async def on_socket(connected: bool) -> None:
        if connected:
            up.set()

    follower = SocketFollower(
        base_url,
        "storycore-test",
        on_event=_nothing,
        on_socket=on_socket,
        on_check=_nothing,
        poll_interval=1.0,
    )
    following = asyncio.create_task(follower.run())
    try:
        await asyncio.wait_for(up.wait(), 5)
    finally:
        following.cancel()
        await asyncio.gather(following, return_exceptions=True)


def test_a_redirect_to_the_metadata_address_is_not_followed(dns: list[str]) -> None:
    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound("http://metadata.test/latest/meta-data/iam/")

    def make() -> web.Application:
        app = web.Application()
        app.router.add_get("/output.png", redirect)
        return app

    server = AppThread(make).start()
    try:
        # The client RunPod's S3 links are fetched with (it follows redirects).
        with httpx.Client(transport=GuardedTransport(DOWNLOAD), follow_redirects=True) as client:
            with pytest.raises(UrlRefused, match=r"metadata\.test resolves to 169\.254\.169\.254"):
                client.get(f"http://127.0.0.1:{server.port}/output.png")
    finally:
        server.stop()
    assert dns == ["127.0.0.1"]


def test_the_runpod_provider_refuses_plain_http_to_the_cloud() -> None:
    with pytest.raises(UrlRefused, match="must use https"):
        RunPodProvider("http://api.runpod.ai/v2", "ep", "rp-key")


def test_the_gpu_probe_refuses_a_metadata_address(dns: list[str]) -> None:
    with pytest.raises(ProbeError, match=r"refused: metadata\.test resolves to 169\.254\.169\.254"):
        read_system_stats(base_url="http://metadata.test:8188", timeout_s=1)
    assert dns == []


def test_the_watchers_socket_is_refused_before_connecting(dns: list[str], caplog) -> None:
    caplog.set_level(logging.WARNING, logger="generation.providers.comfyui_follow")
    # The render watcher's socket loop (BackendWatch adapts it to the database).
    follower = SocketFollower(
        "http://metadata.test:8188",
        "storycore-test",
        on_event=_nothing,
        on_socket=_nothing,
        on_check=_nothing,
        poll_interval=1.0,
    )

    async def follow_briefly() -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(follower.run(), 0.3)

    asyncio.run(follow_briefly())
    assert "socket refused: metadata.test resolves to 169.254.169.254" in caplog.text
    assert dns == [] and not follower.connected

"""An output is stored only when whole: a file the server is still writing is fetched again until
it decodes completely (every frame a video workflow asked for), and the wait is recorded; one that
never becomes whole ends the attempt as output_invalid after the post-execution timeout.
The outputs come from a real HTTP server on loopback serving ComfyUI's /view."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image

from generation import services
from generation.attempts import _store_complete, attempt_create
from generation.models import Artifact
from generation.providers.base import ErrorCode, ProviderError, RemoteOutput
from generation.providers.comfyui import ComfyUIProvider

pytestmark = pytest.mark.django_db


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), "teal").save(buffer, format="PNG")
    return buffer.getvalue()


def _webp(frames: int) -> bytes:
    buffer = io.BytesIO()
    images = [Image.new("RGB", (32, 32), (i * 20, 0, 0)) for i in range(frames)]
    images[0].save(
        buffer, format="WEBP", save_all=True, append_images=images[1:], duration=100, lossless=True
    )
    return buffer.getvalue()


class _Growing:
    """What /view serves: the partial bodies first, then the whole file."""

    def __init__(self, partial: list[bytes], whole: bytes | None) -> None:
        self.bodies = list(partial)
        self.whole = whole
        self.requests = 0

    def next_body(self) -> bytes:
        self.requests += 1
        if self.bodies:
            return self.bodies.pop(0)
        assert self.whole is not None
        return self.whole


@pytest.fixture
def view_server() -> Iterator[tuple[str, dict[str, _Growing]]]:
    files: dict[str, _Growing] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            name = self.path.split("filename=", 1)[-1].split("&", 1)[0]
            body = files[name].next_body()
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", files
    server.shutdown()


@pytest.fixture
def attempt(staff_user, template, backend, brief):
    job = services.render_job_submit(scene=brief.scenes.first(), user=staff_user)
    return job, attempt_create(job, backend)


def _output(name: str, kind: str = "image") -> RemoteOutput:
    return RemoteOutput(node_id="9", filename=name, subfolder="", folder_type="output", kind=kind)


def test_a_file_still_being_written_is_fetched_again_until_whole(view_server, attempt):
    url, files = view_server
    whole = _png()
    files["frame.png"] = _Growing([whole[: len(whole) // 2], whole[: len(whole) - 10]], whole)
    job, try_ = attempt
    with ComfyUIProvider(url) as provider:
        waited = _store_complete(
            provider, job, try_, _output("frame.png"), 0, frames=None, deadline=time.monotonic() + 10
        )
    assert files["frame.png"].requests == 3
    assert waited > 0.2  # two pauses of 0.25 s and more, minus nothing
    artifact = Artifact.objects.get(attempt=try_)
    assert (artifact.width, artifact.height, artifact.size_bytes) == (64, 48, len(whole))


def test_a_whole_file_the_first_time_records_no_wait(view_server, attempt):
    url, files = view_server
    files["frame.png"] = _Growing([], _png())
    job, try_ = attempt
    with ComfyUIProvider(url) as provider:
        waited = _store_complete(
            provider, job, try_, _output("frame.png"), 0, frames=None, deadline=time.monotonic() + 10
        )
    assert (waited, files["frame.png"].requests) == (0.0, 1)


def test_a_clip_with_fewer_frames_than_asked_for_is_waited_for(view_server, attempt):
    url, files = view_server
    files["clip.webp"] = _Growing([_webp(6)], _webp(14))
    job, try_ = attempt
    with ComfyUIProvider(url) as provider:
        waited = _store_complete(
            provider, job, try_, _output("clip.webp", "video"), 0, frames=14, deadline=time.monotonic() + 10
        )
    assert waited > 0 and files["clip.webp"].requests == 2
    assert Artifact.objects.get(attempt=try_).content_type == "image/webp"


def test_a_file_that_never_becomes_whole_fails_after_the_post_execution_wait(view_server, attempt):
    url, files = view_server
    whole = _png()
    files["frame.png"] = _Growing([whole[:100]] * 50, None)
    job, try_ = attempt
    started = time.monotonic()
    with ComfyUIProvider(url) as provider, pytest.raises(ProviderError) as failure:
        _store_complete(provider, job, try_, _output("frame.png"), 0, frames=None, deadline=started + 1.0)
    assert failure.value.code == ErrorCode.OUTPUT_INVALID
    assert failure.value.detail["incomplete"] is True
    assert 1.0 <= failure.value.detail["waited_s"] < 3
    assert "damaged or incomplete" in failure.value.message
    assert "post-execution wait" in failure.value.message
    assert not Artifact.objects.filter(attempt=try_).exists()


def test_a_file_that_is_no_image_at_all_fails_at_once(view_server, attempt):
    url, files = view_server
    files["notes.png"] = _Growing([], b"this is text, not a picture")
    job, try_ = attempt
    with ComfyUIProvider(url) as provider, pytest.raises(ProviderError) as failure:
        _store_complete(
            provider, job, try_, _output("notes.png"), 0, frames=None, deadline=time.monotonic() + 10
        )
    assert "incomplete" not in failure.value.detail
    assert files["notes.png"].requests == 1

"""Downloads stream under ASGI: Django reads a plain FileResponse whole into memory there (and
warns); AsyncFileResponse sends the file in blocks as it reads them."""

import io
import os
import warnings

import pytest
from asgiref.testing import ApplicationCommunicator
from django.core.handlers.asgi import ASGIHandler
from django.http import FileResponse, HttpRequest
from django.urls import path

from storycore.responses import AsyncFileResponse

FILE_SIZE = 3 * 1024 * 1024 + 17
_file = {"path": ""}


def _streamed(request: HttpRequest) -> FileResponse:
    return AsyncFileResponse(open(_file["path"], "rb"), as_attachment=True, filename="take.bin")


def _plain(request: HttpRequest) -> FileResponse:
    return FileResponse(open(_file["path"], "rb"), as_attachment=True, filename="take.bin")


urlpatterns = [path("streamed", _streamed), path("plain", _plain)]


async def _get(url: str) -> tuple[dict, list[bytes]]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": url,
        "raw_path": url.encode(),
        "query_string": b"",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
    }
    app = ApplicationCommunicator(ASGIHandler(), scope)
    await app.send_input({"type": "http.request", "body": b"", "more_body": False})
    start = await app.receive_output(10)
    chunks = []
    while True:
        message = await app.receive_output(10)
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    await app.wait(5)
    return start, chunks


@pytest.fixture
def big_file(tmp_path):
    target = tmp_path / "take.bin"
    target.write_bytes(os.urandom(FILE_SIZE))
    _file["path"] = str(target)
    return target


@pytest.mark.urls(__name__)
@pytest.mark.asyncio
async def test_an_async_file_response_streams_in_blocks_without_a_warning(big_file):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start, chunks = await _get("/streamed")
    assert start["status"] == 200
    headers = dict(start["headers"])
    assert headers[b"Content-Length"] == str(FILE_SIZE).encode()
    assert headers[b"Content-Disposition"] == b'attachment; filename="take.bin"'
    assert b"".join(chunks) == big_file.read_bytes()
    assert max(len(chunk) for chunk in chunks) <= AsyncFileResponse.block_size
    assert not [w for w in caught if "StreamingHttpResponse" in str(w.message)]


@pytest.mark.urls(__name__)
@pytest.mark.asyncio
async def test_a_plain_file_response_is_what_warns(big_file):
    # The reason AsyncFileResponse exists: if Django stops reading sync files whole, this fails.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        await _get("/plain")
    assert [w for w in caught if "must consume synchronous iterators" in str(w.message)]


def test_file_response_streams_the_way_the_handler_serving_the_request_can(big_file):
    from django.core.handlers.asgi import ASGIRequest
    from django.test import RequestFactory

    from storycore.responses import file_response

    wsgi = file_response(RequestFactory().get("/"), open(big_file, "rb"))
    assert type(wsgi) is FileResponse and not wsgi.is_async
    wsgi.close()
    scope = {"type": "http", "method": "GET", "path": "/", "query_string": b"", "headers": []}
    asgi = file_response(ASGIRequest(scope, io.BytesIO()), open(big_file, "rb"))
    assert type(asgi) is AsyncFileResponse and asgi.is_async
    asgi.close()


def test_an_api_download_streams_too_under_asgi(big_file):
    """The REST API hands views its own Request, wrapping Django's: the download must see through it."""
    from django.core.handlers.asgi import ASGIRequest
    from rest_framework.request import Request

    from storycore.responses import file_response

    scope = {"type": "http", "method": "GET", "path": "/", "query_string": b"", "headers": []}
    response = file_response(Request(ASGIRequest(scope, io.BytesIO())), open(big_file, "rb"))
    assert type(response) is AsyncFileResponse and response.is_async
    response.close()

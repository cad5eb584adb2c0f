"""File responses that stream under ASGI.

Django's ASGI handler cannot iterate a synchronous file: it warns and reads the whole
file into a list before the first byte goes out, so a 1 GB download costs 1 GB of
memory. `AsyncFileResponse` reads the same file in blocks on a worker thread instead,
keeping FileResponse's headers (length, type, disposition) and its closing of the file.
Under WSGI the plain FileResponse already streams, so `file_response` picks by request.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import IO, Any

from django.core.handlers.asgi import ASGIRequest
from django.http import FileResponse, HttpRequest, StreamingHttpResponse


async def _blocks(filelike: IO[bytes], block_size: int) -> AsyncIterator[bytes]:
    while block := await asyncio.to_thread(filelike.read, block_size):
        yield block


class AsyncFileResponse(FileResponse):
    def _set_streaming_content(self, value: Any) -> None:
        super()._set_streaming_content(value)  # type: ignore[misc]
        filelike = getattr(self, "file_to_stream", None)
        if filelike is not None and not self.is_async:
            StreamingHttpResponse._set_streaming_content(  # type: ignore[attr-defined]
                self, _blocks(filelike, self.block_size)
            )


def file_response(request: HttpRequest, filelike: IO[bytes], **kwargs: Any) -> FileResponse:
    """A FileResponse that streams under the handler serving `request` (Django's, or the one a
    REST framework Request wraps)."""
    if isinstance(getattr(request, "_request", request), ASGIRequest):
        return AsyncFileResponse(filelike, **kwargs)
    return FileResponse(filelike, **kwargs)

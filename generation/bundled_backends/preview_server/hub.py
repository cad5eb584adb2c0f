"""WebSocket clients and the messages sent to them.

Each socket gets its own bounded outbox and writer task, so a slow client
cannot stall the executor or other clients, and the order of frames for one
socket is exactly the order in which they were sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import struct
from typing import Any

from aiohttp import web

logger = logging.getLogger(__name__)

PREVIEW_IMAGE = 1
PREVIEW_IMAGE_WITH_METADATA = 4
_JPEG = 1
# A client that falls this far behind is dropped rather than buffered without end.
_OUTBOX_FRAMES = 20000
_OUTBOX_BYTES = 64 * 1024 * 1024


class Client:
    def __init__(self, sid: str, ws: web.WebSocketResponse) -> None:
        self.sid = sid
        self.ws = ws
        self.feature_flags: dict[str, Any] = {}
        self.outbox: asyncio.Queue[str | bytes | None] = asyncio.Queue()
        self.queued_bytes = 0
        self.dropped = False
        self.writer: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.writer = asyncio.get_running_loop().create_task(self._write())

    def push_json(self, event: str, data: dict[str, Any]) -> None:
        self.push(_encode(event, data))

    def push(self, frame: str | bytes) -> None:
        if self.dropped:
            return
        if self.outbox.qsize() >= _OUTBOX_FRAMES or self.queued_bytes + len(frame) > _OUTBOX_BYTES:
            logger.warning("dropping websocket client %s: it is not reading", self.sid)
            self.dropped = True
            self.outbox.put_nowait(None)
            asyncio.get_running_loop().create_task(self.ws.close())
            return
        self.queued_bytes += len(frame)
        self.outbox.put_nowait(frame)

    async def _write(self) -> None:
        while True:
            frame = await self.outbox.get()
            if frame is None or self.ws.closed:
                return
            self.queued_bytes -= len(frame)
            try:
                if isinstance(frame, bytes):
                    await self.ws.send_bytes(frame)
                else:
                    await self.ws.send_str(frame)
            except (ConnectionError, RuntimeError):
                return

    async def stop(self) -> None:
        if self.writer is not None:
            self.writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.writer


class Hub:
    """The sockets by client id, as ComfyUI's PromptServer.sockets."""

    def __init__(self) -> None:
        self.clients: dict[str, Client] = {}

    def attach(self, client: Client, first_frames: list[tuple[str, dict[str, Any]]]) -> None:
        # The first frames are queued before the socket becomes reachable, so `status`
        # is always its first frame. A reconnect with the same id replaces the old socket,
        # which is left open but gets nothing more, like ComfyUI.
        for event, data in first_frames:
            client.push(_encode(event, data))
        self.clients[client.sid] = client
        client.start()

    def detach(self, client: Client) -> None:
        # Only forget the id if it still belongs to this socket; ComfyUI also drops a
        # newer socket here when an orphaned one closes, which loses its messages.
        if self.clients.get(client.sid) is client:
            del self.clients[client.sid]

    def send(self, event: str, data: dict[str, Any], sid: str | None = None) -> None:
        """Queue a JSON message for one client id, or for every socket when sid is None."""
        frame = _encode(event, data)
        for client in self._targets(sid):
            client.push(frame)

    def send_preview(self, jpeg: bytes, sid: str | None) -> None:
        """Binary event 1, the format clients get when they did not ask for metadata."""
        frame = struct.pack(">I", PREVIEW_IMAGE) + struct.pack(">I", _JPEG) + jpeg
        for client in self._targets(sid):
            client.push(frame)

    def send_preview_with_metadata(self, jpeg: bytes, metadata: dict[str, Any], sid: str | None) -> None:
        """Binary event 4: a length-prefixed JSON header, then the image."""
        header = json.dumps({**metadata, "image_type": "image/jpeg"}).encode("utf-8")
        frame = (
            struct.pack(">I", PREVIEW_IMAGE_WITH_METADATA) + struct.pack(">I", len(header)) + header + jpeg
        )
        for client in self._targets(sid):
            client.push(frame)

    def supports_preview_metadata(self, sid: str | None) -> bool:
        client = self.clients.get(sid) if sid is not None else None
        return bool(client and client.feature_flags.get("supports_preview_metadata", False))

    def _targets(self, sid: str | None) -> list[Client]:
        if sid is None:
            return list(self.clients.values())
        client = self.clients.get(sid)
        return [client] if client is not None else []

    async def close_all(self) -> None:
        for client in list(self.clients.values()):
            await client.ws.close()
            await client.stop()
        self.clients.clear()


def _encode(event: str, data: dict[str, Any]) -> str:
    return json.dumps({"type": event, "data": data})

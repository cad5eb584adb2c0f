"""A replay server: one recorded ComfyUI transcript, served back over real HTTP and WebSocket.

The recordings in tests/data/comfyui are what a real ComfyUI 0.3.64 said. This server answers
a client with exactly those bytes, so a client (our ComfyUIProvider) can be tested against the
real server's behaviour without running one. How it decides what to answer:

* The transcript is one timeline: HTTP steps and WebSocket frames, each with a `t_ms`. The
  replay keeps a clock on that timeline. It runs at `speed` times real time but never passes a
  recorded POST (any non-GET step) the client has not made yet: whatever ComfyUI sent after a
  POST may have been caused by it. A POST the client makes moves the clock forward to it.
* POSTs are consumed: each matches the first not-yet-used step with the same method and path,
  and the same `prompt` for `/prompt`; the same `prompt_id` when the recorded JSON body has one
  (and a `/prompt` id the client chose must be the one the recorded run got); the same file name,
  bytes and form fields for `/upload/image`. Recorded POSTs the client jumped over are skipped.
  Where the repository lacks a recorded upload's bytes, a test may name the bytes that stand
  for them (`substitute_upload`); the upload then matches by name and fields, and says so in notes.
* GETs are not consumed (they change nothing). A GET is answered with the latest matching step
  recorded before the next POST the client has not made. If that answer was recorded later on
  the timeline than "now", it came from the future: the replay then serves a stand-in the test
  registered for it (see `stand_in_no_history`), or else holds the request until the clock gets
  there, as the real client had to wait for it. A POST the recording cannot have (a cancel of a
  render that never ran there) may be stood in for too (`stand_in_post`).
* A socket `/ws?clientId=X` is matched to the next unused `websocket_<label>` recorded with that
  clientId; its received frames are sent in order, each once the clock reaches its `t_ms`.
* Anything without a recorded match gets `599 Not Recorded` with a body naming the request, and
  lands in `unmatched`, which the tests assert is empty.

Where it is not byte-exact (each case is appended to `notes` when it happens): binary bodies
whose bytes were not saved (served as a synthesised image of the recorded format and size),
binary WebSocket frames that were not saved (rebuilt from the recorded header around a
synthesised JPEG), stand-ins, sockets accepted with `silent_sockets` for transcripts recorded
without one, and the WebSocket handshake (aiohttp computes it).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import pathlib
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any, TypeVar
from urllib.parse import unquote

from aiohttp import WSMsgType, web
from PIL import Image, PngImagePlugin

DATA_DIR = pathlib.Path(__file__).resolve().parents[1] / "data" / "comfyui"
# A request this close (recorded ms) before its recorded answer is the same moment: the replay
# and the client only race by a few milliseconds, so it waits instead of calling it early.
HOLD_MS = 50.0
# The longest a GET is held for the clock to reach its recorded answer.
MAX_HOLD_S = 5.0
TICK_S = 0.002
# aiohttp writes these itself from the body it sends.
NOT_REPLAYED_HEADERS = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})

T = TypeVar("T")


@dataclass(frozen=True)
class Reply:
    status: int
    reason: str
    headers: dict[str, str]
    body: bytes
    not_exact: str = ""  # why these bytes are not the recorded ones, when they are not


@dataclass(frozen=True)
class Received:
    """One HTTP request the replay server received, and what answered it."""

    method: str
    path: str
    body: bytes
    answered_by: str  # a step label, "stand-in: ...", or "unmatched"

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class _Step:
    index: int
    label: str
    t_ms: float
    method: str
    path: str
    request: dict[str, Any]
    reply: Reply
    state: str = "open"  # POSTs only: open | served | skipped


@dataclass
class _Socket:
    key: str
    client_id: str | None
    frames: list[tuple[float, str | bytes, str]]  # (t_ms, data, why it is not exact or "")
    connected: bool = False


@dataclass
class _Clock:
    base_rec_ms: float = 0.0
    base_wall: float = field(default_factory=time.monotonic)


class ReplayServer:
    def __init__(
        self,
        transcript: str,
        *,
        speed: float = 1.0,
        silent_sockets: bool = False,
        data_dir: pathlib.Path = DATA_DIR,
    ) -> None:
        self.name = transcript
        self.speed = speed
        # For transcripts recorded without a socket: accept one, send nothing, and say so in notes.
        self.silent_sockets = silent_sockets
        self.data_dir = data_dir
        self.received: list[Received] = []
        self.ws_messages: list[tuple[str, str | bytes]] = []  # (socket key, what the client sent)
        self.unmatched: list[str] = []
        self.notes: list[str] = []
        self._stand_ins: dict[tuple[str, str], tuple[str, Reply]] = {}
        # (path, JSON body) of a POST the recording lacks -> why it may be answered all the same
        self._post_stand_ins: dict[tuple[str, str], str] = {}
        # sha256 of bytes a test uploads -> (sha256 of the recorded upload they stand for, why)
        self._upload_substitutes: dict[str, tuple[str, str]] = {}
        self._files = {hashlib.sha256(p.read_bytes()).hexdigest(): p for p in data_dir.glob("*.png")}
        recorded = json.loads((data_dir / transcript).read_text(encoding="utf-8"))
        self._steps = [self._load_step(i, step) for i, step in enumerate(recorded.get("steps", []))]
        self._sockets = [
            self._load_socket(key, value) for key, value in recorded.items() if key.startswith("websocket_")
        ]
        self._clock = _Clock()
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._open_sockets: set[web.WebSocketResponse] = set()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.base_url = ""

    # -- lifecycle ----------------------------------------------------------
    def start(self) -> ReplayServer:
        self._thread.start()
        port = self._on_loop_async(self._start())
        self.base_url = f"http://127.0.0.1:{port}"
        self._clock = _Clock()  # the timeline starts when the client can first reach us
        return self

    def stop(self) -> None:
        self._on_loop_async(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> ReplayServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _start(self) -> int:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        return int(server.sockets[0].getsockname()[1])

    async def _stop(self) -> None:
        for ws in list(self._open_sockets):
            await ws.close()
        assert self._runner is not None
        await self._runner.cleanup()

    def _on_loop_async(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    def _on_loop(self, fn: Callable[[], T]) -> T:
        """Run fn on the server's loop: all replay state is changed there, never from two threads."""

        async def call() -> T:
            return fn()

        return self._on_loop_async(call())

    # -- what tests can ask for ---------------------------------------------
    def stand_in(self, path: str, body: Any, why: str) -> None:
        """Answer GET `path` with this JSON whenever the recording has no answer for that moment."""
        reply = Reply(
            200, "OK", {"Content-Type": "application/json; charset=utf-8"}, json.dumps(body).encode()
        )
        self._on_loop(lambda: self._stand_ins.update({("GET", path): (why, reply)}))

    def stand_in_no_history(self, prompt_id: str) -> None:
        """GET /history/<id> while the prompt is queued or running: `{}`.

        A client that polls during a run asks before the recording did. ComfyUI's answer then is
        `{}` (recorded for a running and a pending prompt in queue_and_interrupt.json), the same
        bytes for any id.
        """
        self.stand_in(f"/history/{prompt_id}", {}, "no history yet")

    def stand_in_queue_running(self, prompt_id: str) -> None:
        """GET /queue while the prompt runs: the queue item recorded in its own history entry.

        That entry holds the same 5-element array ComfyUI lists in /queue; the rest is built.
        """
        item = None
        for step in self._steps:
            if step.method == "GET" and step.path == f"/history/{prompt_id}":
                entry = json.loads(step.reply.body or b"{}").get(prompt_id)
                item = entry["prompt"] if entry else item
        assert item is not None, f"{self.name} records no history entry for {prompt_id}"
        self.stand_in("/queue", {"queue_running": [item], "queue_pending": []}, f"{prompt_id} running")

    def stand_in_post(self, path: str, body: Any, why: str) -> None:
        """Answer a POST of exactly this JSON body to `path` (/queue, /interrupt) as ComfyUI
        answers every such POST (recorded in queue_and_interrupt.json): 200 with no body.

        For a request the recording could not have (the studio cancelling a render that waited
        past its max wait); it does not move the replay's clock.
        """
        key = (path, json.dumps(body, sort_keys=True))
        self._on_loop(lambda: self._post_stand_ins.update({key: why}))

    def substitute_upload(self, recorded_sha256: str, content: bytes, why: str) -> None:
        """Let an upload of `content` match a recorded upload whose bytes were not kept.

        The recordings keep only the sha256 of most uploaded files. A test that must upload
        something names the bytes it uses instead; name and form fields must still match.
        """
        sent = hashlib.sha256(content).hexdigest()
        self._on_loop(lambda: self._upload_substitutes.update({sent: (recorded_sha256, why)}))

    def clear_stand_ins(self) -> None:
        self._on_loop(self._stand_ins.clear)

    def received_for(self, method: str, path: str) -> list[Received]:
        return [r for r in self.received if r.method == method and unquote(r.path) == unquote(path)]

    # -- loading the transcript ------------------------------------------------
    def _load_step(self, index: int, step: dict[str, Any]) -> _Step:
        request, response = step["request"], step["response"]
        label = step.get("label") or f"step {index} {request['method']} {request['path']}"
        headers = {k: v for k, v in response["headers"].items() if k.lower() not in NOT_REPLAYED_HEADERS}
        body, not_exact = self._recorded_body(response)
        length = response["headers"].get("content-length")
        if length is not None and int(length) != len(body) and not not_exact:
            not_exact = f"{len(body)} bytes where the recorded Content-Length is {length}"
        reply = Reply(response["status"], response["reason"], headers, body, not_exact)
        return _Step(index, label, step["t_ms_sent"], request["method"], request["path"], request, reply)

    def _recorded_body(self, response: dict[str, Any]) -> tuple[bytes, str]:
        """The body bytes, and why they are not the recorded ones ("" when they are)."""
        if "raw_body" in response:  # exact bytes, kept for JSON under 6 KB
            return response["raw_body"].encode("utf-8"), ""
        if "json" in response:  # ComfyUI serialises with json.dumps defaults; Content-Length confirms it
            return json.dumps(response["json"]).encode("utf-8"), ""
        if "text" in response:
            return response["text"].encode("utf-8"), ""
        if "body_summary" in response:
            summary = response["body_summary"]
            if summary["sha256"] in self._files:
                return self._files[summary["sha256"]].read_bytes(), ""
            image = summary.get("image") or {}
            why = (
                f"bytes not recorded; a synthesised {image.get('format')} {image.get('size')} "
                f"{image.get('mode')} stands in for the recorded {summary['length']} bytes"
            )
            return _synthesised_image(image), why
        return b"", ""  # body_length 0

    def _load_socket(self, key: str, recorded: dict[str, Any]) -> _Socket:
        client_id = recorded.get("client_id_in_url")
        frames: list[tuple[float, str | bytes, str]] = []
        for frame in recorded["received"]:
            if "json" in frame:
                # `raw` is the exact text under 3 KB; longer ones were json.dumps'd by ComfyUI too.
                frames.append((frame["t_ms"], frame.get("raw") or json.dumps(frame["json"]), ""))
            else:
                frames.append((frame["t_ms"], *self._binary_frame(frame)))
        return _Socket(key, client_id, frames)

    def _binary_frame(self, frame: dict[str, Any]) -> tuple[bytes, str]:
        binary = frame["binary"]
        saved = binary.get("full_frame_saved_to_file")
        if saved and (self.data_dir / saved).is_file():
            return (self.data_dir / saved).read_bytes(), ""
        why = "frame not saved; the recorded header is rebuilt around a synthesised JPEG"
        image = (binary.get("image") or {}).get("image") or {"format": "JPEG", "size": [512, 512]}
        jpeg = _synthesised_image({**image, "format": "JPEG", "mode": "RGB"})
        if binary["event_type"] == 1:
            return struct.pack(">II", 1, binary["image_type_code"]) + jpeg, why
        metadata = binary["metadata_raw"].encode("utf-8")
        return struct.pack(">II", binary["event_type"], len(metadata)) + metadata + jpeg, why

    # -- the clock --------------------------------------------------------------
    def _limit_ms(self) -> float:
        """The recorded time of the first POST the client has not made: the clock stops there."""
        for step in self._steps:
            if step.method != "GET" and step.state == "open":
                return step.t_ms
        return float("inf")

    def _now(self) -> float:
        running = self._clock.base_rec_ms + (time.monotonic() - self._clock.base_wall) * 1000 * self.speed
        return min(running, self._limit_ms())

    def _rebase(self, rec_ms: float) -> None:
        self._clock = _Clock(rec_ms, time.monotonic())

    # -- HTTP -------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.path in ("/ws", "/api/ws") and request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._handle_ws(request)
        body = await request.read()
        method, path = request.method, request.raw_path
        if method == "GET":
            reply, answered_by = await self._answer_get(path)
        else:
            reply, answered_by = self._answer_post(
                method, path, body, request.headers.get("Content-Type", "")
            )
        if reply is not None and reply.not_exact:
            self.notes.append(f"{method} {path} ({answered_by}): {reply.not_exact}")
        if reply is None:
            what = (
                f"{method} {path} ({len(body)} bytes: {body[:200]!r}) has no recorded answer in {self.name}"
            )
            self.unmatched.append(f"{what}: {answered_by}")
            reply = Reply(599, "Not Recorded", {"Content-Type": "text/plain; charset=utf-8"}, what.encode())
            answered_by = "unmatched"
        self.received.append(Received(method, path, body, answered_by))
        return web.Response(status=reply.status, reason=reply.reason, headers=reply.headers, body=reply.body)

    def _answer_post(
        self, method: str, path: str, body: bytes, content_type: str
    ) -> tuple[Reply | None, str]:
        for step in self._steps:
            if step.method == "GET" or step.state != "open" or not _same_path(step.path, path):
                continue
            if not _same_request(step, body, content_type, self._upload_substitutes):
                continue
            if "form_files" in step.request and not _same_request(step, body, content_type):
                recorded_files = {f["sha256"] for f in step.request["form_files"].values()}
                whys = [why for sha, why in self._upload_substitutes.values() if sha in recorded_files]
                self.notes.append(f"{method} {path} ({step.label}): other bytes stand in: {'; '.join(whys)}")
            now = self._now()
            for earlier in self._steps[: step.index]:
                if earlier.method != "GET" and earlier.state == "open":
                    earlier.state = "skipped"
            step.state = "served"
            # What ComfyUI sent after this POST may follow now, at the recorded pace.
            self._rebase(max(now, step.t_ms))
            return step.reply, step.label
        try:
            sent = json.dumps(json.loads(body), sort_keys=True)
        except ValueError:
            sent = None
        why = self._post_stand_ins.get((path, sent)) if sent is not None else None
        if why is not None:
            self.notes.append(f"{method} {path}: stand-in ({why}) at {self._now():.1f} ms")
            return Reply(200, "OK", {}, b""), f"stand-in: {why}"
        return None, "no open recorded step with this method, path and body"

    async def _answer_get(self, path: str) -> tuple[Reply | None, str]:
        limit = self._limit_ms()
        candidates = [
            s for s in self._steps if s.method == "GET" and s.t_ms < limit and _same_path(s.path, path)
        ]
        stand_in = self._stand_ins.get(("GET", unquote(path)))
        if not candidates:
            if stand_in:
                return self._use_stand_in(path, stand_in)
            later = [s.label for s in self._steps if s.method == "GET" and _same_path(s.path, path)]
            return (
                None,
                f"recorded only after a POST the client has not made: {later}" if later else "never recorded",
            )
        best = candidates[-1]
        if best.t_ms > self._now() + HOLD_MS and stand_in:
            return self._use_stand_in(path, stand_in)
        deadline = time.monotonic() + MAX_HOLD_S
        while self._now() < best.t_ms:
            if time.monotonic() > deadline:
                return (
                    None,
                    f"asked too early: recorded at {best.t_ms} ms, the replay is at {self._now():.1f} ms",
                )
            await asyncio.sleep(TICK_S)
        return best.reply, best.label

    def _use_stand_in(self, path: str, stand_in: tuple[str, Reply]) -> tuple[Reply, str]:
        why, reply = stand_in
        self.notes.append(f"GET {path}: stand-in ({why}) at {self._now():.1f} ms")
        return reply, f"stand-in: {why}"

    # -- WebSocket -----------------------------------------------------------------
    async def _handle_ws(self, request: web.Request) -> web.StreamResponse:
        client_id = request.query.get("clientId")
        sock = next((s for s in self._sockets if not s.connected and s.client_id == client_id), None)
        if sock is None and self.silent_sockets:
            self.notes.append(f"WebSocket {request.raw_path}: not recorded; accepted and kept silent")
            sock = _Socket("unrecorded", client_id, [])
        if sock is None:
            what = f"WebSocket {request.raw_path} has no unused recorded socket in {self.name}"
            self.unmatched.append(what)
            self.received.append(Received("GET", request.raw_path, b"", "unmatched"))
            return web.Response(status=599, reason="Not Recorded", text=what)
        sock.connected = True
        self.received.append(Received("GET", request.raw_path, b"", sock.key))
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._open_sockets.add(ws)
        player = asyncio.create_task(self._play(ws, sock))
        try:
            async for message in ws:
                if message.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    self.ws_messages.append((sock.key, message.data))
        finally:
            player.cancel()
            self._open_sockets.discard(ws)
        return ws

    async def _play(self, ws: web.WebSocketResponse, sock: _Socket) -> None:
        for t_ms, data, not_exact in sock.frames:
            # A frame goes once the clock reaches it; the clock waits at POSTs not yet made.
            # (One stamped the same 0.1 ms as a POST went before it: ComfyUI had not read the POST.)
            while t_ms > self._now():
                await asyncio.sleep(TICK_S)
            if ws.closed:
                return
            if not_exact:
                self.notes.append(f"{sock.key} frame at {t_ms} ms: {not_exact}")
            if isinstance(data, bytes):
                await ws.send_bytes(data)
            else:
                await ws.send_str(data)


def _same_path(recorded: str, received: str) -> bool:
    # Compare decoded: clients may percent-encode a query differently and mean the same request.
    return unquote(recorded) == unquote(received)


def _same_request(
    step: _Step, body: bytes, content_type: str, substitutes: dict[str, tuple[str, str]] | None = None
) -> bool:
    """Whether a POST body is the recorded one, by the fields that pick one recorded step."""
    recorded = step.request
    if "raw_body" in recorded:
        return body == recorded["raw_body"].encode("utf-8")
    if "form_files" in recorded:
        return _same_upload(recorded, body, content_type, substitutes or {})
    expected = recorded.get("json")
    if not isinstance(expected, dict):
        return True  # no body, or one that names nothing: method and path decide
    try:
        sent = json.loads(body)
    except ValueError:
        return False
    if not isinstance(sent, dict):
        return False
    if step.path.endswith("/prompt") and sent.get("prompt") != expected.get("prompt"):
        return False
    if "prompt_id" in expected:
        return sent.get("prompt_id") == expected["prompt_id"]
    if step.path.endswith("/prompt") and step.reply.status == 200 and "prompt_id" in sent:
        # A client-chosen id must be the one this recorded run got; without one, ComfyUI picks it.
        return sent["prompt_id"] == json.loads(step.reply.body).get("prompt_id")
    return True


def _same_upload(
    recorded: dict[str, Any], body: bytes, content_type: str, substitutes: dict[str, tuple[str, str]]
) -> bool:
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
    )
    fields: dict[str, str] = {}
    files: dict[str, tuple[str, str]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        content = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        if filename is None:
            fields[str(name)] = content.decode("utf-8")
        else:
            sha256 = hashlib.sha256(content).hexdigest()
            files[str(name)] = (filename, substitutes.get(sha256, (sha256, ""))[0])
    wanted = {name: (f["filename"], f["sha256"]) for name, f in recorded["form_files"].items()}
    recorded_fields = recorded.get("form_fields") or {}

    def field_value(source: dict[str, str], name: str, default: str) -> str:
        return source.get(name, default).lower()

    # ComfyUI's defaults: type input, no subfolder, overwrite off; a client may send them or not.
    defaults = {"type": "input", "subfolder": "", "overwrite": "false"}
    return files == wanted and all(
        field_value(fields, name, default) == field_value(recorded_fields, name, default)
        for name, default in defaults.items()
    )


def _synthesised_image(info: dict[str, Any]) -> bytes:
    """An image of the recorded format, size, mode and PNG text chunks (its bytes were not recorded)."""
    image_format = str(info.get("format", "PNG"))
    image = Image.new(str(info.get("mode", "RGB")), tuple(info.get("size", [1, 1])))
    options: dict[str, Any] = {}
    if image_format == "PNG" and info.get("png_text_chunks"):
        chunks = PngImagePlugin.PngInfo()
        for key, value in info["png_text_chunks"].items():
            chunks.add_text(key, value)
        options["pnginfo"] = chunks
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **options)
    return buffer.getvalue()

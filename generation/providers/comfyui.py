"""ComfyUI over HTTP, and the meaning of its WebSocket frames. Pure Python, no Django.

The attempt's UUID is sent as the prompt_id, so the handle is known before the
request leaves and a restarted worker can look for it in /queue and /history
instead of rendering twice. Prompts go under the backend's client id; the one
socket per backend that carries their messages is followed by
`comfyui_follow.SocketFollower` (frames read with `parse_message` here), and
/history and /queue are the ground truth it falls back on.
"""

from __future__ import annotations

import copy
import functools
import json
import logging
import re
import ssl
import struct
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx

from generation.providers.base import (
    BackendConfig,
    BackendHealth,
    ErrorCode,
    EventKind,
    Place,
    ProgressEvent,
    ProviderError,
    RemoteHandle,
    RemoteOutput,
    RenderRequest,
    excerpt,
    output_kind,
    plain,
)
from generation.providers.url_policy import COMFYUI, GuardedTransport, Resolver, check_url
from generation.workflow_validation import MODEL_INPUTS

log = logging.getLogger(__name__)

KIND = "comfyui"
# The keys a node's `ui` lists saved files under. ComfyUI's own save nodes use `images` (stills,
# animated WEBP/PNG, and SaveVideo/SaveWEBM clips with `animated: [true]`) and `audio`;
# VideoHelperSuite's Video Combine uses `gifs`.
OUTPUT_KINDS = {"images": "image", "gifs": "video", "videos": "video", "audio": "audio", "text": "text"}
PREVIEW_IMAGE_TYPES = {1: "image/jpeg", 2: "image/png"}
# What a render's save nodes may have written under its prefix, looked for on /view when the
# server forgot the render; and how many numbered files of each are looked for at most.
RECOVERABLE_EXTENSIONS = (
    ("png", "image"),
    ("webp", "animated"),
    ("mp4", "video"),
    ("webm", "video"),
    ("flac", "audio"),
    ("mp3", "audio"),
    ("opus", "audio"),
)
MAX_RECOVERED_FILES = 64
VERSION = re.compile(r"[0-9A-Za-z.+-]{1,40}")


@dataclass(frozen=True)
class Timeouts:
    connect: float = 5.0
    read: float = 30.0
    # How often `outputs` reads /history while waiting for them (at most every 0.25 s).
    poll_interval: float = 2.0
    post_execution: float = 30.0


@dataclass(frozen=True)
class HistoryEntry:
    status: str  # success | error
    completed: bool
    outputs: list[RemoteOutput]
    messages: list[tuple[str, dict[str, Any]]]


def ws_url(base_url: str, client_id: str) -> str:
    parts = urlsplit(base_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    path = parts.path.rstrip("/") + "/ws"
    return urlunsplit((scheme, parts.netloc, path, urlencode({"clientId": client_id}), ""))


FOLDER_TYPES = frozenset({"output", "temp", "input"})


def check_output_name(filename: str, subfolder: str, folder_type: str) -> None:
    """Refuse names a server should never send: they are untrusted and must not steer a path."""
    parts = [part for part in subfolder.replace("\\", "/").split("/") if part]
    unsafe = (
        not filename
        or "/" in filename
        or "\\" in filename
        or "\x00" in filename + subfolder
        or filename in {".", ".."}
        or subfolder.startswith(("/", "\\"))
        or ".." in parts
        or folder_type not in FOLDER_TYPES
    )
    if unsafe:
        raise ProviderError(
            ErrorCode.OUTPUT_INVALID,
            "ComfyUI reported an output with an unsafe name "
            f"({plain(folder_type, 40)}/{plain(subfolder, 80)}/{plain(filename, 80)!r}); it was refused",
        )


def parse_outputs(raw: dict[str, Any]) -> list[RemoteOutput]:
    """Every output file in a history entry. Raises OUTPUT_INVALID on an unsafe name."""
    found: list[RemoteOutput] = []
    for node_id, ui in raw.items():
        if not isinstance(ui, dict):
            continue
        animated = any(ui.get("animated") or [])
        for key, kind in OUTPUT_KINDS.items():
            for item in ui.get(key) or []:
                if not isinstance(item, dict) or "filename" not in item:
                    continue
                filename = str(item["filename"])
                subfolder = str(item.get("subfolder", ""))
                folder_type = str(item.get("type", "output"))
                check_output_name(filename, subfolder, folder_type)
                found.append(
                    RemoteOutput(
                        node_id=str(node_id),
                        filename=filename,
                        subfolder=subfolder,
                        folder_type=folder_type,
                        kind=output_kind(kind, filename, animated=animated),
                        animated=animated,
                    )
                )
    return found


def parse_history_entry(raw: dict[str, Any]) -> HistoryEntry:
    status = raw.get("status") or {}
    messages = [
        (str(m[0]), m[1] if isinstance(m[1], dict) else {}) for m in status.get("messages", []) if len(m) == 2
    ]
    return HistoryEntry(
        status=str(status.get("status_str", "")),
        completed=bool(status.get("completed")),
        outputs=parse_outputs(raw.get("outputs") or {}),
        messages=messages,
    )


def error_from_rejection(body: Any) -> ProviderError:
    """Turn the body of a 400 from POST /prompt into one ProviderError naming the node and input.

    Only the parsed fields a person needs go into the message, each cut short; the
    body itself is kept, bounded, in the error's detail.
    """
    if not isinstance(body, dict) or not isinstance(body.get("error"), dict):
        return ProviderError(
            ErrorCode.WORKFLOW_REJECTED,
            "ComfyUI rejected the workflow (HTTP 400) without saying which node",
            detail={"response": excerpt(body)},
        )
    error = body["error"]
    node_errors = body.get("node_errors") or {}
    if error.get("type") == "invalid_prompt" and "does not exist" in str(error.get("message", "")):
        return ProviderError(
            ErrorCode.MISSING_NODE,
            f"{plain(error.get('message'))} ({plain(error.get('details'))}). "
            "Install the custom node on this server.",
            detail={"error": excerpt(error)},
        )
    problems: list[str] = []
    model_misses = other_errors = 0
    for node_id, node in node_errors.items():
        if not isinstance(node, dict):
            continue
        for item in node.get("errors", []):
            if not isinstance(item, dict):
                continue
            input_name = (item.get("extra_info") or {}).get("input_name", "")
            if item.get("type") == "value_not_in_list" and input_name in MODEL_INPUTS:
                model_misses += 1
            else:
                other_errors += 1
            where = f"node {plain(node_id, 40)} ({plain(node.get('class_type', '?'), 80)})"
            if input_name:
                where += f" input {plain(input_name, 80)}"
            detail = f": {plain(item['details'])}" if item.get("details") else ""
            problems.append(f"{where}: {plain(item.get('message', 'invalid'))}{detail}")
    if not problems:
        problems.append(
            f"{plain(error.get('message', 'invalid prompt'))} {plain(error.get('details', ''))}".strip()
        )
    # Another backend may have the model, but only helps when nothing else is wrong.
    code = ErrorCode.MISSING_MODEL if model_misses and not other_errors else ErrorCode.WORKFLOW_REJECTED
    return ProviderError(
        code, plain("; ".join(problems), 2000), detail={"error": excerpt(error), "node_errors": node_errors}
    )


def error_from_execution(data: dict[str, Any]) -> ProviderError:
    exception_type = plain(data.get("exception_type", ""), 100)
    message = plain(data.get("exception_message", ""), 500)
    where = f"node {plain(data.get('node_id'), 40)} ({plain(data.get('node_type'), 80)})"
    detail = {
        "node_id": data.get("node_id"),
        "node_type": data.get("node_type"),
        "exception_type": exception_type,
        "exception_message": message,
    }
    if "OutOfMemory" in exception_type or "out of memory" in message.lower():
        return ProviderError(
            ErrorCode.OUT_OF_MEMORY, f"{where} ran out of GPU memory: {message}", detail=detail
        )
    return ProviderError(
        ErrorCode.EXECUTION_FAILED, f"{where} failed: {exception_type}: {message}", detail=detail
    )


def decode_binary_frame(frame: bytes) -> tuple[bytes, str, dict[str, Any]] | None:
    """A preview image from a binary frame: (image bytes, content type, metadata), or None."""
    if len(frame) < 8:
        return None
    (event,) = struct.unpack(">I", frame[:4])
    if event == 1:
        (image_type,) = struct.unpack(">I", frame[4:8])
        return frame[8:], PREVIEW_IMAGE_TYPES.get(image_type, "application/octet-stream"), {}
    if event == 4:
        (meta_len,) = struct.unpack(">I", frame[4:8])
        try:
            meta = json.loads(frame[8 : 8 + meta_len])
        except ValueError:
            return None
        return frame[8 + meta_len :], str(meta.get("image_type", "image/jpeg")), meta
    return None


def parse_message(message: str | bytes) -> tuple[str | None, ProgressEvent] | None:
    """One WebSocket frame as (prompt_id, event), or None for frames that change nothing."""
    if isinstance(message, bytes):
        decoded = decode_binary_frame(message)
        if decoded is None:
            return None
        image, content_type, meta = decoded
        prompt_id = meta.get("prompt_id")
        return (str(prompt_id) if prompt_id else None), ProgressEvent(
            EventKind.PREVIEW, preview=image, preview_type=content_type
        )
    try:
        payload = json.loads(message)
    except ValueError:
        return None
    kind = payload.get("type") if isinstance(payload, dict) else None
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, dict) or not data.get("prompt_id"):
        # `status`, and the `executing` a reconnected socket gets, name no prompt.
        return None
    prompt_id = str(data["prompt_id"])
    event: ProgressEvent | None = None
    if kind == "execution_start":
        event = ProgressEvent(EventKind.STARTED)
    elif kind == "executing":
        node = data.get("node")
        event = (
            ProgressEvent(EventKind.FINISHED)
            if node is None
            else ProgressEvent(EventKind.NODE, node=str(node))
        )
    elif kind == "progress":
        event = ProgressEvent(
            EventKind.PROGRESS, node=str(data.get("node")), value=int(data["value"]), maximum=int(data["max"])
        )
    elif kind == "execution_success":
        # Outputs are not in /history yet; the end is the `executing` null that follows.
        event = ProgressEvent(EventKind.SUCCESS)
    elif kind == "executed" and isinstance(data.get("output"), dict):
        try:
            written = parse_outputs({str(data.get("node")): data["output"]})
        except ProviderError:
            return None  # an unsafe name is refused where outputs are fetched, from /history
        event = ProgressEvent(EventKind.OUTPUT, node=str(data.get("node")), outputs=tuple(written))
    elif kind == "execution_error":
        event = ProgressEvent(EventKind.FAILED, error=error_from_execution(data))
    elif kind == "execution_interrupted":
        event = ProgressEvent(
            EventKind.FAILED,
            error=ProviderError(
                ErrorCode.CANCELLED,
                f"interrupted at node {plain(data.get('node_id'), 40)} ({plain(data.get('node_type'), 80)})",
            ),
        )
    return (prompt_id, event) if event is not None else None


@functools.cache
def _tls_context() -> ssl.SSLContext:
    # Loading the CA bundle costs milliseconds; one context serves every client of the process.
    return ssl.create_default_context()


def from_config(config: BackendConfig) -> ComfyUIProvider:
    """The provider for a ComfyUI backend: prompts go under the backend's client id, whose
    socket the render watcher holds."""
    return ComfyUIProvider(
        config.base_url,
        client_id=config.client_id or None,
        timeouts=Timeouts(
            connect=config.connect_timeout_s,
            read=config.read_timeout_s,
            poll_interval=config.poll_interval_s,
            post_execution=config.post_execution_timeout_s,
        ),
    )


class ComfyUIProvider:
    kind = KIND

    def __init__(
        self,
        base_url: str,
        *,
        timeouts: Timeouts | None = None,
        client_id: str | None = None,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        resolver: Resolver | None = None,
    ) -> None:
        """Prompts are submitted under `client_id`; the socket that gets their messages is not
        the provider's but its follower's (the render watcher's `SocketFollower`).

        The URL is checked now and every connection's address when it is made
        (url_policy.COMFYUI): no link-local or metadata address, however spelled or resolved."""
        self.base_url = base_url.rstrip("/")
        check_url(self.base_url, COMFYUI)
        self.timeouts = timeouts or Timeouts()
        self.client_id = client_id or f"storycore-{uuid.uuid4().hex}"
        self._clock = clock
        self._http = httpx.Client(
            base_url=self.base_url,
            verify=_tls_context(),
            timeout=httpx.Timeout(self.timeouts.read, connect=self.timeouts.connect),
            transport=transport or GuardedTransport(COMFYUI, verify=_tls_context(), resolver=resolver),
            follow_redirects=False,
        )
        self.fallback_notes: list[str] = []
        # ComfyUI reports nothing about a run beyond its messages and /history.
        self.telemetry: dict[str, Any] = {}
        self.last_answer: Any = None

    # -- plumbing ---------------------------------------------------------
    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ComfyUIProvider:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, path, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            # The request never left: nothing can have been accepted, so a retry is safe.
            raise ProviderError(
                ErrorCode.UNAVAILABLE,
                f"ComfyUI at {self.base_url} cannot be reached: {exc.__class__.__name__}: {plain(exc)}",
                detail={"sent": False},
            ) from exc
        except httpx.TimeoutException as exc:
            raise ProviderError(
                ErrorCode.UNAVAILABLE, f"ComfyUI at {self.base_url} did not answer in time ({path})"
            ) from exc
        except httpx.TransportError as exc:
            # Only the class: a protocol error's text can quote what the server sent.
            raise ProviderError(
                ErrorCode.UNAVAILABLE,
                f"ComfyUI at {self.base_url} cannot be reached: {exc.__class__.__name__}",
            ) from exc

    def _json(self, response: httpx.Response, what: str) -> Any:
        if response.status_code >= 500:
            raise ProviderError(ErrorCode.UNAVAILABLE, f"ComfyUI answered {response.status_code} to {what}")
        if response.status_code != 200:
            raise ProviderError(
                ErrorCode.CONFIG_INVALID, f"ComfyUI answered {response.status_code} to {what}"
            )
        try:
            return response.json()
        except ValueError as exc:
            raise ProviderError(
                ErrorCode.UNAVAILABLE, f"ComfyUI sent a body that is not JSON for {what}"
            ) from exc

    # -- the contract -----------------------------------------------------
    def upload_image(self, name: str, content: bytes, *, subfolder: str = "", overwrite: bool = False) -> str:
        """Upload an input image; returns the value for a LoadImage `image` input."""
        data = {"type": "input", "overwrite": "true" if overwrite else "false"}
        if subfolder:
            data["subfolder"] = subfolder
        response = self._request("POST", "/upload/image", files={"image": (name, content)}, data=data)
        if response.status_code != 200:
            raise ProviderError(
                ErrorCode.WORKFLOW_REJECTED if response.status_code == 400 else ErrorCode.UNAVAILABLE,
                f"ComfyUI refused the input image {name!r} (HTTP {response.status_code})",
            )
        body = self._json(response, "POST /upload/image")
        stored = str(body.get("name", name))
        folder = str(body.get("subfolder", ""))
        return f"{folder}/{stored}" if folder else stored

    def submit(self, request: RenderRequest) -> RemoteHandle:
        workflow = request.workflow
        if request.images:
            workflow = copy.deepcopy(workflow)
            for image in request.images:
                # The attempt id in the name keeps two renders' inputs apart on a shared server.
                name = self.upload_image(
                    f"{request.attempt_id}-{image.filename}", image.content, overwrite=True
                )
                workflow[image.node_id]["inputs"][image.input_name] = name
        body = {
            "prompt": workflow,
            "client_id": self.client_id,
            "prompt_id": request.attempt_id,
            "extra_data": {},
        }
        response = self._request("POST", "/prompt", json=body)
        if response.status_code == 400:
            try:
                rejection = response.json()
            except ValueError:
                raise ProviderError(
                    ErrorCode.WORKFLOW_REJECTED,
                    "ComfyUI rejected the workflow (HTTP 400, with a body that is not JSON)",
                    detail={"response": excerpt(response.text)},
                ) from None
            raise error_from_rejection(rejection)
        if response.status_code == 500 and response.headers.get("content-type", "").startswith("text/plain"):
            # ComfyUI answers a body it cannot parse with a bare 500; retrying elsewhere would not help.
            raise ProviderError(ErrorCode.WORKFLOW_REJECTED, "ComfyUI could not read the workflow (HTTP 500)")
        data = self._json(response, "POST /prompt")
        prompt_id = str(data.get("prompt_id", ""))
        if prompt_id != request.attempt_id:
            # An older server ignores prompt_id; track what it assigned.
            log.warning(
                "ComfyUI %s assigned prompt_id %s instead of %s", self.base_url, prompt_id, request.attempt_id
            )
        return RemoteHandle(backend_kind=KIND, remote_id=prompt_id or request.attempt_id)

    def object_info(self) -> dict[str, Any]:
        """The server's node catalogue: every class_type with its inputs and their allowed values."""
        data = self._json(self._request("GET", "/object_info"), "GET /object_info")
        if not isinstance(data, dict):
            raise ProviderError(ErrorCode.UNAVAILABLE, "ComfyUI sent an object_info that is not an object")
        return data

    def locate(self, handle: RemoteHandle) -> Place:
        """Where the prompt is now: 'pending', 'running', 'done' or 'unknown' (never seen, or lost in a restart)."""
        if self.history(handle) is not None:
            return "done"
        return self.queue_place(handle)

    def queue_place(self, handle: RemoteHandle) -> Place:
        queue = self._json(self._request("GET", "/queue"), "GET /queue")
        places: tuple[tuple[str, Place], ...] = (("queue_running", "running"), ("queue_pending", "pending"))
        for key, place in places:
            for item in queue.get(key, []):
                if len(item) > 1 and item[1] == handle.remote_id:
                    return place
        return "unknown"

    def history(self, handle: RemoteHandle) -> HistoryEntry | None:
        data = self._json(self._request("GET", f"/history/{handle.remote_id}"), "GET /history")
        raw = data.get(handle.remote_id) if isinstance(data, dict) else None
        return parse_history_entry(raw) if isinstance(raw, dict) else None

    def outcome(self, handle: RemoteHandle) -> ProgressEvent | None:
        entry = self.history(handle)
        if entry is None:
            return None
        if entry.status == "success":
            return ProgressEvent(EventKind.FINISHED)
        for name, data in entry.messages:
            if name == "execution_error":
                return ProgressEvent(EventKind.FAILED, error=error_from_execution(data))
            if name == "execution_interrupted":
                return ProgressEvent(
                    EventKind.FAILED,
                    error=ProviderError(ErrorCode.CANCELLED, "the render was interrupted on the server"),
                )
        return ProgressEvent(
            EventKind.FAILED,
            error=ProviderError(ErrorCode.EXECUTION_FAILED, "ComfyUI reports the render as failed"),
        )

    def outputs(self, handle: RemoteHandle) -> list[RemoteOutput]:
        deadline = self._clock() + self.timeouts.post_execution
        while True:
            entry = self.history(handle)
            if entry is not None and entry.outputs:
                return entry.outputs
            if self._clock() > deadline:
                if entry is None:
                    raise ProviderError(ErrorCode.LOST, "ComfyUI has no history for this render")
                raise ProviderError(ErrorCode.OUTPUT_INVALID, "the render finished without any output file")
            time.sleep(min(0.25, self.timeouts.poll_interval))

    def recover_outputs(self, *, prefix: str, reported: list[RemoteOutput]) -> list[RemoteOutput]:
        """Saved files of a render the server forgot: those its `executed` messages named, and those
        its save nodes wrote under our per-attempt prefix (ComfyUI numbers them `<prefix>_00001_.<ext>`),
        each confirmed on /view. An empty list means the render must run again."""
        found = [o for o in reported if o.folder_type == "output" and self._serves(o)]
        if found:
            return found
        subfolder, _, stem = prefix.rpartition("/")
        # Save nodes sharing a prefix share its counter (ComfyUI continues after the highest
        # number on disk, whatever the extension), so each number is tried in every extension.
        for counter in range(1, MAX_RECOVERED_FILES + 1):
            candidates = [
                RemoteOutput(
                    node_id="",
                    filename=f"{stem}_{counter:05}_.{extension}",
                    subfolder=subfolder,
                    folder_type="output",
                    kind=kind,
                    animated=kind in ("animated", "video"),
                )
                for extension, kind in RECOVERABLE_EXTENSIONS
            ]
            hits = [output for output in candidates if self._serves(output)]
            if not hits:
                break
            found.extend(hits)
        return found

    def _serves(self, output: RemoteOutput) -> bool:
        params = {"filename": output.filename, "subfolder": output.subfolder, "type": output.folder_type}
        return self._request("HEAD", "/view", params=params).status_code == 200

    @contextmanager
    def fetch(self, output: RemoteOutput) -> Iterator[Iterator[bytes]]:
        params = {"filename": output.filename, "subfolder": output.subfolder, "type": output.folder_type}
        try:
            with self._http.stream("GET", "/view", params=params) as response:
                if response.status_code != 200:
                    raise ProviderError(
                        ErrorCode.OUTPUT_INVALID,
                        f"ComfyUI answered {response.status_code} for output {plain(output.filename, 80)!r}",
                    )
                yield response.iter_bytes(chunk_size=64 * 1024)
        except httpx.TransportError as exc:
            raise ProviderError(
                ErrorCode.UNAVAILABLE,
                f"fetching {plain(output.filename, 80)!r} failed: {exc.__class__.__name__}",
            ) from exc

    def cancel(self, handle: RemoteHandle) -> None:
        where = self.locate(handle)
        if where == "pending":
            self._request("POST", "/queue", json={"delete": [handle.remote_id]})
        elif where == "running":
            # Targeted: the server ignores it unless this prompt is the one running.
            self._request("POST", "/interrupt", json={"prompt_id": handle.remote_id})

    def health(self) -> BackendHealth:
        try:
            stats = self._json(self._request("GET", "/system_stats"), "GET /system_stats")
            queue = self._json(self._request("GET", "/queue"), "GET /queue")
        except ProviderError as exc:
            return BackendHealth(reachable=False, message=exc.message)
        system = stats.get("system") if isinstance(stats, dict) else None
        version = system.get("comfyui_version") if isinstance(system, dict) else None
        return BackendHealth(
            reachable=True,
            # Only a version number of the answer reaches the health message.
            message=f"ComfyUI {version if isinstance(version, str) and VERSION.fullmatch(version) else '?'}",
            queue_running=len(queue.get("queue_running", [])),
            queue_pending=len(queue.get("queue_pending", [])),
            devices=list(stats.get("devices") or []),
        )

"""The provider contract: one interface for every render backend.

Pure Python (no Django). The rest of the studio talks to a backend only through
`Provider`, and every failure reaches it as a `ProviderError` with a code from
`ErrorCode`, a message a person can act on, and a retry class.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, Self, runtime_checkable


class ErrorCode(enum.StrEnum):
    UNAVAILABLE = "unavailable"
    TIMEOUT = "timeout"
    WORKFLOW_REJECTED = "workflow_rejected"
    MISSING_NODE = "missing_node"
    MISSING_MODEL = "missing_model"
    OUT_OF_MEMORY = "out_of_memory"
    EXECUTION_FAILED = "execution_failed"
    CANCELLED = "cancelled"
    AUTH_FAILED = "auth_failed"
    RATE_LIMITED = "rate_limited"
    OUTPUT_INVALID = "output_invalid"
    CONFIG_INVALID = "config_invalid"
    LOST = "lost"
    INTERNAL = "internal"


class RetryClass(enum.StrEnum):
    SAME_BACKEND = "same_backend"
    ANOTHER_BACKEND = "another_backend"
    NEVER = "never"


DEFAULT_RETRY: dict[ErrorCode, RetryClass] = {
    ErrorCode.UNAVAILABLE: RetryClass.ANOTHER_BACKEND,
    ErrorCode.TIMEOUT: RetryClass.ANOTHER_BACKEND,
    ErrorCode.WORKFLOW_REJECTED: RetryClass.NEVER,
    ErrorCode.MISSING_NODE: RetryClass.NEVER,
    ErrorCode.MISSING_MODEL: RetryClass.ANOTHER_BACKEND,
    ErrorCode.OUT_OF_MEMORY: RetryClass.ANOTHER_BACKEND,
    ErrorCode.EXECUTION_FAILED: RetryClass.NEVER,
    ErrorCode.CANCELLED: RetryClass.NEVER,
    ErrorCode.AUTH_FAILED: RetryClass.NEVER,
    ErrorCode.RATE_LIMITED: RetryClass.SAME_BACKEND,
    ErrorCode.OUTPUT_INVALID: RetryClass.NEVER,
    ErrorCode.CONFIG_INVALID: RetryClass.NEVER,
    ErrorCode.LOST: RetryClass.ANOTHER_BACKEND,
    ErrorCode.INTERNAL: RetryClass.NEVER,
}


class ProviderError(Exception):
    """A failure a user can read: a code, a message, and where to retry."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        retry: RetryClass | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry = retry if retry is not None else DEFAULT_RETRY[code]
        self.detail = detail or {}

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


# Longest string kept as is in a backend's answer recorded for staff (an attempt's detail).
EXCERPT_CHARS = 200


def plain(text: object, limit: int = 200) -> str:
    """Text a backend sent, fit for a message: one line of printable characters, at most `limit`.

    For the parsed fields a person needs (a node's error, a worker's error text);
    a response body never goes into a message at all.
    """
    flat = " ".join("".join(ch if ch.isprintable() else " " for ch in str(text)).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def excerpt(value: Any, *, depth: int = 0) -> Any:
    """A backend's answer bounded for an attempt's record: long strings (base64 images) cut,
    at most 50 items per list or object, 8 levels deep."""
    if isinstance(value, str):
        if len(value) <= EXCERPT_CHARS:
            return value
        return f"{value[:EXCERPT_CHARS]}… ({len(value)} characters)"
    if isinstance(value, dict | list) and depth >= 8:
        return "…"
    if isinstance(value, dict):
        return {str(k)[:EXCERPT_CHARS]: excerpt(v, depth=depth + 1) for k, v in list(value.items())[:50]}
    if isinstance(value, list):
        return [excerpt(v, depth=depth + 1) for v in value[:50]]
    return value


@dataclass(frozen=True)
class InputImage:
    """An image the workflow loads: uploaded first, then named in `node_id`'s `input_name`."""

    node_id: str
    input_name: str
    filename: str
    content: bytes


@dataclass(frozen=True)
class RenderRequest:
    """What to render: a bound workflow, its input images, and the id the attempt is known by."""

    attempt_id: str
    workflow: dict[str, Any]
    images: tuple[InputImage, ...] = ()


@dataclass(frozen=True)
class RemoteHandle:
    """Where a render lives on its backend; stored before anything waits on it."""

    backend_kind: str
    remote_id: str


class EventKind(enum.StrEnum):
    QUEUED = "queued"
    STARTED = "started"
    NODE = "node"
    PROGRESS = "progress"
    PREVIEW = "preview"
    # The server says the run succeeded; its outputs may not be readable yet (FINISHED follows).
    SUCCESS = "success"
    FINISHED = "finished"
    FAILED = "failed"
    # A node wrote files (ComfyUI's `executed`): known before /history has them, and after a
    # restart has emptied /history.
    OUTPUT = "output"


@dataclass(frozen=True)
class ProgressEvent:
    kind: EventKind
    node: str | None = None
    value: int | None = None
    maximum: int | None = None
    preview: bytes | None = None
    preview_type: str | None = None
    error: ProviderError | None = None
    outputs: tuple[RemoteOutput, ...] = ()


@dataclass(frozen=True)
class RemoteOutput:
    """One file a render produced, as the backend names it."""

    node_id: str
    filename: str
    subfolder: str
    folder_type: str
    kind: str  # image | animated | video | audio | text
    animated: bool = False
    # Where fetch finds the bytes when the backend hands them over itself rather than
    # serving them by name (RunPod: an S3 URL, or the index of a base64 image in its answer).
    source: str = ""


VIDEO_EXTENSIONS = (".mp4", ".webm", ".mov", ".mkv", ".m4v")
ANIMATION_EXTENSIONS = (".webp", ".gif", ".png", ".apng")
AUDIO_EXTENSIONS = (".flac", ".mp3", ".opus", ".ogg", ".wav", ".m4a")


def output_kind(listed_as: str, filename: str, *, animated: bool) -> str:
    """What an output is, as far as its listing tells: ComfyUI reports animated images and video
    alike (`animated: [true]`), so the extension decides between them. The file's bytes are
    checked when it is fetched (generation.artifact_check)."""
    name = filename.lower()
    if listed_as in ("audio", "text"):
        return listed_as
    if name.endswith(AUDIO_EXTENSIONS):
        return "audio"
    if name.endswith(VIDEO_EXTENSIONS):
        return "video"
    if listed_as == "video":
        return "animated" if name.endswith(ANIMATION_EXTENSIONS) else "video"
    return "animated" if animated and name.endswith(ANIMATION_EXTENSIONS) else "image"


@dataclass
class BackendHealth:
    reachable: bool
    message: str
    queue_running: int = 0
    queue_pending: int = 0
    devices: list[dict[str, Any]] = field(default_factory=list)


# Where a render is on its backend, as `Provider.locate` and `Provider.queue_place` say.
Place = Literal["pending", "running", "done", "unknown"]


@dataclass(frozen=True)
class BackendConfig:
    """Everything a provider is built from: the backend's row and the queue policy in force, as
    plain values (the studio's Django side fills it in; `generation.providers.registry` builds)."""

    kind: str
    name: str
    base_url: str
    # RunPod: the endpoint id in /v2/{endpoint}/…
    endpoint_id: str = ""
    # Sent only as the Authorization header; never shown (repr=False keeps it out of logs).
    api_key: str = field(default="", repr=False)
    # ComfyUI: the client id prompts are sent under; the render watcher's socket holds it.
    client_id: str = ""
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 30.0
    poll_interval_s: float = 2.0
    post_execution_timeout_s: float = 30.0
    max_output_bytes: int = 200 * 1024 * 1024


@runtime_checkable
class Provider(Protocol):
    """One render backend, as the studio uses it. Every method that talks to the backend raises
    nothing but `ProviderError` (with a code from `ErrorCode`); each says which codes it uses for
    what. A provider is a context manager: leaving it closes its connections.

    A provider does not follow renders: that is the render watcher's loop, which asks `outcome`
    and `queue_place` through `generation.providers.checks` and, for ComfyUI, listens on one
    socket per backend (`generation.providers.comfyui_follow`).
    """

    # The backend kind it speaks ("comfyui", "runpod"): the key it is registered under.
    kind: str
    # What went wrong on the way and how it was worked around (a retried 429, a socket that
    # dropped); they go into the attempt's telemetry record as fallback notes.
    fallback_notes: list[str]
    # What the backend itself reported about the last render it was asked about (RunPod:
    # runpod_status, delay_ms, execution_ms, worker_id); empty where it reports nothing.
    telemetry: dict[str, Any]
    # The last answer about a render, bounded (`excerpt`), kept with an OUTPUT_INVALID failure
    # so staff can see what came back; None where there is nothing worth keeping.
    last_answer: Any

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None: ...

    def close(self) -> None:
        """Close its connections; never raises."""
        ...

    def submit(self, request: RenderRequest) -> RemoteHandle:
        """Send the render; the handle it returns is recorded before anything waits on it.

        Refusals: WORKFLOW_REJECTED, MISSING_NODE, MISSING_MODEL (naming node and input),
        AUTH_FAILED, RATE_LIMITED, CONFIG_INVALID. UNAVAILABLE or TIMEOUT with
        `detail["sent"] is False` means the request never left; without it, the backend may have
        the render, and `locate` tells before anything is sent again.
        """
        ...

    def locate(self, handle: RemoteHandle) -> Place:
        """Where the render is now; "unknown" when the backend never had it or forgot it.
        UNAVAILABLE (and the other transport codes) when the backend cannot tell."""
        ...

    def outcome(self, handle: RemoteHandle) -> ProgressEvent | None:
        """How the render ended: FINISHED (its outputs can be listed), FAILED with the render's
        own error (EXECUTION_FAILED, OUT_OF_MEMORY, CANCELLED, TIMEOUT, LOST, …), or None while
        it has not ended. Raises when the backend cannot be asked (UNAVAILABLE, RATE_LIMITED,
        AUTH_FAILED, CONFIG_INVALID)."""
        ...

    def queue_place(self, handle: RemoteHandle) -> Place:
        """Where a render that has not ended waits: "pending", "running", or "unknown" when the
        backend does not list it. Asked right after `outcome` returned None; raises like it."""
        ...

    def outputs(self, handle: RemoteHandle) -> list[RemoteOutput]:
        """Every file a finished render produced, waiting out the short race between the end
        signal and the outputs being readable (up to the post-execution timeout). LOST when the
        backend has no record of the render, OUTPUT_INVALID when it ended without outputs or
        names one unsafely."""
        ...

    def recover_outputs(self, *, prefix: str, reported: list[RemoteOutput]) -> list[RemoteOutput]:
        """The files a render wrote that the backend still serves, when it no longer remembers the
        render itself (a restart): those its messages reported, and those under its own prefix.
        An empty list means the render must run again."""
        ...

    def fetch(self, output: RemoteOutput) -> AbstractContextManager[Iterator[bytes]]:
        """The output's bytes as a stream of chunks, never the whole file in memory.
        OUTPUT_INVALID when the backend will not serve it, UNAVAILABLE when the transfer breaks."""
        ...

    def cancel(self, handle: RemoteHandle) -> None:
        """Stop the render wherever it is (waiting or running); nothing when it has ended."""
        ...

    def health(self) -> BackendHealth:
        """How the backend is: reachable or not with a short reason, queue depth, GPU devices.
        Never raises for an unreachable backend: that is an answer."""
        ...

    def object_info(self) -> dict[str, Any]:
        """The node catalogue (ComfyUI's /object_info); CONFIG_INVALID where the backend kind
        has none (RunPod serverless)."""
        ...

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
from typing import Any, Protocol


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
    kind: str  # image | video | audio | text
    animated: bool = False
    # Where fetch finds the bytes when the backend hands them over itself rather than
    # serving them by name (RunPod: an S3 URL, or the index of a base64 image in its answer).
    source: str = ""


@dataclass
class BackendHealth:
    reachable: bool
    message: str
    queue_running: int = 0
    queue_pending: int = 0
    devices: list[dict[str, Any]] = field(default_factory=list)


class Provider(Protocol):
    def submit(self, request: RenderRequest) -> RemoteHandle: ...

    def events(self, handle: RemoteHandle) -> Iterator[ProgressEvent]: ...

    def outputs(self, handle: RemoteHandle) -> list[RemoteOutput]: ...

    def recover_outputs(self, *, prefix: str, reported: list[RemoteOutput]) -> list[RemoteOutput]:
        """The files a render wrote that the backend still serves, when it no longer remembers the
        render itself (a restart): those its messages reported, and those under its own prefix."""
        ...

    def fetch(self, output: RemoteOutput) -> AbstractContextManager[Iterator[bytes]]: ...

    def cancel(self, handle: RemoteHandle) -> None: ...

    def health(self) -> BackendHealth: ...

"""RunPod serverless endpoints running the worker-comfyui image. Pure Python, no Django.

RunPod assigns the job id, so it is known only once POST /run answers; the
caller records it before anything waits, and a restarted worker asks /status
for that id instead of submitting again. RunPod sends nothing unasked: the
render watcher's PollWatch asks `outcome` (GET /status) for every RunPod
render at once, on the queue policy's interval (generation.providers.checks). Results expire 30 minutes after completion,
so outputs are fetched as soon as a job is COMPLETED: base64 images are decoded
chunk by chunk into storage, S3 URLs streamed.

The API key goes only into the Authorization header of requests to the endpoint:
never into a message, a detail, a log line or a request to an S3 URL.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

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
from generation.providers.url_policy import DOWNLOAD, RUNPOD, GuardedTransport, check_url
from generation.workflow_validation import MODEL_INPUTS

log = logging.getLogger(__name__)

KIND = "runpod"
# POST /run refuses bodies over 10 MB (documented; the status code is not).
RUN_PAYLOAD_LIMIT = 10 * 1024 * 1024
TERMINAL = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"})
PLACES: dict[str, Place] = {"IN_QUEUE": "pending", "IN_PROGRESS": "running", "RUNNING": "running"}
# base64 characters per decoded chunk: a multiple of 4, about 64 KiB decoded.
B64_CHUNK = 4 * 16 * 1024
# Worker counts /health reports.
WORKER_STATES = ("idle", "initializing", "ready", "running", "throttled", "unhealthy")


@dataclass(frozen=True)
class Timeouts:
    connect: float = 5.0
    read: float = 30.0
    # How long one call may wait out 429s (honouring Retry-After) before it gives up as rate_limited.
    rate_limit_wait: float = 5.0


@dataclass(frozen=True)
class JobStatus:
    """A job object as /status, /run and /cancel return it."""

    job_id: str
    status: str
    delay_ms: int | None
    execution_ms: int | None
    worker_id: str | None
    output: Any
    error: str | None
    raw: dict[str, Any]

    @property
    def place(self) -> Place:
        if self.status in TERMINAL:
            return "done"
        return PLACES.get(self.status, "pending")


@dataclass(frozen=True)
class OutputImage:
    filename: str
    kind: str  # base64 | s3_url
    data: str


def _ms(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def parse_status(body: Any) -> JobStatus:
    if not isinstance(body, dict) or not isinstance(body.get("status"), str):
        raise ProviderError(
            ErrorCode.UNAVAILABLE,
            "RunPod answered with something that is not a job object",
            detail={"response": excerpt(body)},
        )
    error = body.get("error")
    return JobStatus(
        job_id=str(body.get("id", "")),
        status=body["status"],
        delay_ms=_ms(body.get("delayTime")),
        execution_ms=_ms(body.get("executionTime")),
        worker_id=str(body["workerId"]) if body.get("workerId") else None,
        output=body.get("output"),
        error=error if isinstance(error, str) else (json.dumps(error) if error is not None else None),
        raw=body,
    )


def _details(output: Any) -> list[str]:
    if isinstance(output, dict) and isinstance(output.get("details"), list):
        return [str(item) for item in output["details"]]
    return []


def error_from_worker(error: str, output: Any = None) -> ProviderError:
    """A FAILED job's `error` (and worker-comfyui's `output.details`) as one ProviderError.

    worker-comfyui returns its failures as strings; the matching follows the texts
    it is known to send (tests/data/runpod/worker-comfyui/errors.scenarios.json).
    """
    details = _details(output)
    text = error
    if error.startswith("{"):
        # The handler raised: `error` is a JSON string with the exception's type and message.
        try:
            info = json.loads(error)
        except ValueError:
            info = None
        if isinstance(info, dict) and "error_message" in info:
            text = f"{info.get('error_type', 'error')}: {info['error_message']}"
            details.append(str(info.get("error_traceback", ""))[-2000:])
    everything = " ".join([text, *details])
    lowered = everything.lower()
    shown = plain("; ".join([text, *[d for d in details if not d.startswith("Traceback")]]), 500)
    detail = {"error": excerpt(error), "details": excerpt(details)}
    message = f"the RunPod worker failed: {shown}"
    if "the custom node may not be installed" in lowered or (
        # Older ComfyUI servers (and the preview server) word an unknown class this way.
        "cannot execute because node" in lowered and "does not exist" in lowered
    ):
        return ProviderError(ErrorCode.MISSING_NODE, message, detail=detail)
    if "workflow validation failed" in lowered:
        model_miss = "value_not_in_list" in lowered and any(name in everything for name in MODEL_INPUTS)
        return ProviderError(
            ErrorCode.MISSING_MODEL if model_miss else ErrorCode.WORKFLOW_REJECTED, message, detail=detail
        )
    if "out of memory" in lowered or "outofmemory" in lowered:
        return ProviderError(ErrorCode.OUT_OF_MEMORY, message, detail=detail)
    if "workflow execution error" in lowered:
        return ProviderError(ErrorCode.EXECUTION_FAILED, message, detail=detail)
    if any(
        marker in lowered
        for marker in (
            "not reachable after multiple retries",
            "websocket communication error",
            "http communication error",
        )
    ):
        return ProviderError(ErrorCode.UNAVAILABLE, message, detail=detail)
    if "error uploading" in lowered and "s3" in lowered:
        return ProviderError(ErrorCode.CONFIG_INVALID, message, detail=detail)
    if any(
        marker in lowered
        for marker in (
            "missing 'workflow' parameter",
            "'images' must be a list",
            "failed to upload one or more input images",
            "please provide input",
        )
    ):
        return ProviderError(ErrorCode.WORKFLOW_REJECTED, message, detail=detail)
    return ProviderError(ErrorCode.EXECUTION_FAILED, message, detail=detail)


def outcome_of(status: JobStatus) -> ProgressEvent | None:
    """The end of a job as an event, or None while it is queued or running."""
    if status.status == "COMPLETED":
        return ProgressEvent(EventKind.FINISHED)
    if status.status == "FAILED":
        return ProgressEvent(
            EventKind.FAILED, error=error_from_worker(status.error or "no error given", status.output)
        )
    if status.status == "CANCELLED":
        return ProgressEvent(
            EventKind.FAILED, error=ProviderError(ErrorCode.CANCELLED, "the job was cancelled on RunPod")
        )
    if status.status == "TIMED_OUT":
        return ProgressEvent(
            EventKind.FAILED,
            error=ProviderError(
                ErrorCode.TIMEOUT,
                "RunPod timed the job out (it ran past the endpoint's execution timeout, or waited past its TTL)",
            ),
        )
    return None


def parse_images(output: Any) -> list[OutputImage]:
    """Every image of a COMPLETED job's output, in each shape worker-comfyui returns.

    5.0.0 and later: {"images": [{"filename", "type": "base64"|"s3_url", "data"}], "errors"?};
    before 5.0.0: {"status": "success", "message": <base64 or URL>}, one image only.
    """

    def invalid(why: str) -> ProviderError:
        return ProviderError(
            ErrorCode.OUTPUT_INVALID, f"RunPod's answer {why}", detail={"output": excerpt(output)}
        )

    if not isinstance(output, dict):
        raise invalid("has no output object" if output is None else "has an output that is not an object")
    if "images" not in output and isinstance(output.get("message"), str):
        if output.get("status") != "success":
            raise invalid("reports a failure instead of an image (the answer is kept with the attempt)")
        message = output["message"]
        kind = "s3_url" if message.startswith(("http://", "https://")) else "base64"
        return [_checked(OutputImage("output.png", kind, message), invalid)]
    images = output.get("images")
    if not isinstance(images, list):
        raise invalid("has no list of images")
    if not images:
        raise invalid("lists no image")
    found = []
    for item in images:
        if not isinstance(item, dict) or not all(
            isinstance(item.get(k), str) for k in ("filename", "type", "data")
        ):
            raise invalid("lists an image without filename, type and data")
        found.append(_checked(OutputImage(item["filename"], item["type"], item["data"]), invalid))
    return found


def _checked(image: OutputImage, invalid: Callable[[str], ProviderError]) -> OutputImage:
    name = plain(image.filename, 80)
    if not image.data:
        raise invalid(f"has an empty image {name!r}")
    if image.kind == "s3_url":
        if urlsplit(image.data).scheme not in ("http", "https"):
            # With BUCKET_ENDPOINT_URL but no keys the worker saves locally and sends its own path.
            raise invalid(f"gives {name!r} as an s3_url that is not an http(s) URL")
    elif image.kind != "base64":
        raise invalid(f"has an image {name!r} of unknown type {plain(image.kind, 40)!r}")
    return image


def decoded_size(data: str) -> int:
    body = data.split(",", 1)[1] if data.startswith("data:") else data
    return len(body) * 3 // 4


def from_config(config: BackendConfig) -> RunPodProvider:
    """The provider for a RunPod serverless endpoint; AUTH_FAILED when the backend has no key."""
    if not config.api_key:
        raise ProviderError(
            ErrorCode.AUTH_FAILED, f"backend {config.name} has no API key; set one in the admin"
        )
    return RunPodProvider(
        config.base_url,
        config.endpoint_id,
        config.api_key,
        timeouts=Timeouts(connect=config.connect_timeout_s, read=config.read_timeout_s),
        max_output_bytes=config.max_output_bytes,
    )


class RunPodProvider:
    kind = KIND

    def __init__(
        self,
        base_url: str,
        endpoint_id: str,
        api_key: str,
        *,
        timeouts: Timeouts | None = None,
        max_output_bytes: int = 200 * 1024 * 1024,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """`base_url` is the API base, https://api.runpod.ai/v2 for the cloud. The key is sent only
        there, and only over https unless the endpoint is on loopback (url_policy.RUNPOD)."""
        self.base_url = base_url.rstrip("/")
        check_url(self.base_url, RUNPOD)
        self.endpoint_id = endpoint_id
        self.timeouts = timeouts or Timeouts()
        self.max_output_bytes = max_output_bytes
        self._sleep = sleep
        timeout = httpx.Timeout(self.timeouts.read, connect=self.timeouts.connect)
        self._http = httpx.Client(
            base_url=f"{self.base_url}/{endpoint_id}",
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=timeout,
            transport=transport or GuardedTransport(RUNPOD),
            follow_redirects=False,
        )
        # S3 URLs are presigned: they get no Authorization header, so the key never leaves for them.
        # They come from RunPod's answer, so each one (and each redirect) is checked at connect too.
        self._downloads = httpx.Client(
            timeout=timeout, transport=transport or GuardedTransport(DOWNLOAD), follow_redirects=True
        )
        self._images: dict[str, OutputImage] = {}
        self._statuses: dict[str, JobStatus] = {}
        self.fallback_notes: list[str] = []
        # What RunPod told about the last job asked for: delayTime, executionTime (ms), worker.
        self.telemetry: dict[str, Any] = {}
        self.last_answer: Any = None

    def __repr__(self) -> str:
        return f"RunPodProvider({self.base_url!r}, {self.endpoint_id!r})"

    # -- plumbing ---------------------------------------------------------
    def close(self) -> None:
        self._http.close()
        self._downloads.close()

    def __enter__(self) -> RunPodProvider:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def where(self) -> str:
        return f"RunPod endpoint {self.endpoint_id}"

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request; 429s are waited out while Retry-After fits the rate-limit budget."""
        waited = 0.0
        while True:
            try:
                response = self._http.request(method, path, **kwargs)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                raise ProviderError(
                    ErrorCode.UNAVAILABLE,
                    f"{self.where} at {self.base_url} cannot be reached: {exc.__class__.__name__}",
                    detail={"sent": False},
                ) from None
            except httpx.TimeoutException:
                raise ProviderError(
                    ErrorCode.UNAVAILABLE, f"{self.where} did not answer in time ({method} {path})"
                ) from None
            except httpx.TransportError as exc:
                raise ProviderError(
                    ErrorCode.UNAVAILABLE, f"{self.where} cannot be reached: {exc.__class__.__name__}"
                ) from None
            if response.status_code != 429:
                return response
            pause = _retry_after(response)
            if waited + pause > self.timeouts.rate_limit_wait:
                raise ProviderError(
                    ErrorCode.RATE_LIMITED,
                    f"{self.where} is rate limiting the studio (HTTP 429); asked to wait {pause:.0f} s",
                    detail={"retry_after": pause, "sent": False},
                )
            self._note(f"rate limited (HTTP 429) on {method} {path}; waited {pause:.1f} s")
            self._sleep(pause)
            waited += pause

    def _json(self, response: httpx.Response, what: str) -> Any:
        code = response.status_code
        if code == 200:
            try:
                return response.json()
            except ValueError:
                raise ProviderError(
                    ErrorCode.UNAVAILABLE, f"{self.where} sent a body that is not JSON for {what}"
                ) from None
        if code in (401, 403):
            raise ProviderError(
                ErrorCode.AUTH_FAILED,
                f"{self.where} refused the API key (HTTP {code}) for {what}; set a valid key on the backend",
            )
        if code == 404:
            raise ProviderError(
                ErrorCode.CONFIG_INVALID,
                f"{self.where} does not exist at {self.base_url} (HTTP 404 for {what}); check the endpoint id",
            )
        if code == 413:
            raise ProviderError(
                ErrorCode.WORKFLOW_REJECTED, f"{self.where} refused the request as too large (HTTP 413)"
            )
        if 400 <= code < 500:
            # RunPod's answer stays out of the message (it reaches pages); staff find it in the detail.
            raise ProviderError(
                ErrorCode.WORKFLOW_REJECTED,
                f"{self.where} refused {what} (HTTP {code})",
                detail={"response": _answer_of(response)},
            )
        raise ProviderError(ErrorCode.UNAVAILABLE, f"{self.where} answered HTTP {code} to {what}")

    def _note(self, note: str) -> None:
        if note not in self.fallback_notes:
            self.fallback_notes.append(note)
            log.info("%s: %s", self.where, note)

    # -- the contract -----------------------------------------------------
    def submit(self, request: RenderRequest) -> RemoteHandle:
        """POST /run; the handle is RunPod's job id, which the caller records before waiting."""
        workflow = request.workflow
        images = []
        if request.images:
            workflow = copy.deepcopy(workflow)
            for image in request.images:
                # worker-comfyui uploads each image under this name before it queues the prompt.
                name = f"{request.attempt_id}-{image.filename}"
                workflow[image.node_id]["inputs"][image.input_name] = name
                images.append({"name": name, "image": base64.b64encode(image.content).decode("ascii")})
        job_input: dict[str, Any] = {"workflow": workflow}
        if images:
            job_input["images"] = images
        body = json.dumps({"input": job_input}, separators=(",", ":")).encode()
        if len(body) > RUN_PAYLOAD_LIMIT:
            raise ProviderError(
                ErrorCode.WORKFLOW_REJECTED,
                f"this render is {len(body) / 1024 / 1024:.1f} MB as a RunPod request, over the 10 MB that "
                "/run accepts; use smaller input images or a ComfyUI backend",
                detail={"sent": False, "bytes": len(body)},
            )
        response = self._send("POST", "/run", content=body, headers={"Content-Type": "application/json"})
        status = parse_status(self._json(response, "POST /run"))
        if not status.job_id:
            raise ProviderError(ErrorCode.UNAVAILABLE, f"{self.where} accepted the job but sent no id")
        return RemoteHandle(backend_kind=KIND, remote_id=status.job_id)

    def status(self, handle: RemoteHandle) -> JobStatus:
        """GET /status. A 404 is a job RunPod no longer has (TTL or result retention) → LOST,
        unless the endpoint itself is gone (its /health is 404 too) → CONFIG_INVALID."""
        response = self._send("GET", f"/status/{handle.remote_id}")
        if response.status_code == 404:
            if self._send("GET", "/health").status_code == 404:
                self._json(response, "GET /status")  # raises CONFIG_INVALID
            raise ProviderError(
                ErrorCode.LOST,
                f"{self.where} no longer knows job {handle.remote_id}: RunPod deletes results 30 minutes "
                "after completion and jobs past their TTL",
            )
        body = self._json(response, "GET /status")
        status = parse_status(body)
        self.last_answer = excerpt(body)
        self._statuses[handle.remote_id] = status
        self.telemetry = {
            key: value
            for key, value in (
                ("runpod_status", status.status),
                ("delay_ms", status.delay_ms),
                ("execution_ms", status.execution_ms),
                ("worker_id", status.worker_id),
            )
            if value is not None
        }
        return status

    def outcome(self, handle: RemoteHandle) -> ProgressEvent | None:
        try:
            return outcome_of(self.status(handle))
        except ProviderError as exc:
            if exc.code == ErrorCode.LOST:
                return ProgressEvent(EventKind.FAILED, error=exc)
            raise

    def queue_place(self, handle: RemoteHandle) -> Place:
        status = self._statuses.get(handle.remote_id) or self.status(handle)
        return status.place

    def locate(self, handle: RemoteHandle) -> Place:
        try:
            return self.status(handle).place
        except ProviderError as exc:
            if exc.code in (ErrorCode.LOST, ErrorCode.CONFIG_INVALID):
                return "unknown"
            raise

    def recover_outputs(self, *, prefix: str, reported: list[RemoteOutput]) -> list[RemoteOutput]:
        # A job RunPod no longer knows has no files anywhere we could read.
        return []

    def outputs(self, handle: RemoteHandle) -> list[RemoteOutput]:
        status = self.status(handle)
        if status.status != "COMPLETED":
            raise ProviderError(
                ErrorCode.OUTPUT_INVALID, f"the job is {status.status}, not COMPLETED; it has no outputs"
            )
        try:
            images = parse_images(status.output)
        except ProviderError as exc:
            exc.detail["response"] = self.last_answer
            raise
        if isinstance(status.output, dict) and status.output.get("errors"):
            self._note(f"the worker reported: {plain('; '.join(map(str, status.output['errors'])), 300)}")
        found = []
        for index, image in enumerate(images):
            if image.kind == "base64" and decoded_size(image.data) > self.max_output_bytes:
                raise ProviderError(
                    ErrorCode.OUTPUT_INVALID,
                    f"output {plain(image.filename, 80)!r} is larger than {self.max_output_bytes} bytes",
                    detail={"response": self.last_answer},
                )
            key = f"{image.kind}:{index}"
            self._images[key] = image
            found.append(
                RemoteOutput(
                    node_id="",
                    filename=image.filename,
                    subfolder="",
                    folder_type="output",
                    # The worker lists every file under `images`; the bytes are checked on fetch.
                    kind=output_kind(
                        "images", image.filename, animated=image.filename.lower().endswith((".webp", ".gif"))
                    ),
                    source=key,
                )
            )
        return found

    @contextmanager
    def fetch(self, output: RemoteOutput) -> Iterator[Iterator[bytes]]:
        image = self._images.get(output.source)
        if image is None:
            raise ProviderError(
                ErrorCode.INTERNAL, f"output {plain(output.filename, 80)!r} was not listed by outputs()"
            )
        if image.kind == "base64":
            yield _decode_chunks(image)
            return
        try:
            with self._downloads.stream("GET", image.data) as response:
                if response.status_code != 200:
                    raise ProviderError(
                        ErrorCode.OUTPUT_INVALID,
                        f"the S3 URL of output {plain(output.filename, 80)!r} answered HTTP {response.status_code}",
                    )
                yield response.iter_bytes(chunk_size=64 * 1024)
        except httpx.TransportError as exc:
            raise ProviderError(
                ErrorCode.UNAVAILABLE,
                f"fetching {plain(output.filename, 80)!r} from S3 failed: {exc.__class__.__name__}",
            ) from None

    def cancel(self, handle: RemoteHandle) -> None:
        response = self._send("POST", f"/cancel/{handle.remote_id}")
        if response.status_code == 404:
            return  # gone already: nothing left to stop
        self._json(response, "POST /cancel")

    def health(self) -> BackendHealth:
        try:
            body = self._json(self._send("GET", "/health"), "GET /health")
        except ProviderError as exc:
            return BackendHealth(reachable=False, message=exc.message)
        jobs = body.get("jobs") if isinstance(body, dict) else None
        workers = body.get("workers") if isinstance(body, dict) else None
        jobs = jobs if isinstance(jobs, dict) else {}
        workers = workers if isinstance(workers, dict) else {}
        # Only the counts RunPod documents: nothing else of the answer reaches the health message.
        counts = ", ".join(f"{k} {v}" for k in WORKER_STATES if isinstance(v := workers.get(k), int))
        return BackendHealth(
            reachable=True,
            message=f"{self.where}: workers {counts or 'none reported'}",
            queue_running=_count(jobs.get("inProgress")),
            queue_pending=_count(jobs.get("inQueue")),
        )

    def object_info(self) -> dict[str, Any]:
        raise ProviderError(
            ErrorCode.CONFIG_INVALID,
            f"{self.where} has no node catalogue: RunPod serverless does not expose ComfyUI's /object_info",
        )


def _decode_chunks(image: OutputImage) -> Iterator[bytes]:
    data = image.data.split(",", 1)[1] if image.data.startswith("data:") else image.data
    for start in range(0, len(data), B64_CHUNK):
        try:
            yield base64.b64decode(data[start : start + B64_CHUNK], validate=True)
        except (binascii.Error, ValueError):
            raise ProviderError(
                ErrorCode.OUTPUT_INVALID, f"output {plain(image.filename, 80)!r} is not valid base64"
            ) from None


def _retry_after(response: httpx.Response) -> float:
    try:
        return max(0.0, float(response.headers.get("Retry-After", "1")))
    except ValueError:
        return 1.0


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _answer_of(response: httpx.Response) -> Any:
    """An answer kept for staff in an error's detail, bounded."""
    try:
        return excerpt(response.json())
    except ValueError:
        return excerpt(response.text)

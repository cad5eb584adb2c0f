"""The aiohttp application: RunPod's serverless API for one endpoint, on loopback.

Paths, methods, statuses, fields and auth follow the cloud API (not the SDK's
local test server, which differs in all of them): /v2/{endpoint}/run, /runsync,
/status/{id} and /stream/{id} (GET), /cancel/{id}, /retry/{id}, /purge-queue
(POST), /health (GET); `Authorization: Bearer <key>` or the bare key, else 401;
an unknown endpoint or job is 404; error bodies are {"error": ...} and a 429
carries Retry-After. Jobs run on `workers` workers, each the way worker-comfyui
runs one, against a ComfyUI-compatible server.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .jobs import Job, JobTable
from .knobs import NODE_FAILURE, Knobs, crash_error, malformed_output
from .worker import ComfyWorker, S3Target

log = logging.getLogger(__name__)

RUN_LIMIT = 10 * 1024 * 1024
RUNSYNC_LIMIT = 20 * 1024 * 1024
RUNSYNC_DEFAULT_WAIT_MS = 90_000


@dataclass(frozen=True)
class EndpointSettings:
    comfyui_url: str
    api_key: str
    endpoint_id: str = "local"
    workers: int = 1
    execution_timeout_ms: int = 600_000
    default_ttl_ms: int = 86_400_000
    result_retention_s: float = 1800.0
    s3: S3Target | None = None
    test_knobs: bool = False


@dataclass
class State:
    settings: EndpointSettings
    table: JobTable
    knobs: Knobs
    worker: ComfyWorker
    loops: list[asyncio.Task[None]] = field(default_factory=list)


STATE = web.AppKey("state", State)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers or None)


def _key_of(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    return header[7:] if header.lower().startswith("bearer ") else header


@web.middleware
async def cloud_rules(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Auth, the endpoint id, and the test-only rate limit, in the order the cloud applies them."""
    state = request.app[STATE]
    path = request.path
    if not (path.startswith("/v2/") or path.startswith("/_test/")):
        return _error(404, "Not Found")
    if not hmac.compare_digest(_key_of(request).encode(), state.settings.api_key.encode()):
        return _error(401, "Unauthorized")
    if path.startswith("/_test/"):
        if not state.knobs.enabled:
            return _error(404, "Not Found")
        return await handler(request)
    if request.match_info.get("endpoint") != state.settings.endpoint_id:
        return _error(404, "Not Found")
    route = request.match_info.route.resource.canonical if request.match_info.route.resource else path
    state.knobs.requests[f"{request.method} {route.split('}/', 1)[-1]}"] += 1
    if state.knobs.take_rate_limit():
        return _error(429, "Too Many Requests", **{"Retry-After": f"{state.knobs.retry_after:g}"})
    try:
        return await handler(request)
    except web.HTTPRequestEntityTooLarge:
        return _error(413, "Payload Too Large")


async def _job_request(request: web.Request, limit: int) -> tuple[Any, dict[str, Any]] | web.Response:
    if request.content_length is not None and request.content_length > limit:
        return _error(413, "Payload Too Large")
    raw = await request.read()
    if len(raw) > limit:
        return _error(413, "Payload Too Large")
    try:
        body = json.loads(raw)
    except ValueError:
        return _error(400, "Bad Request")
    if not isinstance(body, dict) or not isinstance(body.get("input"), dict | str):
        return _error(400, "Bad Request")
    policy = body.get("policy")
    return body["input"], policy if isinstance(policy, dict) else {}


async def run(request: web.Request) -> web.Response:
    state = request.app[STATE]
    parsed = await _job_request(request, RUN_LIMIT)
    if isinstance(parsed, web.Response):
        return parsed
    job = state.table.add(*parsed, script=state.knobs.take_script())
    return web.json_response({"id": job.id, "status": "IN_QUEUE"})


async def runsync(request: web.Request) -> web.Response:
    state = request.app[STATE]
    parsed = await _job_request(request, RUNSYNC_LIMIT)
    if isinstance(parsed, web.Response):
        return parsed
    try:
        wait_ms = min(max(int(request.query.get("wait", RUNSYNC_DEFAULT_WAIT_MS)), 1000), 300_000)
    except ValueError:
        return _error(400, "Bad Request")
    job = state.table.add(*parsed, script=state.knobs.take_script(), sync=True)
    deadline = time.monotonic() + wait_ms / 1000
    while not job.terminal and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return web.json_response(job.body() if job.terminal else {"id": job.id, "status": job.status})


def _job_or_404(request: web.Request) -> Job | web.Response:
    job = request.app[STATE].table.get(request.match_info["job_id"])
    return job if job is not None else _error(404, "Not Found")


async def status(request: web.Request) -> web.Response:
    job = _job_or_404(request)
    return job if isinstance(job, web.Response) else web.json_response(job.body())


async def stream(request: web.Request) -> web.Response:
    job = _job_or_404(request)
    if isinstance(job, web.Response):
        return job
    # worker-comfyui is not a generator and streams nothing; chunks are handed out once.
    chunks, job.stream = job.stream, []
    return web.json_response({"status": job.status, "stream": [{"output": c} for c in chunks]})


async def cancel(request: web.Request) -> web.Response:
    state = request.app[STATE]
    job = _job_or_404(request)
    if isinstance(job, web.Response):
        return job
    if not job.terminal:
        state.table.finish(job, "CANCELLED")
        if job.task is not None:
            job.task.cancel()
    return web.json_response({"id": job.id, "status": job.status})


async def retry(request: web.Request) -> web.Response:
    state = request.app[STATE]
    job = _job_or_404(request)
    if isinstance(job, web.Response):
        return job
    if job.status not in ("FAILED", "TIMED_OUT"):
        return _error(400, "Bad Request")
    job.status, job.output, job.error = "IN_QUEUE", None, None
    job.started_at = job.finished_at = None
    job.script = ""
    job.submitted_at = time.monotonic()
    state.table.counters["retried"] += 1
    state.table.queue.put_nowait(job.id)
    return web.json_response({"id": job.id, "status": "IN_QUEUE"})


async def purge_queue(request: web.Request) -> web.Response:
    table = request.app[STATE].table
    queued = [job_id for job_id, job in table.jobs.items() if job.status == "IN_QUEUE"]
    for job_id in queued:
        del table.jobs[job_id]
    return web.json_response({"removed": len(queued), "status": "completed"})


async def health(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return web.json_response(state.table.health(workers=state.settings.workers))


async def knobs(request: web.Request) -> web.Response:
    state = request.app[STATE]
    try:
        state.knobs.update(await request.json())
    except (ValueError, TypeError) as exc:
        return _error(400, str(exc))
    return web.json_response({"ok": True})


async def stats(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return web.json_response(
        {
            "requests": dict(state.knobs.requests),
            "jobs": {job_id: job.status for job_id, job in state.table.jobs.items()},
        }
    )


# -- running jobs --------------------------------------------------------------
def handler_result(job: Job, result: Any) -> tuple[str, Any, str | None]:
    """The SDK's rule (rp_job.run_job): a returned string `error` fails the job, the rest is output."""
    if isinstance(result, dict) and "error" in result:
        rest = {k: v for k, v in result.items() if k not in ("error", "refresh_worker")}
        if isinstance(result["error"], str):
            return "FAILED", rest or None, result["error"]
        return "COMPLETED", None, None
    return "COMPLETED", result, None


async def _execute(state: State, job: Job) -> None:
    script = job.script
    if script.startswith("slow:"):
        await asyncio.sleep(float(script.split(":", 1)[1]))
        script = ""
    if script == "timeout":
        await asyncio.Event().wait()
    if script in ("fail", "oom"):
        reason = (
            "CUDA out of memory. Tried to allocate 2.00 GiB"
            if script == "oom"
            else "the local endpoint was told to fail"
        )
        result: Any = {"error": "Job processing failed", "details": [NODE_FAILURE.format(reason)]}
    elif script == "crash":
        state.table.finish(job, "FAILED", error=crash_error(job.worker_id or ""))
        return
    elif script.startswith("malformed:"):
        result = malformed_output(script.split(":", 1)[1])
    else:
        result = await state.worker.run(job.id, job.input)
        if script == "legacy" and isinstance(result, dict) and result.get("images"):
            result = {"status": "success", "message": result["images"][-1]["data"]}
    outcome, output, error = handler_result(job, result)
    state.table.finish(job, outcome, output=output, error=error)


async def _work(state: State, number: int) -> None:
    table = state.table
    while True:
        job_id = await table.queue.get()
        job = table.get(job_id)
        if job is None or job.status != "IN_QUEUE":
            continue
        job.status = "IN_PROGRESS"
        job.started_at = time.monotonic()
        job.worker_id = f"local{number:02d}"
        timeout_ms = int(job.policy.get("executionTimeout") or state.settings.execution_timeout_ms)
        job.task = asyncio.create_task(_execute(state, job))
        done, _ = await asyncio.wait({job.task}, timeout=timeout_ms / 1000)
        if not done:
            job.task.cancel()
            table.finish(job, "TIMED_OUT")
            continue
        task = done.pop()
        if task.cancelled():
            continue  # cancelled through /cancel: already CANCELLED
        if task.exception() is not None:
            log.error("job %s: handler raised %r", job.id, task.exception())
            table.finish(job, "FAILED", error=crash_error(job.worker_id or ""))


async def _start_workers(app: web.Application) -> None:
    state = app[STATE]
    state.loops = [asyncio.create_task(_work(state, n + 1)) for n in range(state.settings.workers)]


async def _stop_workers(app: web.Application) -> None:
    state = app[STATE]
    for job in state.table.jobs.values():
        if job.task is not None:
            job.task.cancel()
    for loop in state.loops:
        loop.cancel()
    await asyncio.gather(*state.loops, return_exceptions=True)


def create_app(settings: EndpointSettings) -> web.Application:
    app = web.Application(client_max_size=RUNSYNC_LIMIT + 1024 * 1024, middlewares=[cloud_rules])
    app[STATE] = State(
        settings=settings,
        table=JobTable(retention_s=settings.result_retention_s, default_ttl_ms=settings.default_ttl_ms),
        knobs=Knobs(enabled=settings.test_knobs),
        worker=ComfyWorker(settings.comfyui_url, s3=settings.s3),
    )
    prefix = "/v2/{endpoint}"
    app.add_routes(
        [
            web.post(f"{prefix}/run", run),
            web.post(f"{prefix}/runsync", runsync),
            web.get(f"{prefix}/status/{{job_id}}", status),
            # The docs call /status and /stream GET; POST is said to work too.
            web.post(f"{prefix}/status/{{job_id}}", status),
            web.get(f"{prefix}/stream/{{job_id}}", stream),
            web.post(f"{prefix}/stream/{{job_id}}", stream),
            web.post(f"{prefix}/cancel/{{job_id}}", cancel),
            web.post(f"{prefix}/retry/{{job_id}}", retry),
            web.post(f"{prefix}/purge-queue", purge_queue),
            web.get(f"{prefix}/health", health),
            web.post("/_test/knobs", knobs),
            web.get("/_test/stats", stats),
        ]
    )
    app.on_startup.append(_start_workers)
    app.on_cleanup.append(_stop_workers)
    return app

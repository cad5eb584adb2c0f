"""Runs one render job: claim, submit (or re-attach), follow progress, fetch, store.

A service: it owns the job's state changes during a render. The provider does
the talking; this module decides what the answers mean for the job.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import time
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.core.files.storage import storages
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from generation import services
from generation.artifact_check import inspect_image
from generation.models import Artifact, Attempt, AttemptState, Backend, BackendKind, JobState, RenderJob
from generation.providers.base import (
    ErrorCode,
    EventKind,
    InputImage,
    ProviderError,
    RemoteHandle,
    RemoteOutput,
    RenderRequest,
)
from generation.providers.comfyui import ComfyUIProvider, Timeouts
from generation.workflow_binding import bind_workflow, targets_from_json

log = logging.getLogger(__name__)

IN_FLIGHT = frozenset({JobState.DISPATCHED, JobState.RUNNING, JobState.FETCHING})
PROGRESS_MIN_INTERVAL = 0.2  # seconds between progress writes: enough for a smooth bar


def provider_for(backend: Backend) -> ComfyUIProvider:
    if backend.kind != BackendKind.COMFYUI:
        raise ProviderError(
            ErrorCode.CONFIG_INVALID, f"backend {backend.name} is a {backend.kind} backend, not yet supported"
        )
    return ComfyUIProvider(
        backend.base_url,
        timeouts=Timeouts(
            connect=settings.RENDER_CONNECT_TIMEOUT,
            poll_interval=settings.RENDER_POLL_INTERVAL,
            max_wait=settings.RENDER_MAX_WAIT,
            post_execution=settings.RENDER_POST_EXECUTION_TIMEOUT,
        ),
    )


def render_job_execute(*, job_id: int) -> None:
    """Entry point of the render task. Safe to run twice for one job."""
    job = RenderJob.objects.select_related("template", "scene", "brief", "backend").filter(pk=job_id).first()
    if job is None or job.is_terminal:
        return
    attempt: Attempt | None = None
    try:
        fresh = True
        if job.state == JobState.QUEUED:
            backend = job.backend or services.default_backend()
            if not services.job_transition(
                job.pk,
                from_states={JobState.QUEUED},
                to_state=JobState.DISPATCHED,
                backend=backend,
                started_at=timezone.now(),
                message=f"dispatched to {backend.name}",
            ):
                return  # another worker claimed it, or it was cancelled
            job.refresh_from_db()
        elif job.state in IN_FLIGHT:
            # A redelivered task: re-attach to the attempt on record instead of rendering twice.
            attempt = job.attempts.select_related("backend").order_by("-number").first()
            fresh = attempt is None
        else:
            return
        if attempt is None:
            attempt = _new_attempt(job)
        _run_attempt(job, attempt, fresh=fresh)
    except services.RenderRefused as exc:
        _fail(job, attempt, ProviderError(ErrorCode.CONFIG_INVALID, str(exc)))
    except ProviderError as exc:
        _fail(job, attempt, exc)
    except Exception as exc:
        log.exception("render job %s failed unexpectedly", job_id)
        _fail(
            job,
            attempt,
            ProviderError(
                ErrorCode.INTERNAL, f"internal error ({exc.__class__.__name__}); see the worker log"
            ),
        )


def _new_attempt(job: RenderJob) -> Attempt:
    assert job.backend is not None
    with transaction.atomic():
        number = (job.attempts.aggregate(n=Max("number"))["n"] or 0) + 1
        attempt = Attempt.objects.create(job=job, number=number, backend=job.backend)
        # Our prompt_id is the attempt's uuid: recorded before anything is sent.
        Attempt.objects.filter(pk=attempt.pk).update(remote_handle=str(attempt.uuid))
    attempt.refresh_from_db()
    return attempt


def _run_attempt(job: RenderJob, attempt: Attempt, *, fresh: bool) -> None:
    started = time.monotonic()
    handle = RemoteHandle(backend_kind=attempt.backend.kind, remote_id=attempt.remote_handle)
    with provider_for(attempt.backend) as provider:
        # Look before submitting again: ComfyUI would queue a repeated prompt_id a second time.
        where = "unknown" if fresh else provider.locate(handle)
        if where == "unknown":
            if not fresh:
                log.info("attempt %s is unknown to %s; submitting it", attempt.uuid, attempt.backend)
            workflow = _bound_workflow(job, attempt)
            inputs = _input_images(job)
            services.workflow_check_on_backend(
                workflow=workflow,
                backend=attempt.backend,
                uploads=frozenset((image.node_id, image.input_name) for image in inputs),
            )
            handle = provider.submit(
                RenderRequest(attempt_id=str(attempt.uuid), workflow=workflow, images=tuple(inputs))
            )
            Attempt.objects.filter(pk=attempt.pk).update(
                state=AttemptState.RUNNING, submitted_at=timezone.now(), remote_handle=handle.remote_id
            )
        services.job_transition(
            job.pk,
            from_states={JobState.DISPATCHED},
            to_state=JobState.RUNNING,
            message=f"prompt {handle.remote_id} queued",
        )
        last_progress = 0.0
        for event in provider.events(handle):
            if _cancelled(job):
                provider.cancel(handle)
                _finish_attempt(
                    attempt, AttemptState.CANCELLED, ProviderError(ErrorCode.CANCELLED, "cancelled by a user")
                )
                return
            if event.kind == EventKind.PROGRESS and event.value is not None and event.maximum:
                now = time.monotonic()
                if now - last_progress >= PROGRESS_MIN_INTERVAL or event.value >= event.maximum:
                    services.job_progress(job.pk, value=event.value, maximum=event.maximum)
                    last_progress = now
            elif event.kind == EventKind.FAILED:
                assert event.error is not None
                raise event.error
            elif event.kind == EventKind.FINISHED:
                break
        if not services.job_transition(
            job.pk,
            from_states={JobState.RUNNING, JobState.DISPATCHED},
            to_state=JobState.FETCHING,
            message="render finished",
        ):
            return
        outputs = provider.outputs(handle)
        # Saved outputs only: PreviewImage's temp files are the server's scratch space.
        images = [o for o in outputs if o.kind == "image" and o.folder_type == "output"]
        if not images:
            raise ProviderError(
                ErrorCode.OUTPUT_INVALID, f"the render produced no image (outputs: {len(outputs)})"
            )
        for index, output in enumerate(images):
            _store_output(provider, job, attempt, output, index)
        telemetry = {
            "duration_s": round(time.monotonic() - started, 3),
            "fallback_notes": provider.fallback_notes,
        }
        _finish_attempt(attempt, AttemptState.SUCCEEDED, None, telemetry=telemetry)
        services.job_transition(
            job.pk,
            from_states={JobState.FETCHING},
            to_state=JobState.SUCCEEDED,
            progress_value=1,
            progress_max=1,
            message=f"{len(images)} image(s) stored",
        )


def _bound_workflow(job: RenderJob, attempt: Attempt) -> dict:
    values = dict(job.params)
    values["filename_prefix"] = f"storycore/{attempt.uuid}"
    return bind_workflow(job.template.graph, targets_from_json(job.template.bindings), values)


def _input_images(job: RenderJob) -> list[InputImage]:
    """The job's input images, read from storage and aimed at the template's LoadImage inputs."""
    bindings = targets_from_json(job.template.bindings)
    images = []
    for parameter, recorded in (job.params.get("images") or {}).items():
        with storages["inputs"].open(recorded["name"], "rb") as handle:
            # Bounded by INPUT_IMAGE_MAX_BYTES when uploaded.
            content = handle.read()
        if hashlib.sha256(content).hexdigest() != recorded["sha256"]:
            raise ProviderError(
                ErrorCode.CONFIG_INVALID,
                f"the {parameter.replace('_', ' ')} changed since this render was asked for; render again",
            )
        extension = recorded["name"].rsplit(".", 1)[-1].lower()
        for target in bindings.get(parameter, []):
            images.append(
                InputImage(
                    node_id=target.node,
                    input_name=target.input,
                    filename=f"{parameter}.{extension}",
                    content=content,
                )
            )
    return images


def _cancelled(job: RenderJob) -> bool:
    return RenderJob.objects.filter(pk=job.pk, state=JobState.CANCELLED).exists()


def _store_output(
    provider: ComfyUIProvider, job: RenderJob, attempt: Attempt, output: RemoteOutput, index: int
) -> Artifact:
    label = f"{output.filename!r} of node {output.node_id}"
    tmp_dir = Path(settings.VAR_DIR) / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    with tempfile.NamedTemporaryFile(dir=tmp_dir, suffix=".part") as tmp:
        with provider.fetch(output) as chunks:
            for chunk in chunks:
                size += len(chunk)
                if size > settings.ARTIFACT_MAX_BYTES:
                    raise ProviderError(
                        ErrorCode.OUTPUT_INVALID,
                        f"output {label} is larger than {settings.ARTIFACT_MAX_BYTES} bytes",
                    )
                digest.update(chunk)
                tmp.write(chunk)
        tmp.flush()
        if size == 0:
            raise ProviderError(ErrorCode.OUTPUT_INVALID, f"output {label} is empty")
        facts = inspect_image(Path(tmp.name), max_pixels=settings.ARTIFACT_MAX_PIXELS, label=label)
        tmp.seek(0)
        # The stored name is ours: the backend's file name never touches a local path.
        name = f"{job.brief.uuid}/{job.uuid}/{attempt.uuid}-{index}.{facts.extension}"
        stored = storages["artifacts"].save(name, File(tmp))
    return Artifact.objects.create(
        job=job,
        attempt=attempt,
        storage_name=stored,
        content_type=facts.content_type,
        size_bytes=size,
        sha256=digest.hexdigest(),
        width=facts.width,
        height=facts.height,
        node_id=output.node_id,
        remote_filename=output.filename[:300],
    )


def _finish_attempt(
    attempt: Attempt, state: str, error: ProviderError | None, *, telemetry: dict | None = None
) -> None:
    fields: dict = {"state": state, "finished_at": timezone.now()}
    if error is not None:
        fields.update(
            error_code=error.code.value, error_message=error.message, error_detail=_jsonable(error.detail)
        )
    if telemetry is not None:
        fields["telemetry"] = telemetry
    Attempt.objects.filter(pk=attempt.pk).update(**fields)


def _jsonable(detail: dict) -> dict:
    import json

    try:
        json.dumps(detail)
        return detail
    except (TypeError, ValueError):
        return {"repr": repr(detail)[:2000]}


def _fail(job: RenderJob, attempt: Attempt | None, error: ProviderError) -> None:
    if attempt is not None:
        _finish_attempt(attempt, AttemptState.FAILED, error)
    services.job_transition(
        job.pk,
        from_states={JobState.QUEUED, *IN_FLIGHT},
        to_state=JobState.FAILED,
        error_code=error.code.value,
        error_message=services.error_with_hint(error, backend=attempt.backend if attempt else job.backend),
        message=f"{error.code}: {error.message}",
    )

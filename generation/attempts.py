"""One attempt of a render on one backend: submit, check, finish, fail.

A service: it owns a job's state while an attempt is out. Nothing here waits on
a render; the watcher (generation/watcher.py) follows renders and calls in here
when one changes, and the reconciler does the same for anything the watcher missed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files import File
from django.core.files.storage import storages
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from generation import attempt_telemetry, services
from generation.artifact_check import expected_frames, inspect_output
from generation.attempt_state import (
    LIVE_STATES,
    attempt_end,
    attempt_keep_telemetry,
    attempt_mark_running,
    attempt_mark_started,
    attempt_note_outputs,
)
from generation.backend_providers import provider_for
from generation.models import (
    IN_FLIGHT_STATES,
    TERMINAL_STATES,
    Artifact,
    Attempt,
    AttemptState,
    Backend,
    JobState,
    RenderJob,
)
from generation.providers import registry
from generation.providers.base import (
    ErrorCode,
    InputImage,
    Provider,
    ProviderError,
    RemoteHandle,
    RemoteOutput,
    RenderRequest,
    RetryClass,
)
from generation.providers.checks import (
    Answer,
    CheckCounters,
    CheckLimits,
    CheckOutcome,
    RenderCheck,
    ask,
    judge,
)
from generation.providers.registry import Follow
from generation.workflow_binding import bind_workflow, targets_from_json
from generation.workflow_validation import has_model, models_used

log = logging.getLogger(__name__)

RATE_LIMIT_PAUSE = timedelta(seconds=30)
# Waits between fetches of an output the server is still writing.
COMPLETE_FIRST_PAUSE = 0.25
COMPLETE_MAX_PAUSE = 2.0
# The kinds of saved output a render's attempt keeps (ComfyUI's `text` outputs are not files).
STORED_KINDS = ("image", "animated", "video", "audio")


def handle_of(attempt: Attempt) -> RemoteHandle:
    return RemoteHandle(backend_kind=attempt.backend.kind, remote_id=attempt.remote_handle)


# -- submit --------------------------------------------------------------------
def attempt_create(job: RenderJob, backend: Backend) -> Attempt:
    """A new attempt, its prompt_id (our uuid) recorded before anything is sent."""
    with transaction.atomic():
        number = (job.attempts.aggregate(n=Max("number"))["n"] or 0) + 1
        attempt = Attempt.objects.create(job=job, number=number, backend=backend, policy=job.policy)
        Attempt.objects.filter(pk=attempt.pk).update(remote_handle=str(attempt.uuid))
    attempt.refresh_from_db()
    return attempt


def attempt_submit(attempt: Attempt) -> None:
    """Send the attempt to its backend. On an answer that may have been lost, look before failing.

    A reset connection after ComfyUI accepted the prompt would otherwise make the
    retry run it a second time; the prompt_id is ours, so /queue and /history tell.
    """
    job = RenderJob.objects.select_related("template", "brief", "scene").get(pk=attempt.job_id)
    handle = handle_of(attempt)
    try:
        with provider_for(attempt.backend, attempt.policy) as provider:
            workflow = _bound_workflow(job, attempt)
            inputs = _input_images(job)
            services.workflow_check_on_backend(
                workflow=workflow,
                backend=attempt.backend,
                uploads=frozenset((image.node_id, image.input_name) for image in inputs),
            )
            _snapshot_before(attempt)
            try:
                handle = provider.submit(
                    RenderRequest(attempt_id=str(attempt.uuid), workflow=workflow, images=tuple(inputs))
                )
            except ProviderError as exc:
                if (
                    exc.code not in (ErrorCode.UNAVAILABLE, ErrorCode.TIMEOUT)
                    or exc.detail.get("sent") is False
                ):
                    raise
                try:
                    known = provider.locate(handle) != "unknown"
                except ProviderError:
                    # Cannot tell now: keep the job dispatched and let the reconciler ask again
                    # soon; after a few unanswered checks the backend counts as gone.
                    log.warning(
                        "attempt %s: submit answer lost and %s unreachable", attempt.uuid, attempt.backend
                    )
                    poll = float(attempt.policy.get("poll_interval_s", settings.RENDER_POLL_INTERVAL))
                    RenderJob.objects.filter(pk=attempt.job_id, state=JobState.DISPATCHED).update(
                        lease_expires_at=timezone.now() + timedelta(seconds=2 * poll)
                    )
                    return
                if not known:
                    raise
                log.info(
                    "attempt %s: the submit's answer was lost, but the server has the prompt", attempt.uuid
                )
    except ProviderError as exc:
        attempt_failed(attempt, exc)
        return
    recorded = attempt_mark_running(attempt.pk, at=timezone.now(), remote_handle=handle.remote_id)
    if (
        not recorded
        and Attempt.objects.filter(
            pk=attempt.pk, state__in=[AttemptState.LOST, AttemptState.FAILED, AttemptState.CANCELLED]
        ).exists()
    ):
        # The reconciler gave this attempt up while the submit was on its way (or the job was
        # cancelled): the job has moved on, so the prompt must not run as well.
        log.warning("attempt %s was given up while being submitted; withdrawing its prompt", attempt.uuid)
        attempt_cancel_remote_quietly(attempt)


def _prefix(attempt: Attempt) -> str:
    """Where the attempt's save nodes write: its own name, so its files are found even after the
    server forgot the render, and never served from another render's cache."""
    return f"storycore/{attempt.uuid}"


def _bound_workflow(job: RenderJob, attempt: Attempt) -> dict[str, Any]:
    values = dict(job.params)
    # The template parameters recorded at submit (jobs from before they existed have none).
    values.update(job.params.get("inputs") or {})
    values["filename_prefix"] = _prefix(attempt)
    kept = services.workflow_template_version_of(job)
    return bind_workflow(kept.graph, targets_from_json(kept.bindings), values)


def _input_images(job: RenderJob) -> list[InputImage]:
    """The job's input images, read from storage and aimed at the template's LoadImage inputs."""
    bindings = targets_from_json(services.workflow_template_version_of(job).bindings)
    images = []
    for parameter, recorded in (job.params.get("images") or {}).items():
        with storages["inputs"].open(recorded["name"], "rb") as handle:
            content = handle.read()  # bounded by INPUT_IMAGE_MAX_BYTES at upload
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


# -- progress ------------------------------------------------------------------
def attempt_started(attempt_id: int) -> None:
    job_id = Attempt.objects.filter(pk=attempt_id).values_list("job_id", flat=True).first()
    if job_id is None:
        return
    # The backend runs it, so it was submitted, even if the submit's answer never came back.
    with transaction.atomic():
        attempt_mark_started(attempt_id, at=timezone.now())
        services.job_transition(
            job_id, from_states={JobState.DISPATCHED}, to_state=JobState.RUNNING, message="rendering"
        )


def attempt_progress(attempt_id: int, *, value: int, maximum: int) -> None:
    job_id = Attempt.objects.filter(pk=attempt_id).values_list("job_id", flat=True).first()
    if job_id is None:
        return
    # Progress of a running job is one write; only the first of a render also marks it started.
    if not services.job_progress(job_id, value=value, maximum=maximum):
        attempt_started(attempt_id)
        services.job_progress(job_id, value=value, maximum=maximum)


# -- finish --------------------------------------------------------------------
def attempt_claim_fetch(attempt_id: int) -> bool:
    """Move the job to fetching under a lease; its backend slot is free from here on."""
    job_id = Attempt.objects.values_list("job_id", flat=True).get(pk=attempt_id)
    now = timezone.now()
    Attempt.objects.filter(pk=attempt_id, success_detected_at__isnull=True).update(success_detected_at=now)
    lease = now + timedelta(seconds=settings.RENDER_LEASE_SECONDS)
    claimed = services.job_transition(
        job_id,
        from_states={JobState.DISPATCHED, JobState.RUNNING},
        to_state=JobState.FETCHING,
        lease_expires_at=lease,
        message="render finished; fetching outputs",
    )
    if not claimed:
        # A fetch whose worker died is taken over once its lease ends.
        claimed = (
            RenderJob.objects.filter(
                pk=job_id, state=JobState.FETCHING, lease_expires_at__lt=timezone.now()
            ).update(lease_expires_at=lease)
            == 1
        )
    return claimed


def attempt_finalize(attempt_id: int, *, claimed: bool = False, recovering: bool = False) -> None:
    """Fetch and store the outputs of a finished render. Safe to run twice.

    `recovering`: the backend forgot the render (a restart), but still serves its files.
    """
    attempt = Attempt.objects.select_related("backend", "job").get(pk=attempt_id)
    job_id = attempt.job_id
    if not claimed and not attempt_claim_fetch(attempt_id):
        return
    job = RenderJob.objects.select_related("brief", "scene").get(pk=job_id)
    provider: Provider | None = None
    try:
        with provider_for(attempt.backend, attempt.policy) as provider:
            outputs = _recovered_outputs(provider, attempt) if recovering else _outputs(provider, attempt)
            # Saved outputs only: PreviewImage's temp files are the server's scratch space.
            saved = [o for o in outputs if o.kind in STORED_KINDS and o.folder_type == "output"]
            if not saved:
                raise ProviderError(
                    ErrorCode.OUTPUT_INVALID,
                    f"the render saved no image, clip or sound (outputs: {len(outputs)})",
                )
            Artifact.objects.filter(attempt=attempt).delete()  # a half-done earlier fetch
            frames = expected_frames(_bound_workflow(job, attempt))
            post_execution = float(
                attempt.policy.get("post_execution_timeout_s", settings.RENDER_POST_EXECUTION_TIMEOUT)
            )
            deadline = time.monotonic() + post_execution
            waited = 0.0
            refused: list[ProviderError] = []
            for index, output in enumerate(saved):
                try:
                    waited += _store_complete(
                        provider, job, attempt, output, index, frames=frames, deadline=deadline
                    )
                except ProviderError as exc:
                    # One bad output fails only itself; the render keeps the others.
                    if exc.code != ErrorCode.OUTPUT_INVALID:
                        raise
                    log.warning("attempt %s: output %s refused: %s", attempt.uuid, index, exc.message)
                    exc.detail.update(
                        node_id=output.node_id, filename=output.filename[:300], kind=output.kind
                    )
                    refused.append(exc)
            if len(refused) == len(saved):
                raise _none_usable(refused)
            notes = provider.fallback_notes
            remote = _remote_facts(provider)
    except ProviderError as exc:
        if "waited_s" in exc.detail:
            # Outputs never became whole within the post-execution timeout.
            _keep_counters(
                attempt.pk,
                dict(
                    attempt.telemetry,
                    history_exit_reason="postExecution",
                    output_wait_s=exc.detail["waited_s"],
                ),
            )
        if exc.code == ErrorCode.OUTPUT_INVALID and provider is not None and provider.last_answer is not None:
            # Keep what the backend answered (RunPod: long base64 cut) for the attempt's record.
            exc.detail.setdefault("response", provider.last_answer)
        attempt_failed(attempt, exc)
        return
    finished = timezone.now()
    attempt.refresh_from_db()
    attempt.telemetry = dict(attempt.telemetry, **remote)
    refusals = [_refusal(exc) for exc in refused]
    notes = notes + [f"output refused: {r['reason']}" for r in refusals]
    waited += sum(float(exc.detail.get("waited_s", 0.0)) for exc in refused)
    telemetry = _record(
        attempt, finished_at=finished, succeeded=True, output_complete=True, output_wait_s=waited, notes=notes
    )
    message = f"{len(saved) - len(refused)} output(s) stored"
    if refusals:
        message += f"; {len(refusals)} refused: " + "; ".join(r["reason"] for r in refusals)

    def job_succeeded() -> None:
        services.job_transition(
            job_id,
            from_states={JobState.FETCHING},
            to_state=JobState.SUCCEEDED,
            progress_value=1,
            progress_max=1,
            lease_expires_at=None,
            message=message,
        )

    ended = attempt_end(
        attempt.pk,
        state=AttemptState.SUCCEEDED,
        at=finished,
        telemetry=telemetry,
        refused_outputs=refusals,
        then=job_succeeded,
    )
    if not ended and Attempt.objects.filter(pk=attempt.pk, state=AttemptState.SUCCEEDED).exists():
        job_succeeded()  # its attempt had ended before the job could follow: a fetch taken over


def _refusal(error: ProviderError) -> dict[str, Any]:
    """A refused output as the attempt records it (its `error_detail["refused_outputs"]`)."""
    return {
        "node_id": error.detail.get("node_id", ""),
        "filename": error.detail.get("filename", ""),
        "kind": error.detail.get("kind", ""),
        "reason": error.message,
    }


def _none_usable(refused: list[ProviderError]) -> ProviderError:
    """The attempt's error when every saved output was refused: the one reason, or all of them."""
    if len(refused) == 1:
        error = refused[0]
    else:
        error = ProviderError(
            ErrorCode.OUTPUT_INVALID,
            f"none of the {len(refused)} saved outputs is usable: " + "; ".join(e.message for e in refused),
        )
        waits = [float(e.detail["waited_s"]) for e in refused if "waited_s" in e.detail]
        if waits:
            error.detail["waited_s"] = round(sum(waits), 3)
    error.detail["refused_outputs"] = [_refusal(e) for e in refused]
    return error


def _outputs(provider: Provider, attempt: Attempt) -> list[RemoteOutput]:
    try:
        return provider.outputs(handle_of(attempt))
    except ProviderError as exc:
        # Finished, then forgotten (a restart emptied /history): its files may still be there.
        recovered = _recovered_outputs(provider, attempt) if exc.code == ErrorCode.LOST else []
        if not recovered:
            raise
        return recovered


def _recovered_outputs(provider: Provider, attempt: Attempt) -> list[RemoteOutput]:
    """What the render wrote, from its own messages or its per-attempt prefix, as the backend still
    serves it: using it means the render is fetched, not run a second time."""
    reported = [RemoteOutput(**o) for o in attempt.reported_outputs if isinstance(o, dict)]
    found = provider.recover_outputs(prefix=_prefix(attempt), reported=reported)
    if found:
        log.info(
            "attempt %s: %s forgot the render; %d output(s) recovered",
            attempt.uuid,
            attempt.backend,
            len(found),
        )
    return found


def attempt_outputs_reported(attempt_id: int, outputs: tuple[RemoteOutput, ...]) -> None:
    attempt_note_outputs(attempt_id, [dataclasses.asdict(o) for o in outputs if o.folder_type == "output"])


def _remote_facts(provider: Provider) -> dict[str, Any]:
    """What the backend itself reported about the run, under its kind (RunPod's delayTime and
    executionTime in ms go under "runpod", where generation.attempt_telemetry reads them)."""
    return {provider.kind: dict(provider.telemetry)} if provider.telemetry else {}


def _store_complete(
    provider: Provider,
    job: RenderJob,
    attempt: Attempt,
    output: RemoteOutput,
    index: int,
    *,
    frames: int | None,
    deadline: float,
) -> float:
    """Store an output once it is complete; returns the seconds spent waiting for it to be.

    A server may still be writing a file when it reports success: a truncated
    file, or a video with fewer frames than asked for, is fetched again until
    it is whole or the post-execution timeout runs out.
    """
    started = time.monotonic()
    pause = COMPLETE_FIRST_PAUSE
    while True:
        try:
            _store_output(provider, job, attempt, output, index, frames=frames)
            return round(time.monotonic() - started, 3) if pause > COMPLETE_FIRST_PAUSE else 0.0
        except ProviderError as exc:
            left = deadline - time.monotonic()
            if not exc.detail.get("incomplete"):
                raise
            if left <= 0:
                exc.detail["waited_s"] = round(time.monotonic() - started, 3)
                exc.message = (
                    f"{exc.message} (still so after the {exc.detail['waited_s']:g} s post-execution wait)"
                )
                raise
            log.info("attempt %s: output %s not complete yet (%s); fetching again", attempt.uuid, index, exc)
        time.sleep(min(pause, max(left, 0.0)))
        pause = min(pause * 2, COMPLETE_MAX_PAUSE)


def _store_output(
    provider: Provider,
    job: RenderJob,
    attempt: Attempt,
    output: RemoteOutput,
    index: int,
    *,
    frames: int | None = None,
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
        facts = inspect_output(
            Path(tmp.name),
            max_pixels=settings.ARTIFACT_MAX_PIXELS,
            label=label,
            frames=frames,
            hint=output.kind,
        )
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
        kind=facts.kind,
        duration_s=facts.duration_s,
        frame_count=facts.frames if facts.kind in ("animated", "video") else None,
        node_id=output.node_id,
        remote_filename=output.filename[:300],
    )


# -- failure and retry -------------------------------------------------------------
def attempt_failed(attempt: Attempt, error: ProviderError) -> None:
    """End the attempt; queue the job again within its retry budget, or end it with the error.

    Both in one transaction (generation.attempt_state): a crash cannot end one without the other.
    """
    state = {ErrorCode.CANCELLED: AttemptState.CANCELLED, ErrorCode.LOST: AttemptState.LOST}.get(
        error.code, AttemptState.FAILED
    )
    current = Attempt.objects.select_related("backend").get(pk=attempt.pk)
    if current.state not in LIVE_STATES:
        return  # someone else already ended it
    finished = timezone.now()
    # Built before the transaction: the record asks the GPU how it stands.
    telemetry = _record(
        current, finished_at=finished, succeeded=False, output_wait_s=current.telemetry.get("output_wait_s")
    )
    attempt_end(
        attempt.pk,
        state=state,
        at=finished,
        telemetry=telemetry,
        error_code=error.code.value,
        error_message=error.message,
        error_detail=_jsonable(error.detail),
        then=lambda: _after_failure(current, error),
    )


def _after_failure(attempt: Attempt, error: ProviderError) -> None:
    if error.code == ErrorCode.UNAVAILABLE:
        # Out of dispatch before the job is queued again, so that it is not sent straight back;
        # the watcher's socket or the next health check brings the backend back when it answers.
        services.backend_record_health(backend=attempt.backend, reachable=False, message=error.message)
    job_after_attempt(attempt, error)


def job_after_attempt(attempt: Attempt, error: ProviderError) -> None:
    """What an ended attempt means for its job: queued again within the budget, or ended."""
    job = RenderJob.objects.get(pk=attempt.job_id)
    if job.state in TERMINAL_STATES:
        return
    if _may_retry(job, attempt, error):
        services.job_transition(
            job.pk,
            from_states=IN_FLIGHT_STATES,
            to_state=JobState.QUEUED,
            lease_expires_at=None,
            progress_value=0,
            progress_max=0,
            not_before=timezone.now() + _pause_for(error) if error.retry == RetryClass.SAME_BACKEND else None,
            message=f"attempt {attempt.number} on {attempt.backend.name}: {error.code}; trying again",
        )
        services.dispatch_soon()
        return
    services.job_transition(
        job.pk,
        from_states={JobState.QUEUED, *IN_FLIGHT_STATES},
        to_state=JobState.LOST if error.code == ErrorCode.LOST else JobState.FAILED,
        error_code=error.code.value,
        error_message=services.error_with_hint(error, backend=attempt.backend),
        lease_expires_at=None,
        message=f"{error.code}: {error.message}",
    )
    services.dispatch_soon()


def _pause_for(error: ProviderError) -> timedelta:
    """How long a rate-limited job waits: what the backend asked (Retry-After), or the default."""
    asked = error.detail.get("retry_after")
    if isinstance(asked, int | float) and asked > 0:
        return timedelta(seconds=min(float(asked), 600.0))
    return RATE_LIMIT_PAUSE


# A backend that stopped answering, or restarted and forgot its queue: the backend's state,
# not the render's fault. The job waits for it (or goes elsewhere) within the policy's max wait,
# and the attempt does not spend the retry budget.
BACKEND_STATE_ERRORS = (ErrorCode.UNAVAILABLE.value, ErrorCode.LOST.value)


def _may_retry(job: RenderJob, attempt: Attempt, error: ProviderError) -> bool:
    if error.code.value in BACKEND_STATE_ERRORS:
        waited = (timezone.now() - job.created_at).total_seconds()
        return waited < float(job.policy.get("max_wait_s", settings.RENDER_MAX_WAIT))
    if error.retry == RetryClass.NEVER:
        return False
    if error.retry == RetryClass.ANOTHER_BACKEND and job.requested_backend_id is not None:
        return False  # asked for this backend only: there is no other to try
    budget = int(job.policy.get("retry_budget", settings.RENDER_RETRY_BUDGET))
    spent = job.attempts.exclude(error_code__in=BACKEND_STATE_ERRORS).count()
    if spent > budget:
        return False
    if error.code == ErrorCode.OUT_OF_MEMORY:
        # Only worth it where there is more memory.
        vram = attempt.backend.vram_total_mb or 0
        return Backend.objects.filter(enabled=True, draining=False, vram_total_mb__gt=vram).exists()
    if error.code == ErrorCode.MISSING_MODEL:
        # Only worth it where the model may be: a catalogue that has it, or one not read yet.
        needed = models_used(job.template.graph)
        return any(
            other.object_info is None
            or all(has_model(other.object_info, name, value) for name, value in needed)
            for other in Backend.objects.filter(enabled=True, draining=False).exclude(pk=attempt.backend_id)
        )
    return True


def attempt_cancel_remote(attempt: Attempt) -> None:
    """Stop a cancelled job's render on its backend; best effort, the job is already cancelled."""
    updated = attempt_end(
        attempt.pk, state=AttemptState.CANCELLED, at=timezone.now(), error_code=ErrorCode.CANCELLED.value
    )
    if updated:
        _record_ended(attempt.pk)
    if not updated or not attempt.remote_handle:
        return
    try:
        with provider_for(attempt.backend, attempt.policy) as provider:
            provider.cancel(handle_of(attempt))
    except ProviderError as exc:
        log.warning(
            "attempt %s cancelled here, but %s could not be told: %s", attempt.uuid, attempt.backend, exc
        )


# -- telemetry -------------------------------------------------------------------
def _snapshot_before(attempt: Attempt) -> None:
    try:
        attempt_telemetry.snapshot_before(attempt)
    except Exception:
        # Telemetry never stops a render; the record will say no snapshot was taken.
        log.exception("attempt %s: GPU snapshot before the render failed", attempt.uuid)


def _record(attempt: Attempt, **figures: Any) -> dict[str, Any]:
    try:
        return attempt_telemetry.attempt_record(attempt, **figures)
    except Exception as exc:
        log.exception("attempt %s: telemetry record not built", attempt.uuid)
        return dict(attempt.telemetry, warnings=[f"telemetry record not built: {exc}"])


def _record_ended(attempt_id: int) -> None:
    """The contract record of an attempt that ended without outputs."""
    attempt = Attempt.objects.select_related("backend").get(pk=attempt_id)
    telemetry = _record(
        attempt,
        finished_at=attempt.finished_at or timezone.now(),
        succeeded=False,
        output_wait_s=attempt.telemetry.get("output_wait_s"),
    )
    attempt_keep_telemetry(attempt_id, telemetry, live_only=False)


def _keep_counters(attempt_id: int, telemetry: dict[str, Any]) -> None:
    """Save the checks' counters while the attempt is out; an ended attempt has its record."""
    attempt_keep_telemetry(attempt_id, telemetry)


def _jsonable(detail: dict[str, Any]) -> dict[str, Any]:
    try:
        json.dumps(detail)
        return detail
    except (TypeError, ValueError):
        return {"repr": repr(detail)[:2000]}


# -- checking on a render ----------------------------------------------------------
def attempt_check(attempt_id: int) -> CheckOutcome:
    """Ask the backend how an attempt stands and act on the answer; returns what was found.

    The watcher calls this on its poll interval and after every reconnect, the
    reconciler for whatever the watcher missed. The counters live on the attempt,
    so either may pick up where the other left off. What an answer means is decided
    in `generation.providers.checks` (pure), which the conformance suite drives too.
    """
    attempt = Attempt.objects.select_related("backend", "job").get(pk=attempt_id)
    if attempt.state not in LIVE_STATES:
        return CheckOutcome.ENDED
    if attempt.job.state == JobState.CANCELLED:
        attempt_cancel_remote(attempt)
        return CheckOutcome.CANCELLED
    telemetry = dict(attempt.telemetry)
    counters = CheckCounters(
        history_attempts=int(telemetry.get("history_attempts", 0)),
        failed_polls=int(telemetry.get("failed_polls", 0)),
        unknown_checks=int(telemetry.get("unknown_checks", 0)),
    )
    policy = attempt.policy or {}
    answer: Answer | ProviderError
    try:
        with provider_for(attempt.backend, policy) as provider:
            answer = ask(provider, handle_of(attempt))
            telemetry.update(_remote_facts(provider))
    except ProviderError as exc:
        answer = exc
    check = judge(
        answer,
        counters,
        submitted=attempt.state == AttemptState.RUNNING,
        waited_s=(timezone.now() - (attempt.submitted_at or attempt.created_at)).total_seconds(),
        limits=CheckLimits(
            max_wait_s=float(policy.get("max_wait_s", settings.RENDER_MAX_WAIT)),
            max_polls=int(policy.get("max_poll_attempts") or 0),
        ),
        backend=attempt.backend.name,
    )
    telemetry.update(
        history_attempts=counters.history_attempts,
        failed_polls=counters.failed_polls,
        unknown_checks=counters.unknown_checks,
    )
    recovering = check.found == CheckOutcome.LOST and _outputs_survived(attempt)
    if recovering:
        # Forgotten by a restarted server, but its files are still there: fetched, not run again.
        check = RenderCheck(CheckOutcome.DONE, exit_reason="success")
    found = check.found
    if check.exit_reason is not None:
        telemetry["history_exit_reason"] = check.exit_reason
    _keep_counters(attempt.pk, telemetry)
    if found == CheckOutcome.DONE:
        if not recovering and registry.follow_of(attempt.backend.kind) == Follow.POLL:
            # A polled backend (RunPod) may finish a job between two polls: it did run, so the
            # job's timeline shows it running before its outputs are fetched.
            attempt_started(attempt.pk)
        attempt_finalize(attempt.pk, recovering=recovering)
    elif found == CheckOutcome.RUNNING:
        attempt_started(attempt.pk)
    elif check.error is not None:
        if found == CheckOutcome.TIMEOUT:
            attempt_cancel_remote_quietly(attempt)
        attempt_failed(attempt, check.error)
    return found


def _outputs_survived(attempt: Attempt) -> bool:
    try:
        with provider_for(attempt.backend, attempt.policy) as provider:
            return bool(_recovered_outputs(provider, attempt))
    except ProviderError:
        return False


def attempt_cancel_remote_quietly(attempt: Attempt) -> None:
    try:
        with provider_for(attempt.backend, attempt.policy) as provider:
            provider.cancel(handle_of(attempt))
    except ProviderError:
        pass

"""Dispatch: keep every backend fed, fairly, from the jobs waiting in the database.

The database is the queue. A round fills each healthy backend up to its slots
(running renders plus `queue_depth` waiting in its own queue, so the GPU never
waits for the studio), interactive renders first, then batches round-robin by
brief so one big batch cannot starve another brief. Any process may run a
round at any time: claims are conditional updates under a lock on the backend
row, so rounds running at once never overfill a backend or claim a job twice.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from functools import lru_cache

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from generation import services
from generation.attempts import attempt_create, attempt_submit
from generation.models import (
    Attempt,
    Backend,
    HealthState,
    JobState,
    RenderJob,
    WorkflowTemplate,
)
from generation.providers.base import ErrorCode, ProviderError
from generation.workflow_validation import has_model, models_used

log = logging.getLogger(__name__)

OCCUPYING = (JobState.DISPATCHED, JobState.RUNNING)  # fetching no longer holds the GPU
CANDIDATES_PER_ROUND = 500
# Failures that send the next attempt elsewhere when there is an elsewhere.
AVOID_AFTER = (
    ErrorCode.UNAVAILABLE,
    ErrorCode.TIMEOUT,
    ErrorCode.MISSING_MODEL,
    ErrorCode.LOST,
    ErrorCode.OUT_OF_MEMORY,
)


def eligible_backends() -> list[Backend]:
    # Every kind: a RunPod backend has capacity like any other. It has no node catalogue,
    # so placement ranks it with the backends whose catalogue is not read yet.
    return list(
        Backend.objects.filter(enabled=True, draining=False)
        .exclude(health_state=HealthState.DOWN)
        .defer("object_info")  # large; read through _catalogue, once per fetch
        .order_by("name")
    )


@lru_cache(maxsize=64)
def _catalogue_at(backend_id: int, fetched_at: object) -> dict | None:
    return Backend.objects.values_list("object_info", flat=True).get(pk=backend_id)


def _catalogue(backend: Backend) -> dict | None:
    if backend.object_info_fetched_at is None:
        return None
    return _catalogue_at(backend.pk, backend.object_info_fetched_at)


def _occupancy() -> Counter[int]:
    return Counter(
        RenderJob.objects.filter(state__in=OCCUPYING, backend__isnull=False).values_list(
            "backend_id", flat=True
        )
    )


def _waiting_jobs() -> list[RenderJob]:
    now = timezone.now()
    # Only what ordering and placement read: the JSON columns cost more to decode than the query.
    return list(
        RenderJob.objects.filter(state=JobState.QUEUED)
        .filter(Q(not_before__isnull=True) | Q(not_before__lte=now))
        .only("id", "priority", "created_at", "brief_id", "template_id", "requested_backend_id", "started_at")
        .order_by("priority", "created_at", "id")[:CANDIDATES_PER_ROUND]
    )


def _in_flight_per_brief() -> Counter[int]:
    return Counter(RenderJob.objects.filter(state__in=OCCUPYING).values_list("brief_id", flat=True))


def _fair_order(waiting: list[RenderJob], per_brief: Counter[int]) -> list[RenderJob]:
    # Interactive before batch; then the brief with the least in flight; then first come.
    return sorted(waiting, key=lambda job: (job.priority, per_brief[job.brief_id], job.created_at, job.pk))


def _placement(job: RenderJob, backends: list[Backend]) -> list[Backend]:
    """Backends that may take this job, best first."""
    if job.requested_backend_id is not None:
        return [b for b in backends if b.pk == job.requested_backend_id]
    failed = list(
        Attempt.objects.filter(job=job, error_code__in=[code.value for code in AVOID_AFTER]).values_list(
            "backend_id", "error_code", "backend__vram_total_mb"
        )
    )
    avoid = {backend_id for backend_id, _, _ in failed}
    oom = [vram or 0 for _, code, vram in failed if code == ErrorCode.OUT_OF_MEMORY]
    if oom:
        backends = [b for b in backends if (b.vram_total_mb or 0) > max(oom)]
    needed = _models_of(job.template_id)
    ranked: list[tuple[int, str, Backend]] = []
    for backend in backends:
        catalogue = _catalogue(backend)
        if catalogue is None:
            # Not known yet, or never (RunPod): acceptable, after those known to have the models.
            rank = 1
        elif all(has_model(catalogue, name, value) for name, value in needed):
            rank = 0
        else:
            continue  # known to lack a model this workflow needs
        ranked.append((rank + (2 if backend.pk in avoid else 0), backend.name, backend))
    ranked.sort(key=lambda item: item[:2])
    preferred = [b for rank, _, b in ranked if rank < 2]
    # A backend that failed this job is used again only when nothing else can take it.
    return preferred or [b for _, _, b in ranked]


def _claim(job: RenderJob, backend: Backend) -> Attempt | None:
    with transaction.atomic():
        locked = Backend.objects.select_for_update().get(pk=backend.pk)
        used = RenderJob.objects.filter(state__in=OCCUPYING, backend=locked).count()
        if used >= locked.slots:
            return None
        moved = services.job_transition(
            job.pk,
            from_states={JobState.QUEUED},
            to_state=JobState.DISPATCHED,
            backend=locked,
            started_at=job.started_at or timezone.now(),
            lease_expires_at=timezone.now() + timedelta(seconds=settings.RENDER_LEASE_SECONDS),
            message=f"dispatched to {locked.name}",
        )
        if not moved:
            return None
        job.refresh_from_db()
        return attempt_create(job, locked)


@lru_cache(maxsize=256)
def _models_of_version(template_id: int, sha256: str) -> frozenset[tuple[str, str]]:
    graph = WorkflowTemplate.objects.values_list("graph", flat=True).get(pk=template_id)
    return frozenset(models_used(graph))


def _models_of(template_id: int) -> frozenset[tuple[str, str]]:
    """The model files a template names, decoded once per template version."""
    sha = WorkflowTemplate.objects.values_list("content_sha256", flat=True).get(pk=template_id)
    return _models_of_version(template_id, sha)


def _refuse_unplaceable(job: RenderJob, everyone: list[Backend]) -> bool:
    """End a job that no backend can take, rather than leave it waiting for ever."""
    if job.requested_backend_id is not None:
        requested = Backend.objects.filter(pk=job.requested_backend_id).first()
        if requested is not None and requested.enabled and not requested.draining:
            return _give_up_waiting(job, requested)  # a backend that is down may come back, for a while
        if requested is None:
            return False
        why = "disabled" if not requested.enabled else "draining"
        return services.job_transition(
            job.pk,
            from_states={JobState.QUEUED},
            to_state=JobState.FAILED,
            error_code=ErrorCode.CONFIG_INVALID.value,
            error_message=f"The backend asked for, {requested.name}, is {why}. Hint: render again without naming it.",
            message=f"requested backend {why}",
        )
    if not everyone or _placement(job, everyone):
        return False
    if any(_catalogue(b) is None for b in everyone):
        return False  # a catalogue not read yet may still have the models
    missing = sorted(
        value
        for name, value in _models_of(job.template_id)
        if not any(has_model(_catalogue(b) or {}, name, value) for b in everyone)
    )
    what = ", ".join(repr(m) for m in missing) or "what this workflow needs"
    return services.job_transition(
        job.pk,
        from_states={JobState.QUEUED},
        to_state=JobState.FAILED,
        error_code=ErrorCode.MISSING_MODEL.value,
        error_message=f"No enabled backend has {what}. Hint: install it on a backend, or change the workflow.",
        message="no backend can render this workflow",
    )


def _give_up_waiting(job: RenderJob, backend: Backend) -> bool:
    """End a job that waited past its policy's max wait for the one backend it asked for."""
    waited = (timezone.now() - job.created_at).total_seconds()
    max_wait = float(job.policy.get("max_wait_s", settings.RENDER_MAX_WAIT))
    if backend.health_state != HealthState.DOWN or waited < max_wait:
        return False
    last = job.attempts.exclude(error_message="").order_by("-number").first()
    error = ProviderError(
        ErrorCode.UNAVAILABLE,
        last.error_message
        if last is not None
        else f"{backend.name} cannot be reached ({backend.health_message or 'down'})",
    )
    return services.job_transition(
        job.pk,
        from_states={JobState.QUEUED},
        to_state=JobState.FAILED,
        error_code=ErrorCode.UNAVAILABLE.value,
        error_message=f"waited {max_wait:.0f} s for {backend.name}: "
        + services.error_with_hint(error, backend=backend),
        message=f"{backend.name} stayed down past the max wait",
    )


def expire_pinned_waits() -> int:
    """Fail the queued jobs that waited past their max wait for a backend that stays down."""
    waiting = RenderJob.objects.filter(
        state=JobState.QUEUED, requested_backend__health_state=HealthState.DOWN
    ).select_related("requested_backend")
    return sum(
        _give_up_waiting(job, job.requested_backend) for job in waiting if job.requested_backend is not None
    )


def dispatch_round(*, limit: int = 200, submit: Callable[[Attempt], None] = attempt_submit) -> int:
    """Send waiting jobs to backends with free slots; returns how many were sent.

    One pass reads the backends, their free slots and the waiting jobs once and
    keeps them current as it claims; each claim still re-checks the slot under
    the backend's row lock, so a stale count can only make a claim fail, never
    overfill a backend.
    """
    everyone = eligible_backends()
    used = _occupancy()
    slots = {b.pk: b.slots - used[b.pk] for b in everyone if b.slots - used[b.pk] > 0}
    if not slots:
        return 0
    per_brief = _in_flight_per_brief()
    waiting = _waiting_jobs()
    sent = 0
    while sent < limit and slots and waiting:
        free = [b for b in everyone if slots.get(b.pk, 0) > 0]
        claimed: tuple[RenderJob, Attempt] | None = None
        for job in _fair_order(waiting, per_brief):
            for backend in _placement(job, free):
                attempt = _claim(job, backend)
                if attempt is None:
                    slots[backend.pk] = 0  # someone else filled it meanwhile
                    continue
                claimed = (job, attempt)
                break
            if claimed is not None:
                break
            if _refuse_unplaceable(job, everyone):
                waiting.remove(job)
        if claimed is None:
            break
        job, attempt = claimed
        waiting.remove(job)
        per_brief[job.brief_id] += 1
        slots[attempt.backend_id] -= 1
        if slots[attempt.backend_id] <= 0:
            del slots[attempt.backend_id]
        submit(Attempt.objects.select_related("backend").get(pk=attempt.pk))
        sent += 1
    return sent

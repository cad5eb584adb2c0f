"""The one owner of an attempt's state.

An attempt moves submitting → running → succeeded | failed | lost | cancelled, and every
move is one conditional UPDATE here. A move that ends an attempt takes, in the same
transaction, whatever it means for the job (queued again, failed, succeeded): a process
killed between the two writes leaves either both or neither, never a job in flight whose
attempt has ended. The submit path, the watcher's checks, telemetry and the reconciler all
come through these functions.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.db import transaction

from generation.models import Attempt, AttemptState, JobState, RenderJob

LIVE_STATES = (AttemptState.SUBMITTING, AttemptState.RUNNING)
ENDED_STATES = (AttemptState.SUCCEEDED, AttemptState.FAILED, AttemptState.LOST, AttemptState.CANCELLED)


def attempt_mark_running(attempt_id: int, *, at: datetime, remote_handle: str | None = None) -> bool:
    """The backend has the prompt: submitting → running. The job's submit lease ends with it.

    Returns whether this call moved it (False when it was already running or has ended).
    """
    fields: dict[str, Any] = {"state": AttemptState.RUNNING, "submitted_at": at}
    if remote_handle is not None:
        fields["remote_handle"] = remote_handle
    with transaction.atomic():
        moved = Attempt.objects.filter(pk=attempt_id, state=AttemptState.SUBMITTING).update(**fields)
        running = Attempt.objects.filter(pk=attempt_id, state=AttemptState.RUNNING)
        if moved or running.exists():
            RenderJob.objects.filter(
                pk__in=running.values("job_id"), state=JobState.DISPATCHED, lease_expires_at__isnull=False
            ).update(lease_expires_at=None, updated_at=at)
    return bool(moved)


def attempt_mark_started(attempt_id: int, *, at: datetime) -> None:
    """The backend began executing it (which also proves it was submitted)."""
    with transaction.atomic():
        attempt_mark_running(attempt_id, at=at)
        Attempt.objects.filter(pk=attempt_id, execution_started_at__isnull=True).update(
            execution_started_at=at
        )


def attempt_end(
    attempt_id: int,
    *,
    state: AttemptState,
    at: datetime,
    telemetry: dict[str, Any] | None = None,
    error_code: str = "",
    error_message: str = "",
    error_detail: dict[str, Any] | None = None,
    refused_outputs: list[dict[str, Any]] | None = None,
    then: Callable[[], object] | None = None,
) -> bool:
    """End a live attempt and, in the same transaction, move its job (`then`).

    Returns whether this call ended it; when another process ended it first, nothing
    happens and `then` is not called. `refused_outputs`: the saved outputs a successful attempt
    could not keep, each with its reason (kept in `error_detail`).
    """
    assert state in ENDED_STATES, state
    fields: dict[str, Any] = {"state": state, "finished_at": at}
    if telemetry is not None:
        fields["telemetry"] = telemetry
    if error_code:
        fields.update(
            error_code=error_code, error_message=error_message[:5000], error_detail=error_detail or {}
        )
    elif refused_outputs:
        fields["error_detail"] = {"refused_outputs": refused_outputs}
    with transaction.atomic():
        ended = Attempt.objects.filter(pk=attempt_id, state__in=LIVE_STATES).update(**fields)
        if ended and then is not None:
            then()
    return bool(ended)


def attempt_note_outputs(attempt_id: int, outputs: list[dict[str, Any]]) -> None:
    """Remember files a live attempt's backend reported writing (not a state change)."""
    with transaction.atomic():
        known = Attempt.objects.filter(pk=attempt_id, state__in=LIVE_STATES).values_list(
            "reported_outputs", flat=True
        )
        current = known.first()
        if current is None:
            return
        merged = list(current) + [o for o in outputs if o not in current]
        if merged != current:
            Attempt.objects.filter(pk=attempt_id).update(reported_outputs=merged)


def attempt_keep_telemetry(attempt_id: int, telemetry: dict[str, Any], *, live_only: bool = True) -> None:
    """Save an attempt's telemetry counters; an ended attempt keeps its final record unless told."""
    attempts = Attempt.objects.filter(pk=attempt_id)
    if live_only:
        attempts = attempts.filter(state__in=LIVE_STATES)
    attempts.update(telemetry=telemetry)

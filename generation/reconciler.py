"""The reconciler: compares what the database says is out with what backends say, and mends.

Runs every RECONCILE_INTERVAL seconds from the render watcher and from Celery
beat; each step is a conditional update, so two reconcilers at once are safe.
It needs no message from the broker: jobs accepted while Redis was away, or
whose messages a wiped Redis lost, are found here in the database.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from generation import services
from generation.attempt_state import LIVE_STATES, attempt_mark_running
from generation.attempts import (
    attempt_cancel_remote,
    attempt_check,
    attempt_failed,
    attempt_finalize,
    job_after_attempt,
)
from generation.dispatch import dispatch_round, expire_pinned_waits
from generation.models import Attempt, AttemptState, JobState, RenderJob
from generation.providers.base import ErrorCode, ProviderError
from generation.providers.checks import CheckOutcome

log = logging.getLogger(__name__)


def reconcile() -> dict[str, int]:
    """One pass; returns counts of what it did, for logs and tests."""
    counts = {"cancelled": 0, "resumed": 0, "requeued": 0, "checked": 0, "refetched": 0, "dispatched": 0}
    now = timezone.now()

    # Cancelled jobs whose render is still out on a backend.
    for attempt in Attempt.objects.filter(
        state__in=[AttemptState.SUBMITTING, AttemptState.RUNNING], job__state=JobState.CANCELLED
    ).select_related("backend"):
        attempt_cancel_remote(attempt)
        counts["cancelled"] += 1

    # Dispatched, but whoever was submitting died before saying how it went.
    for job in RenderJob.objects.filter(state=JobState.DISPATCHED, lease_expires_at__lt=now):
        submitting = job.attempts.filter(state=AttemptState.SUBMITTING).select_related("backend").last()
        if submitting is None:
            RenderJob.objects.filter(pk=job.pk, state=JobState.DISPATCHED).update(lease_expires_at=None)
            continue
        found = attempt_check(submitting.pk)
        if found.out_on_the_backend:
            attempt_mark_running(submitting.pk, at=now)
            counts["resumed"] += 1
        elif found == CheckOutcome.UNKNOWN:
            # Never reached the backend: try again, without spending the retry budget.
            attempt_failed(submitting, ProviderError(ErrorCode.LOST, "the submit did not reach the backend"))
            counts["requeued"] += 1

    counts["swept"] = _sweep_orphans(now)

    # Out on a backend: let the backend say whether it finished, failed or forgot it. An attempt
    # still marked submitting under a job that moved on is checked too: only the backend knows.
    for attempt_id in Attempt.objects.filter(
        Q(state=AttemptState.RUNNING) | Q(state=AttemptState.SUBMITTING, job__state=JobState.RUNNING),
        job__state__in=[JobState.DISPATCHED, JobState.RUNNING],
    ).values_list("pk", flat=True):
        attempt_check(attempt_id)
        counts["checked"] += 1

    # A fetch whose worker died.
    for job in RenderJob.objects.filter(state=JobState.FETCHING, lease_expires_at__lt=now):
        latest = job.attempts.order_by("-number").first()
        if latest is not None:
            attempt_finalize(latest.pk)
            counts["refetched"] += 1

    counts["expired"] = expire_pinned_waits()
    counts["dispatched"] = dispatch_round()
    if any(counts.values()):
        log.info("reconcile: %s", ", ".join(f"{k} {v}" for k, v in counts.items() if v))
    return counts


def _sweep_orphans(now: datetime) -> int:
    """Jobs in flight with no live attempt: the attempt ended, the job never followed.

    Ending an attempt and moving its job share one transaction, so only rows written
    before that rule (or edited by hand) can be here; the job gets what its last
    attempt's end meant. A job is left alone for a few seconds after it moved, the time
    dispatch needs to give it its attempt.
    """
    settled = now - timedelta(seconds=max(5.0, 2 * settings.RECONCILE_INTERVAL))
    swept = 0
    orphans = (
        RenderJob.objects.filter(state__in=[JobState.DISPATCHED, JobState.RUNNING], updated_at__lt=settled)
        .exclude(attempts__state__in=LIVE_STATES)
        .distinct()
    )
    for job in orphans:
        latest = job.attempts.select_related("backend").order_by("-number").first()
        if latest is None:
            moved = services.job_transition(
                job.pk,
                from_states={JobState.DISPATCHED, JobState.RUNNING},
                to_state=JobState.QUEUED,
                lease_expires_at=None,
                message="in flight without an attempt; queued again",
            )
        elif latest.state == AttemptState.SUCCEEDED:
            attempt_finalize(latest.pk)  # stores its outputs again if need be, then the job follows
            moved = True
        else:
            code = (
                ErrorCode(latest.error_code)
                if latest.error_code in ErrorCode._value2member_map_
                else ErrorCode.LOST
            )
            error = ProviderError(code, latest.error_message or f"attempt {latest.number} ended")
            with transaction.atomic():
                job_after_attempt(latest, error)
            moved = True
        if moved:
            log.warning("job %s was in flight with no live attempt; swept", job.uuid)
            swept += 1
    return swept

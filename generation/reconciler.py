"""The reconciler: compares what the database says is out with what backends say, and mends.

Runs every RECONCILE_INTERVAL seconds from the render watcher and from Celery
beat; each step is a conditional update, so two reconcilers at once are safe.
It needs no message from the broker: jobs accepted while Redis was away, or
whose messages a wiped Redis lost, are found here in the database.
"""

from __future__ import annotations

import logging

from django.db.models import Q
from django.utils import timezone

from generation.attempts import attempt_cancel_remote, attempt_check, attempt_failed, attempt_finalize
from generation.dispatch import dispatch_round
from generation.models import Attempt, AttemptState, JobState, RenderJob
from generation.providers.base import ErrorCode, ProviderError

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
        if found in ("pending", "running", "done"):
            Attempt.objects.filter(pk=submitting.pk, state=AttemptState.SUBMITTING).update(
                state=AttemptState.RUNNING, submitted_at=now
            )
            RenderJob.objects.filter(pk=job.pk, state=JobState.DISPATCHED).update(lease_expires_at=None)
            counts["resumed"] += 1
        elif found == "unknown":
            # Never reached the backend: try again, without spending the retry budget.
            attempt_failed(submitting, ProviderError(ErrorCode.LOST, "the submit did not reach the backend"))
            counts["requeued"] += 1

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

    counts["dispatched"] = dispatch_round()
    if any(counts.values()):
        log.info("reconcile: %s", ", ".join(f"{k} {v}" for k, v in counts.items() if v))
    return counts

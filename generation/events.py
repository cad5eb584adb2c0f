"""Live events: the one place that tells browsers what changed.

Each event carries a per-brief sequence number so that a client can notice a
gap and resync from the API; the socket is only a hint, and a job's life never
depends on it. Events are sent after the surrounding transaction commits.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from django.db.models import F
from django.urls import reverse

from briefs.models import Brief
from generation.models import JobState, RenderJob

log = logging.getLogger(__name__)


def brief_group(brief_uuid: object) -> str:
    return f"brief.{brief_uuid}"


def job_payload(job: RenderJob) -> dict[str, Any]:
    artifact = job.artifacts.order_by("created_at").first() if job.state == JobState.SUCCEEDED else None
    return {
        "job": str(job.uuid),
        "scene": str(job.scene.uuid),
        "state": job.state,
        "state_label": JobState(job.state).label,
        "progress": job.progress_percent,
        "progress_value": job.progress_value,
        "progress_max": job.progress_max,
        "error_code": job.error_code,
        "error_message": job.error_message,
        "artifact": str(artifact.uuid) if artifact else None,
        "artifact_url": reverse("briefs:artifact", args=[artifact.uuid]) if artifact else None,
        "width": artifact.width if artifact else None,
        "height": artifact.height if artifact else None,
    }


def _next_seq(brief_id: int, count: int = 1) -> int:
    """Reserve `count` sequence numbers for a brief; returns the last one."""
    Brief.objects.filter(pk=brief_id).update(event_seq=F("event_seq") + count)
    return Brief.objects.filter(pk=brief_id).values_list("event_seq", flat=True).get()


def publish_job_update(job: RenderJob) -> None:
    with transaction.atomic():
        seq = _next_seq(job.brief_id)
        message = {"type": "job.updated", "seq": seq, "brief": str(job.brief.uuid), "data": job_payload(job)}
        group = brief_group(job.brief.uuid)
        transaction.on_commit(lambda: _send(group, message))


def publish_job_updates(jobs: list[RenderJob]) -> None:
    """One event per job, numbered in order, sent together once the transaction commits."""
    by_brief: dict[int, list[RenderJob]] = {}
    for job in jobs:
        by_brief.setdefault(job.brief_id, []).append(job)
    with transaction.atomic():
        for brief_id, group_jobs in by_brief.items():
            last = _next_seq(brief_id, len(group_jobs))
            brief_uuid = str(group_jobs[0].brief.uuid)
            messages = [
                {"type": "job.updated", "seq": seq, "brief": brief_uuid, "data": job_payload(job)}
                for seq, job in enumerate(group_jobs, start=last - len(group_jobs) + 1)
            ]
            transaction.on_commit(functools.partial(_send, brief_group(brief_uuid), *messages))


def _send(group: str, *messages: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(_send_all)(layer, group, messages)
    except Exception:
        # A broker hiccup must never fail a render: the database already holds the
        # state, and clients resync from the API.
        log.warning("live event for %s not sent", group, exc_info=True)


async def _send_all(layer: Any, group: str, messages: tuple[dict[str, Any], ...]) -> None:
    for message in messages:
        await layer.group_send(group, {"type": "brief.event", "message": message})

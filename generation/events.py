"""Live events: the one place that tells browsers what changed.

Each event carries a per-brief sequence number: each socket releases a brief's
events in that order and fills a hole that stays open with a fresh snapshot
(generation/live_order.py, generation/consumers.py). The socket is only a hint,
and a job's life never depends on it. Events are sent after the surrounding
transaction commits.

Preview frames of a render that runs (`publish_preview`) are ephemeral: they take no number,
are not stored, and a socket that misses one never asks for it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import queue
import threading
from dataclasses import dataclass
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.db import connection, transaction
from django.urls import reverse

from briefs.models import Brief
from generation.models import Attempt, AttemptState, Deliverable, DeliverableState, JobState, RenderJob

log = logging.getLogger(__name__)

# Live events held while the broker is slow or away, before the oldest are dropped.
SENDER_BACKLOG = 10_000
# A preview frame is dropped rather than queued behind this many waiting sends: each one can
# be hundreds of kilobytes, and a newer frame follows soon.
PREVIEW_BACKLOG = 50


def brief_group(brief_uuid: object) -> str:
    return f"brief.{brief_uuid}"


def job_payload(job: RenderJob) -> dict[str, Any]:
    """A job as its card and the live socket see it. `artifact*`, `width` and `height` describe its
    first output; `artifacts` lists every kept one (kind: image, animated, video or audio), and
    `refused_outputs` the saved outputs its render could not keep, with the reason."""
    stored = list(job.artifacts.order_by("created_at", "id")) if job.state == JobState.SUCCEEDED else []
    artifact = stored[0] if stored else None
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
        "artifacts": [
            {
                "uuid": str(a.uuid),
                "url": reverse("briefs:artifact", args=[a.uuid]),
                "kind": a.kind,
                "content_type": a.content_type,
                "width": a.width,
                "height": a.height,
                "duration_s": a.duration_s,
                "frame_count": a.frame_count,
            }
            for a in stored
        ],
        "refused_outputs": _refused_outputs(job) if stored else [],
    }


def _refused_outputs(job: RenderJob) -> list[dict[str, str]]:
    """What the job's successful attempt could not keep (attempts.attempt_finalize records it)."""
    detail = (
        Attempt.objects.filter(job=job, state=AttemptState.SUCCEEDED)
        .order_by("-number")
        .values_list("error_detail", flat=True)
        .first()
    )
    refused = detail.get("refused_outputs") if isinstance(detail, dict) else None
    return [
        {
            "node_id": str(r.get("node_id", "")),
            "filename": str(r.get("filename", "")),
            "reason": str(r.get("reason", "")),
        }
        for r in refused or []
        if isinstance(r, dict)
    ]


def _next_seq(brief_id: int, count: int = 1) -> int:
    """Reserve `count` sequence numbers for a brief; returns the last one.

    The brief's row stays locked until the surrounding transaction commits, which is
    what keeps a brief's events in order: callers take it as late as they can.
    """
    table = connection.ops.quote_name(Brief._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET event_seq = event_seq + %s WHERE id = %s RETURNING event_seq",  # noqa: S608
            [count, brief_id],
        )
        row = cursor.fetchone()
    if row is None:
        raise Brief.DoesNotExist(f"brief {brief_id}")
    return int(row[0])


def publish_job_update(job: RenderJob) -> None:
    with transaction.atomic():
        data = job_payload(job)
        seq = _next_seq(job.brief_id)
        message = {"type": "job.updated", "seq": seq, "brief": str(job.brief.uuid), "data": data}
        group = brief_group(job.brief.uuid)
        transaction.on_commit(lambda: _send(group, message))


def publish_job_updates(jobs: list[RenderJob]) -> None:
    """One event per job, numbered in order, sent together once the transaction commits."""
    by_brief: dict[int, list[RenderJob]] = {}
    for job in jobs:
        by_brief.setdefault(job.brief_id, []).append(job)
    with transaction.atomic():
        for brief_id, group_jobs in by_brief.items():
            payloads = [job_payload(job) for job in group_jobs]
            last = _next_seq(brief_id, len(group_jobs))
            brief_uuid = str(group_jobs[0].brief.uuid)
            messages = [
                {"type": "job.updated", "seq": seq, "brief": brief_uuid, "data": data}
                for seq, data in enumerate(payloads, start=last - len(group_jobs) + 1)
            ]
            transaction.on_commit(functools.partial(_send, brief_group(brief_uuid), *messages))


@dataclass(frozen=True)
class PreviewTarget:
    """Where one attempt's preview frames go, and the names they carry (read once per attempt)."""

    brief: str
    job: str
    scene: str
    attempt: str


def preview_target(attempt_id: int) -> PreviewTarget | None:
    """The attempt's names, while it is out (submitting or running); None once it has ended."""
    row = (
        Attempt.objects.filter(pk=attempt_id, state__in=(AttemptState.SUBMITTING, AttemptState.RUNNING))
        .values_list("job__brief__uuid", "job__uuid", "job__scene__uuid", "uuid")
        .first()
    )
    if row is None:
        return None
    brief, job, scene, attempt = (str(value) for value in row)
    return PreviewTarget(brief=brief, job=job, scene=scene, attempt=attempt)


def preview_message(target: PreviewTarget, image_url: str) -> dict[str, Any]:
    """What a browser receives: no `seq`, so it never takes part in the numbered order."""
    return {
        "type": "job.preview",
        "job": target.job,
        "scene": target.scene,
        "attempt": target.attempt,
        "image": image_url,
    }


async def publish_preview(target: PreviewTarget, image_url: str) -> None:
    """Send one preview frame to the brief's sockets, now or never: it is never queued for long,
    retried or replayed. Called on the event loop of the code that follows the render."""
    layer = get_channel_layer()
    if layer is None:
        return
    group = brief_group(target.brief)
    envelope = {"type": "brief.preview", "message": preview_message(target, image_url)}
    if isinstance(layer, InMemoryChannelLayer):
        # Its queues belong to the event loop that reads them: in-process, that is this one.
        try:
            await layer.group_send(group, envelope)
        except Exception:
            log.warning("preview for %s not sent", group, exc_info=True)
        return
    _sender().put(group, (envelope,), ephemeral=True)


def publish_brief_changed(*, brief: Brief, stamp: str) -> None:
    """Tell the brief's other windows that its fields or story bible changed (`stamp`: the state they
    now hold, briefs.services.brief_stamp). Call it inside the transaction that made the change."""
    with transaction.atomic():
        seq = _next_seq(brief.pk)
        version = Brief.objects.values_list("bible_version", flat=True).get(pk=brief.pk)
        message = {
            "type": "brief.changed",
            "seq": seq,
            "brief": str(brief.uuid),
            "data": {"stamp": stamp, "bible_version": version},
        }
        group = brief_group(brief.uuid)
        transaction.on_commit(lambda: _send(group, message))


SCENE_ACTIONS = ("created", "updated", "moved", "duplicated", "deleted", "restored", "final")


def publish_scene_changed(*, brief: Brief, scene_uuid: object, action: str, version: int) -> None:
    """Tell the brief's other windows that a scene was edited, moved, duplicated, deleted, restored or
    had its final picked.

    Call it inside the transaction that made the change: its number is taken with the brief's row
    lock, so events of one brief are numbered in the order their changes commit.
    """
    if action not in SCENE_ACTIONS:
        raise ValueError(f"action must be one of {', '.join(SCENE_ACTIONS)}, not {action!r}")
    with transaction.atomic():
        seq = _next_seq(brief.pk)
        message = {
            "type": "scene.changed",
            "seq": seq,
            "brief": str(brief.uuid),
            "data": {"scene": str(scene_uuid), "action": action, "version": version},
        }
        group = brief_group(brief.uuid)
        transaction.on_commit(lambda: _send(group, message))


def deliverable_payload(deliverable: Deliverable) -> dict[str, Any]:
    done = deliverable.state == DeliverableState.SUCCEEDED
    return {
        "uuid": str(deliverable.uuid),
        "kind": deliverable.kind,
        "state": deliverable.state,
        "progress": deliverable.progress,
        "error": deliverable.error,
        "notes": deliverable.notes,
        "url": reverse("deliverables:download", args=[deliverable.uuid]) if done else None,
        "size": deliverable.size_bytes if done else None,
    }


def publish_deliverable_updated(deliverable: Deliverable, *, brief_uuid: object) -> None:
    """Tell the brief's windows how a deliverable's build stands ("deliverable.updated").

    Call it inside the transaction that changed the row, for the same ordering as scene events.
    """
    with transaction.atomic():
        seq = _next_seq(deliverable.brief_id)
        message = {
            "type": "deliverable.updated",
            "seq": seq,
            "brief": str(brief_uuid),
            "data": deliverable_payload(deliverable),
        }
        group = brief_group(brief_uuid)
        transaction.on_commit(lambda: _send(group, message))


def _send(group: str, *messages: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    envelopes = tuple({"type": "brief.event", "message": message} for message in messages)
    if isinstance(layer, InMemoryChannelLayer):
        # Its queues belong to the event loop that reads them: send from this thread.
        _send_now(layer, group, envelopes)
        return
    _sender().put(group, envelopes)


def _send_now(layer: Any, group: str, envelopes: tuple[dict[str, Any], ...]) -> None:
    try:
        async_to_sync(_send_all)(layer, group, envelopes)
    except Exception:
        # A broker hiccup must never fail a render: the database already holds the
        # state, and clients resync from the API.
        log.warning("live event for %s not sent", group, exc_info=True)


async def _send_all(layer: Any, group: str, envelopes: tuple[dict[str, Any], ...]) -> None:
    for envelope in envelopes:
        await layer.group_send(group, envelope)


class _Sender:
    """Sends live events from one thread per process, in the order they were committed.

    The thread that changed a job never waits on Redis: a send costs a round trip
    and a frozen broker up to the layer's socket timeout, and the render watcher's
    threads have renders to follow. When the broker is away for long, the oldest
    events are dropped; sockets notice the hole in `seq` and resync.
    """

    def __init__(self) -> None:
        self.queue: queue.Queue[tuple[str, tuple[dict[str, Any], ...]]] = queue.Queue(maxsize=SENDER_BACKLOG)
        self.thread = threading.Thread(target=self._run, name="live-events", daemon=True)
        self.thread.start()

    def put(self, group: str, envelopes: tuple[dict[str, Any], ...], *, ephemeral: bool = False) -> None:
        if ephemeral and self.queue.qsize() >= PREVIEW_BACKLOG:
            return  # the broker is behind: a preview is worth nothing late
        while True:
            try:
                self.queue.put_nowait((group, envelopes))
                return
            except queue.Full:
                with contextlib.suppress(queue.Empty):
                    self.queue.get_nowait()
                log.warning("live events backlog full; dropping the oldest (clients resync)")

    def _run(self) -> None:
        # One loop for the life of the thread: the layer's Redis connections belong to it.
        loop = asyncio.new_event_loop()
        while True:
            group, envelopes = self.queue.get()
            try:
                # Asked each time (a cached lookup): the layer follows a change of settings.
                loop.run_until_complete(_send_all(get_channel_layer(), group, envelopes))
            except Exception:
                log.warning("live event for %s not sent", group, exc_info=True)


_senders: dict[int, _Sender] = {}
_senders_lock = threading.Lock()


def _sender() -> _Sender:
    # One per process: a forked worker inherits the dict but not the thread.
    with _senders_lock:
        sender = _senders.get(os.getpid())
        if sender is None:
            sender = _senders[os.getpid()] = _Sender()
        return sender

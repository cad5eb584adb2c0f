"""Deliverables: ask for one, build it (on a Celery worker), sweep builds left behind.

A build writes its file to a temporary file first, stores it under a name nobody points at yet,
and only then, in one transaction, marks the row succeeded and removes the brief's previous
deliverable of that kind (its file goes once that commits). A build that fails leaves the
previous one as it was and its own row failed with the reason; no half-written file is kept.
"""

from __future__ import annotations

import hashlib
import io
import logging
import tempfile
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import IO, Any, BinaryIO

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.core.files import File
from django.core.files.storage import storages
from django.db import IntegrityError, transaction
from django.utils import timezone

from briefs.models import Brief, Scene
from generation import events
from generation.deliverables.animatic import build_animatic
from generation.deliverables.contact import build_contact_sheet
from generation.deliverables.package import build_zip, write_shot_list
from generation.deliverables.plan import BuildError, FinalFile, Plan, Progress, SceneEntry
from generation.models import (
    Artifact,
    Deliverable,
    DeliverableKind,
    DeliverableState,
    JobState,
    RenderJob,
    deliverables_storage,
)

log = logging.getLogger(__name__)

MISSING_CHOICES = ("stop", "latest")
# Live progress is sent in steps of this many percent, not for every block written.
PROGRESS_STEP = 5
# A queued build whose task message has not started it within this long is sent again.
REQUEUE_AFTER_S = 60.0

EXTENSIONS = {
    DeliverableKind.ZIP: "zip",
    DeliverableKind.CONTACT_PNG: "png",
    DeliverableKind.CONTACT_PDF: "pdf",
    DeliverableKind.ANIMATIC: "mp4",
    DeliverableKind.SHOTLIST: "csv",
}
CONTENT_TYPES = {
    DeliverableKind.ZIP: "application/zip",
    DeliverableKind.CONTACT_PNG: "image/png",
    DeliverableKind.CONTACT_PDF: "application/pdf",
    DeliverableKind.ANIMATIC: "video/mp4",
    DeliverableKind.SHOTLIST: "text/csv",
}


class DeliverableRefused(Exception):
    """A deliverable that cannot be built as things stand; the message says why and where."""


class DeliverableBusy(DeliverableRefused):
    """One of that kind is already being built for the brief."""


def _scene_names(scenes: list[Scene]) -> str:
    return ", ".join(f"scene {scene.position} ({scene.title})" for scene in scenes)


def _newest_takes(brief: Brief) -> dict[int, RenderJob]:
    newest: dict[int, RenderJob] = {}
    jobs = RenderJob.objects.filter(brief=brief, state=JobState.SUCCEEDED).order_by(
        "scene_id", "-finished_at", "-created_at", "-id"
    )
    for job in jobs.select_related("template"):
        newest.setdefault(job.scene_id, job)
    return newest


def _opener(name: str) -> Callable[[], BinaryIO]:
    def open_file() -> BinaryIO:
        handle: Any = storages["artifacts"].open(name, "rb")
        return handle

    return open_file


def deliverable_plan(*, brief: Brief, missing: str) -> tuple[Plan, list[str]]:
    """The brief's scenes in order, each with its final (or, with missing="latest", its newest take
    when none is picked), and notes on what was used in place of a final.

    Raises DeliverableRefused naming every scene that stops it.
    """
    if missing not in MISSING_CHOICES:
        raise DeliverableRefused(
            f"missing must be one of {', '.join(MISSING_CHOICES)} (what to do with scenes that have "
            f"no final), not “{str(missing)[:40]}”."
        )
    scenes = list(
        Scene.objects.filter(brief=brief)
        .select_related("final", "final__template")
        .order_by("position", "id")
    )
    if not scenes:
        raise DeliverableRefused("This brief has no scenes: there is nothing to deliver.")
    finals: dict[int, RenderJob] = {}
    for scene in scenes:
        final = scene.final
        if final is not None and final.state == JobState.SUCCEEDED and final.scene_id == scene.pk:
            finals[scene.pk] = final
    without = [scene for scene in scenes if scene.pk not in finals]
    if without and not finals and missing == "stop":
        raise DeliverableRefused(
            f"No scene has a final yet ({_scene_names(without)}): pick a take for each scene, "
            "or build with each scene's latest take."
        )
    if without and missing == "stop":
        raise DeliverableRefused(
            f"No final picked for {_scene_names(without)}: pick one, or build with the latest take "
            "for the scenes without one."
        )
    notes: list[str] = []
    if without:
        newest = _newest_takes(brief)
        untaken = [scene for scene in without if scene.pk not in newest]
        if untaken:
            raise DeliverableRefused(
                f"{_scene_names(untaken)} {'has' if len(untaken) == 1 else 'have'} no final and no "
                "successful take: render or remove them first."
            )
        for scene in without:
            finals[scene.pk] = newest[scene.pk]
        notes.append(f"No final picked for {_scene_names(without)}: used the latest take.")
    artifacts: dict[int, list[Artifact]] = {}
    for artifact in Artifact.objects.filter(job__in=[job.pk for job in finals.values()]).order_by(
        "created_at", "id"
    ):
        artifacts.setdefault(artifact.job_id, []).append(artifact)
    entries = []
    for position, scene in enumerate(scenes, 1):
        job = finals[scene.pk]
        files = artifacts.get(job.pk, [])
        if not files:
            raise DeliverableRefused(f"Scene {position} ({scene.title}): its take has no stored files.")
        params = job.params if isinstance(job.params, dict) else {}
        seed = params.get("seed")
        entries.append(
            SceneEntry(
                position=position,
                title=scene.title,
                duration_s=Decimal(scene.duration_s),
                transition=scene.transition,
                take=str(job.uuid),
                source="latest" if scene in without else "final",
                prompt=str(params.get("prompt", "")),
                negative_prompt=str(params.get("negative_prompt", "")),
                seed=seed if isinstance(seed, int) else None,
                template=job.template.slug,
                template_version=job.template_version,
                shot_type=scene.shot_type,
                camera_move=scene.camera_move,
                lens=scene.lens,
                lighting=scene.lighting,
                mood=scene.mood,
                files=tuple(
                    FinalFile(
                        name=artifact.storage_name,
                        content_type=artifact.content_type,
                        size=artifact.size_bytes,
                        sha256=artifact.sha256,
                        open=_opener(artifact.storage_name),
                    )
                    for artifact in files
                ),
            )
        )
    plan = Plan(
        brief_title=brief.title,
        brief_uuid=str(brief.uuid),
        aspect_ratio=brief.aspect_ratio,
        scenes=tuple(entries),
    )
    return plan, notes


def _check(plan: Plan, kind: str) -> None:
    """What can be told before any work: files gone from storage, an animatic too long."""
    storage = storages["artifacts"]
    if kind != DeliverableKind.SHOTLIST:
        gone = [
            f"{scene.label}: {file.name}"
            for scene in plan.scenes
            for file in (scene.files if kind == DeliverableKind.ZIP else (scene.picture,))
            if not storage.exists(file.name)
        ]
        if gone:
            raise BuildError(f"Files missing from storage: {'; '.join(gone)}.")
    limit = settings.DELIVERABLE_ANIMATIC_MAX_S
    if kind == DeliverableKind.ANIMATIC and plan.total_s > Decimal(str(limit)):
        raise BuildError(
            f"The animatic would run {float(plan.total_s):.0f} s ({len(plan.scenes)} scenes); at most "
            f"{limit:.0f} s are built (DELIVERABLE_ANIMATIC_MAX_S)."
        )


def deliverable_request(
    *, brief: Brief, kind: str, user: User | AnonymousUser | None, missing: str = "stop", titles: bool = False
) -> Deliverable:
    """Queue a deliverable's build; refused at once when the brief cannot make it as it stands."""
    if kind not in DeliverableKind.values:
        raise DeliverableRefused(
            f"kind must be one of {', '.join(DeliverableKind.values)}, not “{str(kind)[:40]}”."
        )
    plan, _notes = deliverable_plan(brief=brief, missing=missing)
    try:
        _check(plan, kind)
    except BuildError as exc:
        raise DeliverableRefused(str(exc)) from None
    created_by = user if isinstance(user, User) else None
    try:
        with transaction.atomic():
            deliverable = Deliverable.objects.create(
                brief=brief,
                kind=kind,
                options={"missing": missing, "titles": bool(titles)},
                created_by=created_by,
            )
            events.publish_deliverable_updated(deliverable, brief_uuid=brief.uuid)
    except IntegrityError:
        raise DeliverableBusy(
            f"A {DeliverableKind(kind).label.lower()} is already being built for this brief; "
            "wait for it to finish."
        ) from None
    from generation.tasks import build_deliverable

    transaction.on_commit(lambda: build_deliverable.delay(deliverable.pk))
    return deliverable


def _publish(deliverable_id: int) -> None:
    deliverable = Deliverable.objects.select_related("brief").get(pk=deliverable_id)
    events.publish_deliverable_updated(deliverable, brief_uuid=deliverable.brief.uuid)


def _progress(deliverable_id: int) -> Progress:
    last = [0]

    def report(done: float) -> None:
        percent = min(99, int(done * 100))
        if percent < last[0] + PROGRESS_STEP:
            return
        last[0] = percent
        with transaction.atomic():
            if Deliverable.objects.filter(pk=deliverable_id, state=DeliverableState.RUNNING).update(
                progress=percent, updated_at=timezone.now()
            ):
                _publish(deliverable_id)

    return report


def _write(kind: str, plan: Plan, out: IO[bytes], *, titles: bool, progress: Progress) -> None:
    if kind == DeliverableKind.ZIP:
        build_zip(plan, out, created_at=timezone.now().isoformat(), progress=progress)  # type: ignore[arg-type]
    elif kind == DeliverableKind.CONTACT_PNG:
        build_contact_sheet(plan, out, fmt="png", progress=progress)  # type: ignore[arg-type]
    elif kind == DeliverableKind.CONTACT_PDF:
        build_contact_sheet(plan, out, fmt="pdf", progress=progress)  # type: ignore[arg-type]
    elif kind == DeliverableKind.ANIMATIC:
        build_animatic(plan, out, titles=titles, progress=progress)  # type: ignore[arg-type]
    else:
        text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=True)
        write_shot_list(plan, text, progress=progress)
        text.flush()
        text.detach()


def _digest(handle: IO[bytes]) -> tuple[int, str]:
    handle.seek(0)
    digest = hashlib.sha256()
    size = 0
    while block := handle.read(1024 * 1024):
        digest.update(block)
        size += len(block)
    handle.seek(0)
    return size, digest.hexdigest()


def deliverable_fail(*, deliverable_id: int, error: str, from_states: frozenset[str] | None = None) -> bool:
    with transaction.atomic():
        failed = Deliverable.objects.filter(
            pk=deliverable_id, state__in=from_states or {DeliverableState.QUEUED, DeliverableState.RUNNING}
        ).update(
            state=DeliverableState.FAILED,
            error=error[:2000],
            finished_at=timezone.now(),
            updated_at=timezone.now(),
        )
        if failed:
            _publish(deliverable_id)
    return bool(failed)


def deliverable_build(*, deliverable_id: int) -> Deliverable:
    """Build a queued deliverable; any other state is left alone (another worker has it, or it ended)."""
    with transaction.atomic():
        moved = Deliverable.objects.filter(pk=deliverable_id, state=DeliverableState.QUEUED).update(
            state=DeliverableState.RUNNING, progress=0, started_at=timezone.now(), updated_at=timezone.now()
        )
        if moved:
            _publish(deliverable_id)
    deliverable = Deliverable.objects.select_related("brief").get(pk=deliverable_id)
    if not moved:
        return deliverable
    kind = deliverable.kind
    storage = deliverables_storage()
    stored: str | None = None
    try:
        plan, notes = deliverable_plan(
            brief=deliverable.brief, missing=deliverable.options.get("missing", "stop")
        )
        _check(plan, kind)
        with tempfile.TemporaryFile() as scratch:
            _write(
                kind,
                plan,
                scratch,
                titles=bool(deliverable.options.get("titles")),
                progress=_progress(deliverable_id),
            )
            size, sha256 = _digest(scratch)
            # Its own name: nothing points at it until the row below says it is whole.
            stored = storage.save(
                f"{deliverable.brief.uuid}/{kind}-{deliverable.uuid}.{EXTENSIONS[DeliverableKind(kind)]}",
                File(scratch),
            )
        if not _complete(deliverable, file_name=stored, size=size, sha256=sha256, notes=" ".join(notes)):
            storage.delete(stored)
    except (BuildError, DeliverableRefused) as exc:
        _discard(stored)
        deliverable_fail(
            deliverable_id=deliverable_id, error=str(exc), from_states=frozenset({DeliverableState.RUNNING})
        )
    except Exception:
        log.exception("deliverable %s failed", deliverable.uuid)
        _discard(stored)
        deliverable_fail(
            deliverable_id=deliverable_id,
            error="The deliverable could not be built (an internal error, logged for the studio's staff).",
            from_states=frozenset({DeliverableState.RUNNING}),
        )
    deliverable.refresh_from_db()
    return deliverable


def _discard(name: str | None) -> None:
    if name:
        try:
            deliverables_storage().delete(name)
        except OSError:
            log.warning("could not delete %s", name, exc_info=True)


def _complete(deliverable: Deliverable, *, file_name: str, size: int, sha256: str, notes: str) -> bool:
    """Swap the new file in: this row succeeds and the older ones of its kind go, in one step."""
    with transaction.atomic():
        done = Deliverable.objects.filter(pk=deliverable.pk, state=DeliverableState.RUNNING).update(
            state=DeliverableState.SUCCEEDED,
            progress=100,
            file_name=file_name,
            size_bytes=size,
            sha256=sha256,
            notes=notes,
            finished_at=timezone.now(),
            updated_at=timezone.now(),
        )
        if not done:
            return False
        older = Deliverable.objects.filter(brief_id=deliverable.brief_id, kind=deliverable.kind).exclude(
            pk=deliverable.pk
        )
        older = older.exclude(state__in=[DeliverableState.QUEUED, DeliverableState.RUNNING])
        old_files = [name for name in older.values_list("file_name", flat=True) if name]
        older.delete()
        _publish(deliverable.pk)

        def discard_old() -> None:
            for name in old_files:
                _discard(name)

        transaction.on_commit(discard_old)
    return True


def deliverables_left_behind(*, stale_after_s: float) -> list[int]:
    """Fail builds whose worker stopped moving them; return queued ones whose message seems lost."""
    now = timezone.now()
    for deliverable_id in Deliverable.objects.filter(
        state=DeliverableState.RUNNING, updated_at__lt=now - timedelta(seconds=stale_after_s)
    ).values_list("pk", flat=True):
        deliverable_fail(
            deliverable_id=deliverable_id,
            error="The build stopped (its worker was lost); build it again.",
            from_states=frozenset({DeliverableState.RUNNING}),
        )
    return list(
        Deliverable.objects.filter(
            state=DeliverableState.QUEUED, updated_at__lt=now - timedelta(seconds=REQUEUE_AFTER_S)
        ).values_list("pk", flat=True)
    )

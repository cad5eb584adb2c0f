"""Reads about renders that need more than one query."""

from uuid import UUID

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import Count, Q, QuerySet

from briefs.models import Brief
from briefs.selectors import briefs_visible_to
from generation.models import (
    IN_FLIGHT_STATES,
    Artifact,
    Backend,
    Deliverable,
    DeliverableKind,
    DeliverableState,
    JobState,
    RenderJob,
)


def jobs_visible_to(user: User | AnonymousUser) -> QuerySet[RenderJob]:
    return RenderJob.objects.filter(brief__in=briefs_visible_to(user))


def artifacts_visible_to(user: User | AnonymousUser) -> QuerySet[Artifact]:
    return Artifact.objects.filter(job__brief__in=briefs_visible_to(user))


def latest_job_per_scene(brief: Brief) -> dict[int, RenderJob]:
    """The newest job of each scene of a brief, in two queries."""
    latest: dict[int, RenderJob] = {}
    jobs = (
        RenderJob.objects.filter(brief=brief)
        .select_related("scene", "brief")
        .prefetch_related("artifacts")
        .order_by("scene_id", "-created_at", "-id")
    )
    for job in jobs:
        latest.setdefault(job.scene_id, job)
    return latest


def latest_frame_per_scene(brief: Brief) -> dict[int, tuple[UUID, str]]:
    """Each scene's newest successful job's first visual output (its uuid and kind: image, animated
    or video): the frame its card shows, kept while a newer render runs or after one fails. A job
    whose outputs are all sound shows its first one."""
    frames: dict[int, tuple[UUID, str]] = {}
    rows = (
        Artifact.objects.filter(job__brief=brief, job__state=JobState.SUCCEEDED)
        .order_by("job__scene_id", "-job__created_at", "-job_id", "created_at", "id")
        .values_list("job__scene_id", "job_id", "uuid", "kind")
    )
    chosen_job: dict[int, int] = {}
    for scene_id, job_id, artifact_uuid, kind in rows:
        if chosen_job.setdefault(scene_id, job_id) != job_id:
            continue  # an older take of the scene
        held = frames.get(scene_id)
        if held is None or (held[1] == "audio" and kind != "audio"):
            frames[scene_id] = (artifact_uuid, kind)
    return frames


def backends_with_load() -> QuerySet[Backend]:
    """Backends annotated with `in_flight`: their jobs dispatched, rendering or being fetched."""
    return Backend.objects.annotate(
        in_flight=Count("render_jobs", filter=Q(render_jobs__state__in=IN_FLIGHT_STATES))
    )


def deliverables_visible_to(user: User | AnonymousUser) -> QuerySet[Deliverable]:
    return Deliverable.objects.filter(brief__in=briefs_visible_to(user))


def brief_deliverables(brief: Brief) -> list[tuple[str, Deliverable | None, Deliverable | None]]:
    """Per kind, in the panel's order: (kind, its newest build, its newest finished file)."""
    newest: dict[str, Deliverable] = {}
    ready: dict[str, Deliverable] = {}
    for deliverable in Deliverable.objects.filter(brief=brief).order_by("-created_at", "-id"):
        newest.setdefault(deliverable.kind, deliverable)
        if deliverable.state == DeliverableState.SUCCEEDED:
            ready.setdefault(deliverable.kind, deliverable)
    return [(kind, newest.get(kind), ready.get(kind)) for kind in DeliverableKind.values]

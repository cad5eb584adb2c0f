"""How far each brief of a list has come: scenes rendered, last activity, a strip of frames.

Reads only, for the brief list: a fixed number of queries for any number of briefs.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from django.db.models import Exists, Max, OuterRef, Subquery

from briefs.models import Brief, Scene
from generation.models import Artifact, JobState, RenderJob

THUMBS_PER_BRIEF = 6


@dataclass(frozen=True)
class Progress:
    """Scenes done out of scenes: those with a successful render, and those with a final picked."""

    scenes: int
    rendered: int
    finals: int | None = None

    @property
    def label(self) -> str:
        if not self.scenes:
            return "No scenes yet"
        text = f"{self.rendered} of {self.scenes} rendered"
        if self.finals is not None:
            text += f", {self.finals} with a final"
        return text


@dataclass(frozen=True)
class Thumb:
    artifact_uuid: UUID
    position: int
    title: str


@dataclass
class BriefSummary:
    progress: Progress
    last_activity: datetime
    thumbs: list[Thumb] = field(default_factory=list)


def brief_summaries(briefs: Sequence[Brief]) -> dict[int, BriefSummary]:
    """Per brief pk: its progress, when anything last happened to it, and its first frames.

    A scene counts as rendered once it has a successful render (as the board counts it); its
    thumbnail is the first image of its newest successful job, so a failed retake leaves the last
    good frame in the strip.
    """
    ids = [brief.pk for brief in briefs]
    # Rendered: a scene with a successful render (a take), as the editor's board counts it; a
    # failed retake does not undo it.
    rendered = RenderJob.objects.filter(scene=OuterRef("pk"), state=JobState.SUCCEEDED)
    newest_frame = Artifact.objects.filter(
        job__scene=OuterRef("pk"), job__state=JobState.SUCCEEDED, content_type__startswith="image/"
    ).order_by("-job__created_at", "-job__id", "created_at", "id")
    scenes = (
        Scene.objects.filter(brief_id__in=ids)
        .annotate(
            has_take=Exists(rendered),
            frame_uuid=Subquery(newest_frame.values("uuid")[:1]),
        )
        .order_by("brief_id", "position", "id")
        .values_list("brief_id", "position", "title", "has_take", "frame_uuid", "final_id")
    )
    last_job_at = dict(
        RenderJob.objects.filter(brief_id__in=ids)
        .values("brief_id")
        .annotate(last=Max("updated_at"))
        .values_list("brief_id", "last")
    )
    counts: dict[int, list[int]] = {pk: [0, 0, 0] for pk in ids}
    thumbs: dict[int, list[Thumb]] = {pk: [] for pk in ids}
    for brief_id, position, title, has_take, frame_uuid, final_id in scenes:
        counts[brief_id][0] += 1
        counts[brief_id][1] += bool(has_take)
        counts[brief_id][2] += final_id is not None
        if frame_uuid is not None and len(thumbs[brief_id]) < THUMBS_PER_BRIEF:
            thumbs[brief_id].append(Thumb(artifact_uuid=frame_uuid, position=position, title=title))
    summaries = {}
    for brief in briefs:
        job_at = last_job_at.get(brief.pk)
        summaries[brief.pk] = BriefSummary(
            progress=Progress(
                scenes=counts[brief.pk][0], rendered=counts[brief.pk][1], finals=counts[brief.pk][2]
            ),
            last_activity=max(brief.updated_at, job_at) if job_at else brief.updated_at,
            thumbs=thumbs[brief.pk],
        )
    return summaries

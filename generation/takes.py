"""Takes: every successful render of a scene, read with what it came from.

A take is a succeeded RenderJob of the scene; its files are its artifacts. It is stale when the
scene, the story bible or the workflow moved on since it was rendered. Reads only: picking a final is
`briefs.services.scene_pick_final`, rendering again `generation.services.take_render_again`.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import QuerySet
from django.urls import reverse
from django.utils import timezone

from briefs.models import Brief, Scene
from briefs.selectors import template_in_effect
from generation.models import (
    TERMINAL_STATES,
    Artifact,
    Attempt,
    AttemptState,
    Backend,
    JobState,
    RenderJob,
    WorkflowTemplate,
)

# The newest takes a card's strip shows; older ones stay reachable through the API.
STRIP_LENGTH = 12
# Past renders an estimate is drawn from: the newest ones, so that it follows a backend's pace.
ETA_SAMPLE = 50


@dataclass
class Take:
    job: RenderJob
    artifact: Artifact | None
    is_final: bool
    stale: list[str] = field(default_factory=list)
    backend: str = ""
    render_s: float | None = None
    cost_usd: Decimal | None = None

    @property
    def label(self) -> str:
        return f"Take of {timezone.localtime(self.job.created_at):%b %-d, %H:%M:%S}"

    @property
    def artifact_url(self) -> str | None:
        return reverse("briefs:artifact", args=[self.artifact.uuid]) if self.artifact else None

    @property
    def is_video(self) -> bool:
        return bool(self.artifact and self.artifact.content_type.startswith("video/"))

    @property
    def is_audio(self) -> bool:
        return bool(self.artifact and self.artifact.content_type.startswith("audio/"))

    @property
    def stale_note(self) -> str:
        return "Stale: " + "; ".join(self.stale) + "." if self.stale else ""


def stale_reasons(job: RenderJob, scene: Scene, template: WorkflowTemplate | None) -> list[str]:
    """What changed since the take was rendered: the scene's text, the story bible, the workflow
    (a newer version of the one it used, or another one the scene now renders with)."""
    reasons = []
    if job.scene_version != scene.version:
        reasons.append(f"the scene was edited (version {job.scene_version} → {scene.version})")
    bible = job.params.get("bible_version")
    if bible is not None and bible != scene.brief.bible_version:
        reasons.append(f"the story bible changed (version {bible} → {scene.brief.bible_version})")
    if job.template.version != job.template_version:
        reasons.append(
            f"the workflow {job.template.name} changed (v{job.template_version} → v{job.template.version})"
        )
    if template is not None and template.pk != job.template_id:
        reasons.append(f"the scene now renders with {template.name}")
    return reasons


def _attempt_figures(attempts: list[Attempt]) -> tuple[str, float | None, Decimal | None]:
    """The backend that delivered, its render seconds, and what every attempt cost together."""
    backend, seconds, cost = "", None, None
    for attempt in attempts:
        telemetry = attempt.telemetry or {}
        if telemetry.get("estimated_cost_usd") is not None:
            cost = (cost or Decimal(0)) + Decimal(str(telemetry["estimated_cost_usd"]))
        if attempt.state == AttemptState.SUCCEEDED:
            backend = attempt.backend.name
            if telemetry.get("duration_s") is not None:
                seconds = round(float(telemetry["duration_s"]), 2)
    return backend, seconds, cost


def _takes(jobs: QuerySet[RenderJob], finals: Mapping[int, int | None]) -> dict[int, list[Take]]:
    """Takes grouped by scene id, newest first; `finals` maps a scene id to its final's job id."""
    templates: dict[int, WorkflowTemplate | None] = {}
    grouped: dict[int, list[Take]] = {}
    for job in jobs:
        scene = job.scene
        if scene.pk not in templates:
            templates[scene.pk] = template_in_effect(brief=scene.brief, template=scene.template)
        artifacts = list(job.artifacts.all())
        backend, seconds, cost = _attempt_figures(list(job.attempts.all()))
        grouped.setdefault(scene.pk, []).append(
            Take(
                job=job,
                # The take's face: its first picture or clip; a sound only when it made nothing else.
                artifact=next(
                    (a for a in artifacts if a.kind != "audio"), artifacts[0] if artifacts else None
                ),
                is_final=finals.get(scene.pk) == job.pk,
                stale=stale_reasons(job, scene, templates[scene.pk]),
                backend=backend,
                render_s=seconds,
                cost_usd=cost,
            )
        )
    return grouped


def _take_rows(queryset: QuerySet[RenderJob]) -> QuerySet[RenderJob]:
    return (
        queryset.filter(state=JobState.SUCCEEDED)
        .select_related("scene", "scene__brief", "scene__template", "template")
        .prefetch_related("artifacts", "attempts__backend")
        .order_by("scene_id", "-created_at", "-id")
    )


def takes_per_scene(brief: Brief, *, only: Scene | None = None) -> dict[int, list[Take]]:
    """Each scene's takes, newest first, at most STRIP_LENGTH each (its final always among them)."""
    scenes = Scene.objects.filter(brief=brief)
    if only is not None:
        scenes = scenes.filter(pk=only.pk)
    finals = dict(scenes.values_list("pk", "final_id"))
    grouped = _takes(_take_rows(RenderJob.objects.filter(scene_id__in=finals)), finals)
    for scene_id, takes in grouped.items():
        if len(takes) > STRIP_LENGTH:
            kept = takes[:STRIP_LENGTH]
            kept += [t for t in takes[STRIP_LENGTH:] if t.is_final]
            grouped[scene_id] = kept
    return grouped


def takes_by_uuid(brief: Brief, uuids: list[str]) -> list[Take]:
    """The named takes of the brief, in the order named; unknown or unfinished ones left out."""
    jobs = _take_rows(RenderJob.objects.filter(brief=brief, uuid__in=uuids))
    finals = dict(Scene.all_objects.filter(brief=brief).values_list("pk", "final_id"))
    found = {str(take.job.uuid): take for takes in _takes(jobs, finals).values() for take in takes}
    return [found[u] for u in dict.fromkeys(uuids) if u in found]


# What a take's parameters are compared on, in the order the compare table shows them.
COMPARED = (
    ("scene", "Scene"),
    ("scene_version", "Scene version"),
    ("bible_version", "Story bible version"),
    ("template", "Workflow"),
    ("seed", "Seed"),
    ("prompt", "Prompt"),
    ("negative_prompt", "Negative prompt"),
    ("backend", "Backend"),
    ("render_s", "Render time (s)"),
    ("cost_usd", "Cost (USD)"),
)


def take_parameters(take: Take) -> dict[str, Any]:
    """What one take was rendered with, flat: the compare table's columns."""
    job = take.job
    values: dict[str, Any] = {
        "scene": f"{job.scene.position}. {job.scene.title}",
        "scene_version": job.scene_version,
        "bible_version": job.params.get("bible_version"),
        "template": f"{job.template.name} v{job.template_version}",
        "seed": job.params.get("seed"),
        "prompt": job.params.get("prompt"),
        "negative_prompt": job.params.get("negative_prompt") or "",
        "backend": take.backend,
        "render_s": take.render_s,
        "cost_usd": f"{take.cost_usd:.4f}" if take.cost_usd is not None else None,
    }
    for name, value in sorted((job.params.get("inputs") or {}).items()):
        values[f"inputs.{name}"] = value
    return values


def take_differences(takes: list[Take]) -> list[dict[str, Any]]:
    """The parameters whose values differ between the takes: name, label and one value per take."""
    rows = [take_parameters(take) for take in takes]
    labels = dict(COMPARED)
    names = list(labels) + sorted({n for row in rows for n in row if n not in labels})
    differences = []
    for name in names:
        values = [row.get(name) for row in rows]
        if any(value != values[0] for value in values[1:]):
            label = labels.get(name) or name.removeprefix("inputs.").replace("_", " ").capitalize()
            differences.append({"name": name, "label": label, "values": values})
    return differences


def take_payload(take: Take) -> dict[str, Any]:
    job = take.job
    return {
        "take": str(job.uuid),
        "scene": str(job.scene.uuid),
        "label": take.label,
        "created_at": job.created_at.isoformat(),
        "artifact_url": take.artifact_url,
        "content_type": take.artifact.content_type if take.artifact else None,
        "is_final": take.is_final,
        "stale": take.stale,
        "parameters": take_parameters(take),
    }


# -- review: the brief's current picks, in story order --------------------------------------------
@dataclass
class ReelShot:
    scene: Scene
    take: Take | None


def review_reel(brief: Brief) -> list[ReelShot]:
    """Each scene in story order with its final, else its newest take (None: never rendered)."""
    grouped = takes_per_scene(brief)
    reel = []
    for scene in brief.scenes.order_by("position"):
        takes = grouped.get(scene.pk, [])
        final = next((t for t in takes if t.is_final), None)
        reel.append(ReelShot(scene=scene, take=final or (takes[0] if takes else None)))
    return reel


# -- how long a render takes --------------------------------------------------------------------
@dataclass(frozen=True)
class Estimate:
    """Render seconds of past successful attempts: the median and the middle half's bounds."""

    median_s: float
    low_s: float
    high_s: float
    samples: int


def render_estimate(*, template: WorkflowTemplate, backend: Backend | None) -> Estimate | None:
    """From the newest successful attempts of the template (on the backend, when it is known);
    None before there is any."""
    attempts = Attempt.objects.filter(state=AttemptState.SUCCEEDED, job__template=template)
    if backend is not None:
        attempts = attempts.filter(backend=backend)
    seconds = [
        float(t["duration_s"])
        for t in attempts.order_by("-finished_at", "-id").values_list("telemetry", flat=True)[:ETA_SAMPLE]
        if t and t.get("duration_s") is not None
    ]
    if not seconds:
        return None
    if len(seconds) == 1:
        return Estimate(median_s=seconds[0], low_s=seconds[0], high_s=seconds[0], samples=1)
    low, _, high = statistics.quantiles(seconds, n=4, method="inclusive")
    return Estimate(
        median_s=round(statistics.median(seconds), 2),
        low_s=round(low, 2),
        high_s=round(high, 2),
        samples=len(seconds),
    )


def _expected_finish(job: RenderJob, estimate: Estimate, now: datetime) -> datetime:
    if job.started_at is not None:
        return max(now, job.started_at + timedelta(seconds=estimate.median_s))
    return now + timedelta(seconds=estimate.median_s)


def _estimate_json(estimate: Estimate | None) -> dict[str, Any] | None:
    if estimate is None:
        return None
    return {
        "median_s": estimate.median_s,
        "low_s": estimate.low_s,
        "high_s": estimate.high_s,
        "samples": estimate.samples,
    }


def brief_eta(brief: Brief) -> dict[str, Any]:
    """Expected finish of each open render of the brief and of the brief as a whole.

    A job's estimate comes from its template on its backend (the one asked for, or dispatched to),
    else on any backend. The brief's finish spreads the open renders' remaining seconds over the
    enabled backends' capacity: renders queue behind one another.
    """
    now = timezone.now()
    open_jobs = (
        RenderJob.objects.filter(brief=brief)
        .exclude(state__in=TERMINAL_STATES)
        .select_related("scene", "template", "backend", "requested_backend")
        .order_by("created_at", "id")
    )
    cache: dict[tuple[int, int | None], Estimate | None] = {}
    jobs = []
    remaining = 0.0
    unknown = 0
    for job in open_jobs:
        backend = job.backend or job.requested_backend
        key = (job.template_id, backend.pk if backend else None)
        if key not in cache:
            cache[key] = render_estimate(template=job.template, backend=backend)
            if cache[key] is None and backend is not None:
                cache[key] = render_estimate(template=job.template, backend=None)
        estimate = cache[key]
        finish = _expected_finish(job, estimate, now) if estimate else None
        if finish is not None:
            remaining += (finish - now).total_seconds()
        else:
            unknown += 1
        jobs.append(
            {
                "job": str(job.uuid),
                "scene": str(job.scene.uuid),
                "state": job.state,
                "estimate": _estimate_json(estimate),
                "expected_at": finish.isoformat() if finish else None,
            }
        )
    capacity = sum(Backend.objects.filter(enabled=True, draining=False).values_list("capacity", flat=True))
    expected_at = now + timedelta(seconds=remaining / max(1, capacity)) if jobs and not unknown else None
    return {
        "now": now.isoformat(),
        "jobs": jobs,
        "open": len(jobs),
        "expected_at": expected_at.isoformat() if expected_at else None,
        "unestimated": unknown,
    }

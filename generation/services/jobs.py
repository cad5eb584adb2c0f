"""Renders: submit a scene or a brief, move a job between states, cancel.

A job's state moves only through `job_transition`, a conditional UPDATE that
acts when exactly one row changed, so two workers can never both move one job.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import random
from collections.abc import Collection
from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.core.files.storage import storages
from django.db import transaction
from django.utils import timezone

from briefs import services as brief_services
from briefs.models import Brief, Scene
from briefs.selectors import composed_for, studio_default_template
from generation import events
from generation.models import (
    TERMINAL_STATES,
    AttemptState,
    Backend,
    JobEvent,
    JobState,
    Priority,
    QueuePolicy,
    RenderBatch,
    RenderJob,
    WorkflowTemplate,
)
from generation.nudge import FINISH_RUNS, nudge
from generation.policies import policy_in_force
from generation.workflow_binding import (
    IMAGE_PARAMETERS,
)
from generation.workflow_parameters import check_values, parameters_from_json, values_to_send

log = logging.getLogger(__name__)


MAX_SEED = 2**48


class RenderRefused(Exception):
    """A render that cannot be asked for as things stand; the message says why."""


class RenderAlreadyOpen(RenderRefused):
    """A render of a scene whose same version (scene, story bible, template) is still queued or
    running: asked again with `again=True`, it is queued anyway. `job` is the open one."""

    def __init__(self, message: str, *, job: RenderJob) -> None:
        super().__init__(message)
        self.job = job


class RenderScenesOpen(RenderRefused):
    """Render all, asked, while some scenes are still rendering their unchanged version.
    `scenes` are those scenes' uuids, in order; `open_scenes="skip"` or `"again"` decides."""

    def __init__(self, message: str, *, scenes: list[str]) -> None:
        super().__init__(message)
        self.scenes = scenes


OPEN_SCENES_CHOICES = ("ask", "skip", "again")


def _user_or_none(user: User | AnonymousUser | None) -> User | None:
    return user if isinstance(user, User) else None


def _policy_bounded_for(user: User | AnonymousUser | None) -> bool:
    """Whether the user may only tighten a queue policy: everyone but staff and the studio's own code."""
    return user is not None and not (user.is_active and user.is_staff)


def default_template() -> WorkflowTemplate:
    template = studio_default_template()
    if template is None:
        raise RenderRefused("No workflow template is loaded; run `manage.py load_workflows`.")
    return template


def _require_a_backend(requested: Backend | None) -> None:
    """Refuse at once what could only wait for ever: no backend at all, or a disabled one asked for."""
    if requested is not None and not requested.enabled:
        raise RenderRefused(f"The backend {requested.name} is disabled; render without naming it.")
    if not Backend.objects.filter(enabled=True).exists():
        raise RenderRefused("No render backend is enabled; add one in the admin.")


def scene_template(scene: Scene) -> WorkflowTemplate:
    """The template a scene renders with: its own, else its brief's, else the studio's default."""
    if scene.template is not None:
        if not scene.template.enabled:
            raise RenderRefused(
                f"Scene {scene.position} ({scene.title}) uses the workflow {scene.template.name}, "
                "which is taken out of use; choose another for it."
            )
        return scene.template
    return scene.brief.template or default_template()


def scene_template_inputs(scene: Scene, template: WorkflowTemplate, *, own: bool = True) -> dict[str, Any]:
    """Every parameter of `template` as it is sent: the scene's values over the template's defaults.

    A value saved before the template changed may no longer fit it; the render is refused, naming
    the scene and the parameter, rather than sending something else than the scene says. Rendered
    with another template than its own (`own=False`), the scene's values for parameters that
    template lacks are left out.
    """
    parameters = parameters_from_json(template.parameters)
    stored = dict(scene.params or {})
    if not own:
        takes = {p.name for p in parameters}
        stored = {name: value for name, value in stored.items() if name in takes}
    kept, errors = check_values(parameters, stored, template=template.name)
    if errors:
        raise RenderRefused(
            f"Scene {scene.position} ({scene.title}): {'; '.join(errors.values())}. "
            f"The workflow {template.name} changed since this was saved; edit the scene's parameters."
        )
    return values_to_send(parameters, kept)


# The scene's own words and shot, kept on each job so that a take can put them back ("restore").
SNAPSHOT_FIELDS = (
    "title",
    "action",
    "prompt",
    "negative_prompt",
    *brief_services.SHOT_FIELDS,
    "duration_s",
    "transition",
)


def scene_snapshot(scene: Scene) -> dict[str, Any]:
    values = {name: getattr(scene, name) for name in SNAPSHOT_FIELDS}
    values["duration_s"] = str(values["duration_s"])
    return values


def scene_render_params(
    scene: Scene, template: WorkflowTemplate, *, own: bool = True, seed: int | None = None
) -> dict[str, Any]:
    """The scene's values as they go into the workflow, snapshotted on the job.

    Input images are recorded by stored name and sha256, so a take can say
    exactly what it started from; the template decides which it needs. `inputs`
    holds every template parameter's value, sent through the template's bindings.
    `seed` renders with that seed whatever the scene says (a take rendered again).
    """
    inputs = scene_template_inputs(scene, template, own=own)
    composed = composed_for(scene)
    images: dict[str, dict[str, str]] = {}
    for parameter in IMAGE_PARAMETERS:
        if parameter not in template.bindings:
            continue
        field = scene.brief.reference_image if parameter == "reference_image" else scene.input_image
        if not field:
            where = (
                "the brief's character reference"
                if parameter == "reference_image"
                else f"an input image on scene {scene.position} ({scene.title})"
            )
            raise RenderRefused(f"The “{template.name}” workflow starts from an image: add {where}.")
        images[parameter] = {"name": field.name, "sha256": _sha256_of(field.name)}
    return {
        # What is sent, composed from the story bible, the cast, the shot and the scene's own prompt.
        "prompt": composed.prompt,
        "negative_prompt": composed.negative_prompt or None,
        "bible_version": scene.brief.bible_version,
        "seed": seed
        if seed is not None
        else scene.seed
        if scene.seed is not None
        else random.randrange(MAX_SEED),
        "label": f"{scene.position}. {scene.title}",
        "images": images,
        "inputs": inputs,
        "scene_fields": scene_snapshot(scene),
    }


def _sha256_of(name: str) -> str:
    digest = hashlib.sha256()
    with storages["inputs"].open(name, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 16), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _new_job(
    *,
    scene: Scene,
    template: WorkflowTemplate,
    backend: Backend | None,
    batch: RenderBatch | None,
    priority: int,
    policy: dict[str, Any],
    user: User | None,
    own: bool,
    seed: int | None = None,
) -> RenderJob:
    """A checked, unsaved job for one scene; `own`: whether `template` is the scene's own."""
    if not scene.prompt.strip():
        raise RenderRefused(f"Scene {scene.position} ({scene.title}) has no prompt to render.")
    return RenderJob(
        brief=scene.brief,
        scene=scene,
        batch=batch,
        template=template,
        template_version=template.version,
        template_sha256=template.content_sha256,
        scene_version=scene.version,
        params=scene_render_params(scene, template, own=own, seed=seed),
        requested_backend=backend,
        priority=priority,
        policy=policy,
        state=JobState.QUEUED,
        created_by=user,
    )


def _save_new_jobs(jobs: list[RenderJob]) -> list[RenderJob]:
    """Insert the jobs and their first events at once; a batch of hundreds must not
    keep the backends waiting while it is written one row at a time."""
    if len(jobs) == 1:
        jobs[0].save()
    else:
        jobs = RenderJob.objects.bulk_create(jobs)
    JobEvent.objects.bulk_create(
        JobEvent(job=job, from_state="", to_state=JobState.QUEUED, message="render requested") for job in jobs
    )
    events.publish_job_updates(jobs)
    dispatch_soon()
    return jobs


def dispatch_soon() -> None:
    """Ask a worker to run a dispatch round once the current transaction commits.

    Only a nudge: the job is already in the database, and the render watcher runs
    a round every few seconds, so a broker that is away delays nothing for long.
    """

    transaction.on_commit(nudge)


def _open_job_like(scene: Scene, template: WorkflowTemplate) -> RenderJob | None:
    """The scene's newest unfinished job, if it renders what a new one would: the same scene
    version, story bible version and template version."""
    job = (
        RenderJob.objects.filter(scene_id=scene.pk)
        .exclude(state__in=TERMINAL_STATES)
        .select_related("scene", "brief")
        .order_by("-created_at", "-pk")
        .first()
    )
    if job is None:
        return None
    same = (
        job.scene_version == scene.version
        and job.params.get("bible_version") == scene.brief.bible_version
        and job.template_id == template.pk
        and job.template_version == template.version
    )
    return job if same else None


def _ago(when: Any) -> str:
    seconds = max(0, int((timezone.now() - when).total_seconds()))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"


def _locked(scenes: list[Scene]) -> list[Scene]:
    """The scenes re-read under a row lock, in the order given: submits of one scene that arrive
    together check for an open render one after another, so only the first queues one."""
    # The brief first, as every change to a brief's scenes takes it (moves, deletes, events): one
    # order of locks, or two requests each holding what the other waits for deadlock.
    Brief.objects.select_for_update().filter(pk=scenes[0].brief_id).first()
    rows = {
        s.pk: s
        for s in Scene.objects.select_for_update()
        .select_related("brief")
        .filter(pk__in=[s.pk for s in scenes])
    }
    gone = [s for s in scenes if s.pk not in rows]
    if gone:
        raise RenderRefused(f"Scene {gone[0].position} ({gone[0].title}) has been deleted.")
    return [rows[s.pk] for s in scenes]


@transaction.atomic
def render_job_submit(
    *,
    scene: Scene,
    user: User | AnonymousUser | None,
    template: WorkflowTemplate | None = None,
    backend: Backend | None = None,
    preset: QueuePolicy | None = None,
    policy_overrides: dict[str, Any] | None = None,
    again: bool = False,
    seed: int | None = None,
) -> RenderJob:
    """Queue a render of the scene as it is stored now.

    While the same version is still queued or running, RenderAlreadyOpen asks first; `again`
    renders it anyway (a second take with another seed, say). `seed` overrides the scene's.
    """
    if seed is not None and not 0 <= seed < MAX_SEED:
        raise RenderRefused(f"A seed is a whole number from 0 to {MAX_SEED - 1}, not {seed}.")
    _require_a_backend(backend)
    (scene,) = _locked([scene])
    own = template is None
    template = template or scene_template(scene)
    if not again:
        open_job = _open_job_like(scene, template)
        if open_job is not None:
            raise RenderAlreadyOpen(
                f"Scene {scene.position} is already rendering this version "
                f"(queued {_ago(open_job.created_at)} ago). Render it again anyway?",
                job=open_job,
            )
    job = _new_job(
        scene=scene,
        template=template,
        backend=backend,
        batch=None,
        priority=Priority.INTERACTIVE,
        policy=policy_in_force(preset=preset, overrides=policy_overrides, bounded=_policy_bounded_for(user)),
        user=_user_or_none(user),
        own=own,
        seed=seed,
    )
    return _save_new_jobs([job])[0]


@transaction.atomic
def render_brief_submit(
    *,
    brief: Brief,
    user: User | AnonymousUser | None,
    template: WorkflowTemplate | None = None,
    backend: Backend | None = None,
    preset: QueuePolicy | None = None,
    policy_overrides: dict[str, Any] | None = None,
    open_scenes: str = "again",
) -> tuple[RenderBatch, list[RenderJob]]:
    """Render every scene of the brief in one batch.

    `open_scenes` says what to do with scenes whose unchanged version is still rendering:
    "ask" refuses with RenderScenesOpen naming them, "skip" leaves them out, "again" renders them too.
    """
    if open_scenes not in OPEN_SCENES_CHOICES:
        raise ValueError(f"open_scenes must be one of {', '.join(OPEN_SCENES_CHOICES)}, not {open_scenes!r}")
    scenes = list(brief.scenes.select_related("template").order_by("position"))
    if not scenes:
        raise RenderRefused("This brief has no scenes to render yet.")
    _require_a_backend(backend)
    if open_scenes != "again":
        scenes = _locked(scenes)
        rendering = [s for s in scenes if _open_job_like(s, template or scene_template(s)) is not None]
        if rendering and open_scenes == "ask":
            raise RenderScenesOpen(
                f"{len(rendering)} of {len(scenes)} scenes are already rendering unchanged. "
                "Render only the others, or all of them again?",
                scenes=[str(s.uuid) for s in rendering],
            )
        scenes = [s for s in scenes if s not in rendering]
        if not scenes:
            raise RenderRefused("Every scene is already rendering unchanged; nothing new to queue.")
    owner = _user_or_none(user)
    policy = policy_in_force(preset=preset, overrides=policy_overrides, bounded=_policy_bounded_for(user))
    batch = RenderBatch.objects.create(brief=brief, created_by=owner, policy=policy)
    jobs = [
        # Each scene with its own template when it names one: a job binds its scene's template version.
        _new_job(
            scene=scene,
            template=template or scene_template(scene),
            backend=backend,
            batch=batch,
            priority=Priority.BATCH,
            policy=policy,
            user=owner,
            own=template is None,
        )
        for scene in scenes
    ]
    return batch, _save_new_jobs(jobs)


def scene_delete_with_renders(*, scene: Scene) -> tuple[Scene | None, int]:
    """Delete a scene (restorable for a while: `briefs.services.scene_delete`) and cancel its
    unfinished renders. Returns the scene as deleted (None when it already was) and how many
    renders were cancelled."""
    with transaction.atomic():
        deleted = brief_services.scene_delete(scene=scene)
        cancelled = 0
        if deleted is not None:
            for job in RenderJob.objects.filter(scene_id=scene.pk).exclude(state__in=TERMINAL_STATES):
                cancelled += render_job_cancel(job=job)
    return deleted, cancelled


def job_transition(
    job_id: int, *, from_states: Collection[str], to_state: str, message: str = "", **fields: Any
) -> bool:
    """Move a job if, and only if, it is in one of `from_states`. Returns whether it moved."""
    now = timezone.now()
    if to_state in TERMINAL_STATES:
        fields.setdefault("finished_at", now)
    with transaction.atomic():
        current = RenderJob.objects.filter(pk=job_id).values_list("state", flat=True).first()
        changed = RenderJob.objects.filter(pk=job_id, state__in=from_states).update(
            state=to_state, updated_at=now, **fields
        )
        if changed != 1:
            return False
        JobEvent.objects.create(
            job_id=job_id, from_state=current or "", to_state=to_state, message=message[:2000]
        )
        job = RenderJob.objects.select_related("brief", "scene").get(pk=job_id)
        events.publish_job_update(job)
        if to_state in TERMINAL_STATES and job.batch_id is not None:
            # Perhaps the batch's last job: its run report is written and validated soon.
            transaction.on_commit(functools.partial(nudge, FINISH_RUNS))
    return True


def job_progress(job_id: int, *, value: int, maximum: int) -> bool:
    """Record progress of a running job; False when the job is not running."""
    with transaction.atomic():
        changed = RenderJob.objects.filter(pk=job_id, state=JobState.RUNNING).update(
            progress_value=value, progress_max=maximum, updated_at=timezone.now()
        )
        if changed:
            events.publish_job_update(RenderJob.objects.select_related("brief", "scene").get(pk=job_id))
    return bool(changed)


def render_job_cancel(*, job: RenderJob) -> bool:
    """Cancel a job in any unfinished state; a render out on a backend is stopped there too."""
    with transaction.atomic():
        cancelled = job_transition(
            job.pk,
            from_states=set(JobState) - TERMINAL_STATES,
            to_state=JobState.CANCELLED,
            error_code="cancelled",
            error_message="Cancelled by a user.",
            lease_expires_at=None,
            message="cancelled by a user",
        )
        if cancelled:
            out = list(
                job.attempts.filter(state__in=[AttemptState.SUBMITTING, AttemptState.RUNNING]).values_list(
                    "pk", flat=True
                )
            )
            transaction.on_commit(lambda: _cancel_remote_soon(out))
    return cancelled


def _cancel_remote_soon(attempt_ids: list[int]) -> None:
    from generation.tasks import cancel_attempt

    for attempt_id in attempt_ids:
        try:
            cancel_attempt.apply_async((attempt_id,), retry=False)
        except Exception:
            # The reconciler stops renders of cancelled jobs it finds still out.
            log.warning("cancel of attempt %s not sent; the broker is unavailable", attempt_id, exc_info=True)

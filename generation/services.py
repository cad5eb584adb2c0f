"""State changes of renders: submit, transitions, cancel, templates and backends.

A job's state moves only through `job_transition`, a conditional UPDATE that
acts when exactly one row changed, so two workers can never both move one job.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import random
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import ValidationError
from django.core.files.storage import storages
from django.db import transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.text import slugify

from briefs.models import Brief, Scene
from generation import events
from generation.backend_config import backend_config_problems
from generation.models import (
    TERMINAL_STATES,
    AttemptState,
    Backend,
    BackendKind,
    HealthState,
    JobEvent,
    JobState,
    Priority,
    QueuePolicy,
    RenderBatch,
    RenderJob,
    WorkflowTemplate,
    WorkflowTemplateVersion,
)
from generation.nudge import FINISH_RUNS, nudge
from generation.policies import policy_in_force
from generation.providers.base import BackendHealth, ErrorCode, ProviderError, plain
from generation.workflow_binding import (
    IMAGE_PARAMETERS,
    TemplateError,
    TemplateSpec,
    load_template_file,
    spec_from_document,
)
from generation.workflow_import import template_document
from generation.workflow_validation import has_model, validate_workflow

log = logging.getLogger(__name__)

MAX_SEED = 2**48


class RenderRefused(Exception):
    """A render that cannot be asked for as things stand; the message says why."""


def _user_or_none(user: User | AnonymousUser | None) -> User | None:
    return user if isinstance(user, User) else None


def _policy_bounded_for(user: User | AnonymousUser | None) -> bool:
    """Whether the user may only tighten a queue policy: everyone but staff and the studio's own code."""
    return user is not None and not (user.is_active and user.is_staff)


# -- templates and backends ---------------------------------------------------
def workflow_templates_sync(*, directory: Path | None = None) -> tuple[list[WorkflowTemplate], list[str]]:
    """Load every workflows/*.json into the database; returns the templates and the errors per file."""
    directory = directory or settings.WORKFLOWS_DIR
    loaded: list[WorkflowTemplate] = []
    errors: list[str] = []
    for path in sorted(directory.glob("*.json")):
        try:
            spec = load_template_file(path)
        except TemplateError as exc:
            errors.append(str(exc))
            continue
        loaded.append(_template_sync_file(spec, source_file=f"workflows/{path.name}"))
    return loaded, errors


def _template_sync_file(spec: TemplateSpec, *, source_file: str) -> WorkflowTemplate:
    """A file's template becomes a new version only when the file changed since it was last
    loaded: a version imported in the admin since then stays current across restarts."""
    with transaction.atomic():
        template = WorkflowTemplate.objects.select_for_update().filter(slug=spec.slug).first()
        if template is not None:
            last_from_file = template.versions.filter(source_file=source_file).order_by("-version").first()
            if last_from_file is not None and last_from_file.content_sha256 == spec.sha256:
                return template
        return _template_new_version(template, spec, source_file=source_file, version=spec.version)


def _template_new_version(
    template: WorkflowTemplate | None, spec: TemplateSpec, *, source_file: str, version: int = 1
) -> WorkflowTemplate:
    """Make `spec` the template's current version, keeping every earlier one; numbers never repeat."""
    if template is not None:
        latest = template.versions.aggregate(n=Max("version"))["n"] or template.version
        version = max(version, latest + 1)
    fields = {
        "name": spec.name,
        "description": spec.description,
        "version": version,
        "graph": spec.graph,
        "bindings": spec.bindings_as_json(),
        "source_file": source_file,
        "content_sha256": spec.sha256,
    }
    if template is None:
        template = WorkflowTemplate.objects.create(slug=spec.slug, **fields)
    else:
        WorkflowTemplate.objects.filter(pk=template.pk).update(updated_at=timezone.now(), **fields)
        template.refresh_from_db()
    WorkflowTemplateVersion.objects.create(
        template=template,
        version=version,
        graph=spec.graph,
        bindings=spec.bindings_as_json(),
        content_sha256=spec.sha256,
        source_file=source_file,
    )
    return template


def workflow_template_import(
    *, name: str, api_json: str, slug: str = "", description: str = "", bindings_json: str = ""
) -> WorkflowTemplate:
    """A template from a workflow exported with ComfyUI's "Save (API)".

    Bindings are detected unless given. Importing under an existing slug makes
    a new version of that template; renders already made keep the version they used.
    """
    where = name.strip() or "the workflow"
    graph = _parse_json(api_json, what=f"{where}: the exported workflow")
    bindings = _parse_json(bindings_json, what=f"{where}: the bindings") if bindings_json.strip() else None
    document = template_document(name=name, description=description, graph=graph, bindings=bindings)
    slug = slug.strip() or slugify(name)[:100]
    if not slug:
        raise TemplateError(f"{where}: choose a slug made of letters, digits and dashes")
    spec = spec_from_document(document, slug=slug, where=where)
    with transaction.atomic():
        existing = WorkflowTemplate.objects.select_for_update().filter(slug=slug).first()
        template = _template_new_version(existing, spec, source_file="")
        if not template.enabled:
            WorkflowTemplate.objects.filter(pk=template.pk).update(enabled=True)
            template.enabled = True
    return template


def workflow_template_version_of(job: RenderJob) -> WorkflowTemplateVersion:
    """The exact graph and bindings a job recorded, even if its template moved on since."""
    kept = WorkflowTemplateVersion.objects.filter(
        template_id=job.template_id, version=job.template_version
    ).first()
    if kept is not None:
        return kept
    template = job.template
    if template.version == job.template_version:
        # Rows older than kept versions: the template's own graph is the one recorded.
        return WorkflowTemplateVersion(
            template=template,
            version=template.version,
            graph=template.graph,
            bindings=template.bindings,
            content_sha256=template.content_sha256,
        )
    raise ProviderError(
        ErrorCode.CONFIG_INVALID,
        f"version {job.template_version} of the workflow {template.name} is no longer kept; render again",
    )


TEMPLATE_LABEL_FIELDS = ("name", "description", "enabled")


def workflow_template_update(*, template: WorkflowTemplate, **values: Any) -> WorkflowTemplate:
    """Rename or describe a template, or take it out of use for new renders.

    Its graph and bindings change only through `workflow_template_import`, as a new version with
    its own hash: a render records the version and hash it used, and an edit in place would make
    that record name a workflow other than the one rendered.
    """
    unknown = set(values) - set(TEMPLATE_LABEL_FIELDS)
    if unknown:
        raise TypeError(f"workflow_template_update() got unknown fields: {', '.join(sorted(unknown))}")
    if values:
        WorkflowTemplate.objects.filter(pk=template.pk).update(**values, updated_at=timezone.now())
        template.refresh_from_db()
    return template


def _parse_json(text: str, *, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise TemplateError(
            f"{what} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None


def _refuse_bad_config(*, kind: str, base_url: str, api_key_env: str = "") -> None:
    """The rules the admin form applies (Backend's validation), for backends registered by code."""
    problems = backend_config_problems(kind=kind, base_url=base_url, api_key_env=api_key_env)
    if problems:
        raise ValidationError(problems)


@transaction.atomic
def backend_register_preview(*, url: str, name: str = "Storyboard preview") -> Backend:
    """The storyboard preview server as a named backend, default when no other is."""
    _refuse_bad_config(kind=BackendKind.COMFYUI, base_url=url)
    backend, _ = Backend.objects.update_or_create(
        name=name,
        defaults={
            "kind": BackendKind.COMFYUI,
            "base_url": url,
            "enabled": True,
            "description": "Local ComfyUI-compatible server that renders labelled storyboard frames (no GPU).",
        },
    )
    if not Backend.objects.filter(is_default=True).exists():
        Backend.objects.filter(pk=backend.pk).update(is_default=True)
        backend.refresh_from_db()
    return backend


# A backend answering slower than this is degraded: it works, but something is wrong.
DEGRADED_LATENCY_S = 2.0
# Health messages are a short reason ("ComfyUI answered 502 to GET /system_stats"), never an answer's body.
HEALTH_MESSAGE_CHARS = 300


def backend_record_health(
    *,
    backend: Backend,
    reachable: bool,
    message: str,
    latency_s: float = 0.0,
    vram_total_mb: int | None = None,
) -> str:
    message = plain(message, HEALTH_MESSAGE_CHARS)
    if not reachable:
        state = HealthState.DOWN
    elif latency_s > DEGRADED_LATENCY_S:
        state = HealthState.DEGRADED
        message = f"{message}; answered in {latency_s:.1f} s"
    else:
        state = HealthState.HEALTHY
    fields: dict[str, Any] = {
        "health_state": state,
        "health_message": message[:HEALTH_MESSAGE_CHARS],
        "health_checked_at": timezone.now(),
    }
    if vram_total_mb is not None:
        fields["vram_total_mb"] = vram_total_mb
    Backend.objects.filter(pk=backend.pk).update(**fields)
    return state


def backend_socket_changed(*, backend_id: int, connected: bool) -> None:
    """The watcher's live socket to a backend opened or closed.

    A socket that opens is the backend answering: one that was down is healthy again at
    once, and dispatch runs now, instead of waiting for the next periodic health check.
    """
    with transaction.atomic():
        Backend.objects.filter(pk=backend_id).update(socket_connected=connected)
        if connected:
            back = Backend.objects.filter(pk=backend_id, health_state=HealthState.DOWN).update(
                health_state=HealthState.HEALTHY,
                health_message="answering again (live socket connected)",
                health_checked_at=timezone.now(),
            )
            if back:
                dispatch_soon()


@transaction.atomic
def backend_set_draining(*, backend: Backend, draining: bool) -> None:
    """Drain: finish what the backend has, take nothing new. Undrain: feed it again."""
    Backend.objects.filter(pk=backend.pk).update(draining=draining)
    if not draining:
        dispatch_soon()


# -- submitting ---------------------------------------------------------------
def default_template() -> WorkflowTemplate:
    template = WorkflowTemplate.objects.filter(slug=settings.DEFAULT_TEMPLATE_SLUG, enabled=True).first()
    if template is None:
        template = WorkflowTemplate.objects.filter(enabled=True).first()
    if template is None:
        raise RenderRefused("No workflow template is loaded; run `manage.py load_workflows`.")
    return template


def _require_a_backend(requested: Backend | None) -> None:
    """Refuse at once what could only wait for ever: no backend at all, or a disabled one asked for."""
    if requested is not None and not requested.enabled:
        raise RenderRefused(f"The backend {requested.name} is disabled; render without naming it.")
    if not Backend.objects.filter(enabled=True).exists():
        raise RenderRefused("No render backend is enabled; add one in the admin.")


def scene_render_params(scene: Scene, template: WorkflowTemplate) -> dict[str, Any]:
    """The scene's values as they go into the workflow, snapshotted on the job.

    Input images are recorded by stored name and sha256, so a take can say
    exactly what it started from; the template decides which it needs.
    """
    style = scene.brief.style.strip()
    prompt = scene.prompt.strip()
    if style:
        prompt = f"{prompt}, {style}"
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
        "prompt": prompt,
        "negative_prompt": scene.negative_prompt.strip() or None,
        "seed": scene.seed if scene.seed is not None else random.randrange(MAX_SEED),
        "label": f"{scene.position}. {scene.title}",
        "images": images,
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
) -> RenderJob:
    """A checked, unsaved job for one scene."""
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
        params=scene_render_params(scene, template),
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


@transaction.atomic
def render_job_submit(
    *,
    scene: Scene,
    user: User | AnonymousUser | None,
    template: WorkflowTemplate | None = None,
    backend: Backend | None = None,
    preset: QueuePolicy | None = None,
    policy_overrides: dict[str, Any] | None = None,
) -> RenderJob:
    _require_a_backend(backend)
    job = _new_job(
        scene=scene,
        template=template or scene.brief.template or default_template(),
        backend=backend,
        batch=None,
        priority=Priority.INTERACTIVE,
        policy=policy_in_force(preset=preset, overrides=policy_overrides, bounded=_policy_bounded_for(user)),
        user=_user_or_none(user),
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
) -> tuple[RenderBatch, list[RenderJob]]:
    scenes = list(brief.scenes.order_by("position"))
    if not scenes:
        raise RenderRefused("This brief has no scenes to render yet.")
    _require_a_backend(backend)
    template = template or brief.template or default_template()
    owner = _user_or_none(user)
    policy = policy_in_force(preset=preset, overrides=policy_overrides, bounded=_policy_bounded_for(user))
    batch = RenderBatch.objects.create(brief=brief, created_by=owner, policy=policy)
    jobs = [
        _new_job(
            scene=scene,
            template=template,
            backend=backend,
            batch=batch,
            priority=Priority.BATCH,
            policy=policy,
            user=owner,
        )
        for scene in scenes
    ]
    return batch, _save_new_jobs(jobs)


# -- transitions --------------------------------------------------------------
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


def backend_object_info(*, backend: Backend, max_age: float | None = None) -> dict[str, Any]:
    """The backend's /object_info, from the copy kept on the row unless it is older than `max_age` seconds."""
    max_age = settings.OBJECT_INFO_MAX_AGE if max_age is None else max_age
    fetched = backend.object_info_fetched_at
    if backend.object_info is not None and fetched is not None:
        if (timezone.now() - fetched).total_seconds() <= max_age:
            return backend.object_info
    from generation.attempts import provider_for

    with provider_for(backend) as provider:
        info = provider.object_info()
    now = timezone.now()
    Backend.objects.filter(pk=backend.pk).update(object_info=info, object_info_fetched_at=now)
    backend.object_info, backend.object_info_fetched_at = info, now
    return info


def workflow_check_on_backend(
    *, workflow: dict[str, Any], backend: Backend, uploads: frozenset[tuple[str, str]] = frozenset()
) -> None:
    """Raise the ProviderError ComfyUI would answer, before anything is sent.

    A problem found in a catalogue older than a minute is checked once more
    against a fresh one: someone may have just installed the model.
    """
    if backend.kind == BackendKind.RUNPOD:
        # RunPod serverless exposes no /object_info: the worker's ComfyUI validates on arrival,
        # and its refusal comes back as the job's error.
        return
    info = backend_object_info(backend=backend)
    try:
        validate_workflow(workflow, info, ignore=uploads)
    except ProviderError:
        fetched = backend.object_info_fetched_at
        if fetched is None or (timezone.now() - fetched).total_seconds() < 60:
            raise
        validate_workflow(workflow, backend_object_info(backend=backend, max_age=0), ignore=uploads)


def error_with_hint(error: ProviderError, *, backend: Backend | None) -> str:
    """The error's message and what the user can do about it."""
    name = backend.name if backend is not None else "the backend"
    hint = ""
    if error.code == ErrorCode.MISSING_MODEL:
        missing = [
            (p["input"], p.get("value"))
            for p in error.detail.get("problems", [])
            if p.get("code") == "missing_model"
        ]
        hints = []
        others_qs = Backend.objects.filter(enabled=True)
        if backend is not None:
            others_qs = others_qs.exclude(pk=backend.pk)
        for input_name, value in missing:
            if not isinstance(value, str):
                continue
            others = [
                other.name
                for other in others_qs
                if other.object_info and has_model(other.object_info, input_name, value)
            ]
            hints.append(
                f"{value!r} is on {', '.join(others)}"
                if others
                else f"no other enabled backend has {value!r}"
            )
        hint = "; ".join(hints) or "install the model on this backend or render on one that has it"
    elif error.code == ErrorCode.MISSING_NODE:
        hint = f"install the custom nodes this workflow needs on {name}, or render on a backend that has them"
    elif error.code == ErrorCode.OUT_OF_MEMORY:
        hint = "render at a smaller size, or on a backend with more GPU memory"
    elif error.code == ErrorCode.UNAVAILABLE:
        hint = f"check that {name} is running and reachable; its state is in the admin under Backends"
    return f"{error.message}. Hint: {hint}." if hint else error.message


def backend_check_health(*, backend: Backend) -> BackendHealth:
    """Ask the backend how it is and record the answer."""
    from generation.attempts import provider_for

    started = time.monotonic()
    try:
        with provider_for(backend) as provider:
            result = provider.health()
    except ProviderError as exc:
        result = BackendHealth(reachable=False, message=exc.message)
    result.message = plain(result.message, HEALTH_MESSAGE_CHARS)
    vram: list[float] = [
        float(d["vram_total"]) for d in result.devices if isinstance(d.get("vram_total"), int | float)
    ]
    backend_record_health(
        backend=backend,
        reachable=result.reachable,
        message=result.message,
        latency_s=time.monotonic() - started,
        vram_total_mb=int(max(vram) // (1024 * 1024)) if vram else None,
    )
    return result


def check_backends() -> None:
    """Health of every enabled backend, and its node catalogue when that is stale."""
    for backend in Backend.objects.filter(enabled=True):
        if backend_check_health(backend=backend).reachable and backend.kind == BackendKind.COMFYUI:
            try:
                backend_object_info(backend=backend)  # refetched only when stale
            except ProviderError:
                pass  # the next check tries again; the health state already says why


# -- RunPod backends ------------------------------------------------------------
def backend_set_api_key(*, backend: Backend, api_key: str = "", clear: bool = False) -> None:
    """Store a new API key encrypted, or clear the stored one; an empty key changes nothing."""
    from generation.api_keys import encrypt_api_key

    if clear:
        Backend.objects.filter(pk=backend.pk).update(api_key_encrypted="")
    elif api_key:
        Backend.objects.filter(pk=backend.pk).update(api_key_encrypted=encrypt_api_key(api_key.strip()))


@transaction.atomic
def backend_register_local_runpod(
    *, url: str, endpoint_id: str, api_key_env: str, name: str = "Local RunPod endpoint"
) -> Backend:
    """The local RunPod-compatible endpoint as a backend; its key is read from `api_key_env`."""
    _refuse_bad_config(kind=BackendKind.RUNPOD, base_url=url, api_key_env=api_key_env)
    backend, _ = Backend.objects.update_or_create(
        name=name,
        defaults={
            "kind": BackendKind.RUNPOD,
            "base_url": url,
            "endpoint_id": endpoint_id,
            "api_key_env": api_key_env,
            "enabled": True,
            "description": "Local RunPod-compatible serverless endpoint running worker-comfyui's job "
            "logic against the storyboard preview server (no GPU).",
        },
    )
    return backend

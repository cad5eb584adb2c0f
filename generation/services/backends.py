"""Backends: registration, health, the live socket, drain, node catalogues and checks against them."""

from __future__ import annotations

import logging
import time
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from generation.backend_config import backend_config_problems
from generation.models import (
    Backend,
    BackendKind,
    HealthState,
)
from generation.providers.base import BackendHealth, ErrorCode, ProviderError, plain
from generation.services.jobs import dispatch_soon
from generation.workflow_validation import has_model, validate_workflow

log = logging.getLogger(__name__)

DEGRADED_LATENCY_S = 2.0
# Health messages are a short reason ("ComfyUI answered 502 to GET /system_stats"), never an answer's body.
HEALTH_MESSAGE_CHARS = 300


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

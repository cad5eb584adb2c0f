"""Takes in the editor: pick a final, render again from a take, restore a take's text, compare
takes, play the brief's picks (review), and the expected finish of what is rendering.

JSON for the page's script; forms posted without it get the editor back with a message.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from briefs import services
from briefs.models import Brief, Scene
from briefs.presenters import scene_payload
from briefs.selectors import briefs_visible_to, scenes_visible_to
from generation import services as render_services
from generation.events import job_payload, publish_scene_changed
from generation.models import RenderJob
from generation.selectors import jobs_visible_to
from generation.takes import brief_eta, review_reel, take_differences, take_payload, takes_by_uuid
from telemetry.selectors import brief_spend

# At most this many takes side by side: more would not fit a screen.
COMPARE_MAX = 6


def _wants_json(request: HttpRequest) -> bool:
    return request.headers.get("Accept", "").startswith("application/json")


def _scene_url(scene: Scene) -> str:
    return f"{reverse('briefs:detail', args=[scene.brief.uuid])}#scene-{scene.uuid}"


def _refused(request: HttpRequest, scene: Scene, error: str, status: int = 409) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse({"error": error}, status=status)
    messages.error(request, error)
    return redirect(_scene_url(scene))


def _take(request: HttpRequest, take_uuid: str) -> RenderJob:
    return get_object_or_404(
        jobs_visible_to(request.user).select_related("brief", "scene", "scene__brief"), uuid=take_uuid
    )


@login_required
@require_POST
def scene_final(request: HttpRequest, scene_uuid: str) -> HttpResponse:
    """`take`: the uuid of one of the scene's takes; empty clears the final."""
    scene = get_object_or_404(scenes_visible_to(request.user).select_related("brief"), uuid=scene_uuid)
    raw = request.POST.get("take", "").strip()
    job = None
    if raw:
        job = jobs_visible_to(request.user).filter(uuid=raw).first() if _is_uuid(raw) else None
        if job is None:
            return _refused(
                request, scene, f"take must name one of this scene's takes, not “{raw[:40]}”.", 400
            )
    try:
        with transaction.atomic():
            services.scene_pick_final(scene=scene, job=job)
            publish_scene_changed(
                brief=scene.brief, scene_uuid=scene.uuid, action="final", version=scene.version
            )
    except services.SceneRefused as exc:
        return _refused(request, scene, str(exc), 400 if job is not None else 409)
    if _wants_json(request):
        return JsonResponse({"scene": str(scene.uuid), "final": str(job.uuid) if job else None})
    messages.success(
        request,
        f"Final of scene {scene.position} picked." if job else f"Scene {scene.position} has no final now.",
    )
    return redirect(_scene_url(scene))


def _is_uuid(raw: str) -> bool:
    try:
        uuid.UUID(raw)
    except ValueError:
        return False
    return True


@login_required
@require_POST
def take_again(request: HttpRequest, take_uuid: str) -> HttpResponse:
    """`seed`: "same" renders the scene again with the take's seed, "new" with a new random one."""
    take = _take(request, take_uuid)
    seed = request.POST.get("seed", "same")
    if seed not in ("same", "new"):
        return _refused(request, take.scene, f"seed must be “same” or “new”, not “{seed[:40]}”.", 400)
    try:
        job = render_services.take_render_again(take=take, user=request.user, same_seed=seed == "same")
    except (render_services.TakeRefused, render_services.RenderRefused) as exc:
        return _refused(request, take.scene, str(exc))
    if _wants_json(request):
        return JsonResponse({"job": job_payload(job), "seed": job.params["seed"]}, status=202)
    messages.info(request, f"Scene {take.scene.position} queued again with seed {job.params['seed']}.")
    return redirect(_scene_url(take.scene))


@login_required
@require_POST
def take_restore(request: HttpRequest, take_uuid: str) -> HttpResponse:
    take = _take(request, take_uuid)
    before = take.scene.version
    try:
        with transaction.atomic():
            scene = render_services.take_restore(take=take)
            if scene.version != before:
                publish_scene_changed(
                    brief=take.brief, scene_uuid=scene.uuid, action="updated", version=scene.version
                )
    except (render_services.TakeRefused, services.SceneRefused) as exc:
        return _refused(request, take.scene, str(exc))
    except services.SceneParamsRefused as exc:
        return _refused(request, take.scene, "; ".join(exc.errors.values()))
    if _wants_json(request):
        return JsonResponse({"scene": scene_payload(scene), "changed": scene.version != before})
    messages.success(request, f"Scene {scene.position}: the take's text is back (version {scene.version}).")
    return redirect(_scene_url(scene))


@login_required
@require_GET
def takes_compare(request: HttpRequest, brief_uuid: str) -> JsonResponse:
    """`take` given two or more times: the takes side by side and the parameters that differ."""
    brief = get_object_or_404(briefs_visible_to(request.user), uuid=brief_uuid)
    named = [raw.strip() for raw in request.GET.getlist("take") if raw.strip()]
    bad = [raw for raw in named if not _is_uuid(raw)]
    if bad:
        return JsonResponse({"errors": {"take": [f"“{bad[0][:40]}” is not a take's id."]}}, status=400)
    if not 2 <= len(set(named)) <= COMPARE_MAX:
        return JsonResponse(
            {
                "errors": {
                    "take": [
                        f"Compare needs from 2 to {COMPARE_MAX} different takes; {len(set(named))} given."
                    ]
                }
            },
            status=400,
        )
    takes = takes_by_uuid(brief, named)
    missing = sorted(set(named) - {str(t.job.uuid) for t in takes})
    if missing:
        return JsonResponse(
            {"errors": {"take": [f"Not a finished take of this brief: {', '.join(missing)}."]}}, status=404
        )
    return JsonResponse(
        {"takes": [take_payload(take) for take in takes], "differences": take_differences(takes)}
    )


@login_required
@require_GET
def brief_review(request: HttpRequest, brief_uuid: str) -> JsonResponse:
    """Each scene in story order with the take review plays: its final, else its newest."""
    brief = get_object_or_404(briefs_visible_to(request.user), uuid=brief_uuid)
    shots: list[dict[str, Any]] = []
    for shot in review_reel(brief):
        scene = shot.scene
        shots.append(
            {
                "scene": str(scene.uuid),
                "position": scene.position,
                "title": scene.title,
                "duration_s": float(scene.duration_s),
                "final_url": reverse("briefs:scene-final", args=[scene.uuid]),
                "take": take_payload(shot.take) if shot.take else None,
            }
        )
    return JsonResponse({"brief": str(brief.uuid), "shots": shots})


def _spend_json(brief: Brief) -> dict[str, Any]:
    spend = brief_spend(brief)
    return {
        "attempts": spend.attempts,
        "gpu_seconds": spend.gpu_seconds,
        "cost_usd": f"{spend.cost_usd:.4f}" if spend.cost_usd is not None else None,
    }


@login_required
@require_GET
def brief_eta_view(request: HttpRequest, brief_uuid: str) -> JsonResponse:
    brief = get_object_or_404(briefs_visible_to(request.user), uuid=brief_uuid)
    return JsonResponse({**brief_eta(brief), "spend": _spend_json(brief)})

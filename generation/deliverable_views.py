"""The editor's deliverable doors: build one, see how the brief's stand, download one."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from briefs.models import Brief
from briefs.selectors import briefs_visible_to
from generation import services
from generation.downloads import deliverable_response
from generation.events import deliverable_payload
from generation.models import Deliverable, DeliverableKind, DeliverableState
from generation.selectors import brief_deliverables, deliverables_visible_to


def _wants_json(request: HttpRequest) -> bool:
    return request.headers.get("Accept", "").startswith("application/json")


def deliverables_context(brief: Brief) -> dict[str, Any]:
    """What templates/briefs/_deliverables.html needs: one row per kind with its newest build
    (`current`) and its newest finished file (`ready`, which may be an older build)."""
    return {
        "deliverable_rows": [
            {
                "kind": kind,
                "label": DeliverableKind(kind).label,
                "current": current,
                "ready": ready,
                "open": current is not None
                and current.state in (DeliverableState.QUEUED, DeliverableState.RUNNING),
            }
            for kind, current, ready in brief_deliverables(brief)
        ],
        "deliverables_url": reverse("deliverables:brief", args=[brief.uuid]),
    }


def _listing(brief: Brief) -> dict[str, Any]:
    return {
        "deliverables": [
            {
                "kind": kind,
                "current": deliverable_payload(current) if current else None,
                "ready": deliverable_payload(ready) if ready else None,
            }
            for kind, current, ready in brief_deliverables(brief)
        ]
    }


@login_required
@require_http_methods(["GET", "POST"])
def brief_deliverables_view(request: HttpRequest, brief_uuid: str) -> HttpResponse:
    brief = get_object_or_404(briefs_visible_to(request.user), uuid=brief_uuid)
    if request.method == "GET":
        return JsonResponse(_listing(brief))
    editor = f"{reverse('briefs:detail', args=[brief.uuid])}#deliverables"
    raw_titles = request.POST.get("titles", "0")
    try:
        if raw_titles not in ("0", "1"):
            raise services.DeliverableRefused(f"titles must be 0 or 1, not “{raw_titles[:40]}”.")
        deliverable = services.deliverable_request(
            brief=brief,
            kind=request.POST.get("kind", ""),
            user=request.user,
            missing=request.POST.get("missing", "stop"),
            titles=raw_titles == "1",
        )
    except services.DeliverableRefused as exc:
        busy = isinstance(exc, services.DeliverableBusy)
        if _wants_json(request):
            return JsonResponse(
                {"code": "busy" if busy else "refused", "error": str(exc)}, status=409 if busy else 400
            )
        messages.error(request, f"Not built: {exc}")
        return redirect(editor)
    if _wants_json(request):
        return JsonResponse({"deliverable": deliverable_payload(deliverable)}, status=202)
    messages.info(request, f"{deliverable.get_kind_display()} queued; it appears here when it is ready.")
    return redirect(editor)


@login_required
@require_GET
def deliverable_download(request: HttpRequest, deliverable_uuid: str) -> FileResponse:
    deliverable: Deliverable = get_object_or_404(
        deliverables_visible_to(request.user)
        .filter(state=DeliverableState.SUCCEEDED)
        .select_related("brief"),
        uuid=deliverable_uuid,
    )
    return deliverable_response(request, deliverable)

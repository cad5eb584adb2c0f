"""The editor's outline doors: expanding again after a failure, how a request stands, and
rewriting one scene or the whole outline from a note. Thin: a form, one service, a redirect or JSON."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from briefs import services
from briefs.models import Brief, OutlineKind, OutlineRequest, Scene
from briefs.selectors import briefs_visible_to

# A refused note is kept for the editor to show again, with its errors, after the redirect.
_SESSION_KEY = "refine-form:{}"


class RefineForm(forms.Form):
    note = forms.CharField(
        max_length=services.NOTE_MAX_CHARS,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="What to change, e.g. “make scene 3 a night shot”, “closer, handheld”, “make it 5 seconds”.",
        error_messages={
            "required": "Write a note first: what to change, e.g. 'make scene 3 a night shot'.",
            "max_length": "The note is %(show_value)d characters long; at most %(limit_value)d.",
        },
    )
    scene = forms.ChoiceField(
        required=False,
        error_messages={"invalid_choice": "Choose a scene of this brief, or none for the whole outline."},
    )

    def __init__(self, *args: Any, brief: Brief, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.brief = brief
        self.scenes = {str(s.uuid): s for s in brief.scenes.order_by("position", "id")}
        field = self.fields["scene"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [("", "The whole outline")] + [
            (uuid, f"Scene {i}: {scene.title}") for i, (uuid, scene) in enumerate(self.scenes.items(), 1)
        ]

    def clean_scene(self) -> Scene | None:
        return self.scenes.get(self.cleaned_data.get("scene") or "")


def refine_context(request: HttpRequest, brief: Brief) -> dict[str, Any]:
    """What templates/briefs/_refine.html needs, for the editor's page: `refine_form` (bound, with
    its errors, when the last note was refused), `refine_scenes` and `refine_request` (the brief's
    latest refine, or None)."""
    stashed = (
        request.session.pop(_SESSION_KEY.format(brief.uuid), None) if hasattr(request, "session") else None
    )
    form = RefineForm(stashed["data"], brief=brief) if stashed else RefineForm(brief=brief)
    if stashed:
        form.is_valid()
        for field, errors in stashed["errors"].items():
            for error in errors:
                if error not in form.errors.get(field, []):
                    form.add_error(field if field in form.fields else None, error)
    return {
        "refine_form": form,
        "refine_scenes": list(form.scenes.values()),
        "refine_request": brief.outline_requests.filter(kind=OutlineKind.REFINE)
        .select_related("scene")
        .first(),
    }


def _wants_json(request: HttpRequest) -> bool:
    return request.headers.get("Accept", "").startswith("application/json")


def _editor(brief: Brief) -> HttpResponseRedirect:
    return HttpResponseRedirect(
        reverse("briefs:detail", kwargs={"brief_uuid": brief.uuid}) + "#refine", status=303
    )


def status_of(outline: OutlineRequest) -> dict[str, Any]:
    """How an outline request stands: the JSON the page polls, and the API's answer."""
    return {
        "state": outline.state,
        "label": outline.get_state_display(),
        "expander": outline.expander,
        "error": outline.error,
        "kind": outline.kind,
        "scene": str(outline.scene.uuid) if outline.scene else None,
        "note": outline.note,
        "summary": outline.summary.splitlines(),
    }


@login_required
@require_POST
def outline_retry(request: HttpRequest, brief_uuid: str) -> HttpResponse:
    brief = get_object_or_404(briefs_visible_to(request.user), uuid=brief_uuid)
    assert isinstance(request.user, User)
    try:
        services.outline_request_start(brief=brief, user=request.user)
    except services.OutlineRefused as exc:
        messages.error(request, str(exc))
    return redirect("briefs:detail", brief_uuid=brief.uuid)


@login_required
def outline_status(request: HttpRequest, request_uuid: str) -> JsonResponse:
    outline = get_object_or_404(
        OutlineRequest.objects.filter(brief__in=briefs_visible_to(request.user)).select_related("scene"),
        uuid=request_uuid,
    )
    return JsonResponse(status_of(outline))


@login_required
@require_POST
def outline_refine(request: HttpRequest, brief_uuid: str) -> HttpResponse:
    """POST note (and scene: a scene's uuid, or empty for the whole outline). 303 back to the
    editor; with Accept: application/json, 202 {"outline": {"uuid", "status_url"}}, or 400 (409
    while another request of the brief runs) {"errors": {field: [messages]}}."""
    brief = get_object_or_404(briefs_visible_to(request.user), uuid=brief_uuid)
    assert isinstance(request.user, User)
    form = RefineForm(request.POST, brief=brief)
    outline = None
    busy = False
    if form.is_valid():
        try:
            outline = services.outline_refine_start(
                brief=brief,
                user=request.user,
                note=form.cleaned_data["note"],
                scene=form.cleaned_data["scene"],
            )
        except services.OutlineRefused as exc:
            busy = isinstance(exc, services.OutlineBusy)
            form.add_error(exc.field if exc.field in form.fields else None, str(exc))
    if outline is None:
        errors = {field: [str(e) for e in errors] for field, errors in form.errors.items()}
        if _wants_json(request):
            return JsonResponse({"errors": errors}, status=409 if busy else 400)
        request.session[_SESSION_KEY.format(brief.uuid)] = {"data": request.POST.dict(), "errors": errors}
        for messages_of_field in errors.values():
            for message in messages_of_field:
                messages.error(request, message)
        return _editor(brief)
    status_url = reverse("briefs:outline-status", kwargs={"request_uuid": outline.uuid})
    if _wants_json(request):
        return JsonResponse({"outline": {"uuid": str(outline.uuid), "status_url": status_url}}, status=202)
    return _editor(brief)

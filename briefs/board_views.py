"""Pieces of the editor page rendered alone, so that the page refreshes one card, the board or the
Runs panel in place; and the story bible's saves, which the page makes as the writer types."""

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.db.models import Model
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from briefs import services
from briefs.board import progress_of, scene_cards
from briefs.forms import BriefForm, CharacterForm
from briefs.models import Brief, Character
from briefs.selectors import briefs_visible_to, scenes_visible_to
from generation.events import publish_brief_changed
from telemetry.selectors import brief_runs, brief_spend


def wants_json(request: HttpRequest) -> bool:
    return request.headers.get("Accept", "").startswith("application/json")


def form_errors(form: BriefForm | CharacterForm) -> dict[str, list[str]]:
    return {name: [str(message) for message in messages] for name, messages in form.errors.items()}


@login_required
@require_GET
def scene_card(request: HttpRequest, scene_uuid: str) -> HttpResponse:
    scene = get_object_or_404(scenes_visible_to(request.user).select_related("brief"), uuid=scene_uuid)
    (card,) = scene_cards(scene.brief, only=scene)
    return render(request, "briefs/_scene_card.html", {"brief": scene.brief, "card": card})


@login_required
@require_GET
def board(request: HttpRequest, brief_uuid: str) -> HttpResponse:
    brief = get_object_or_404(briefs_visible_to(request.user), uuid=brief_uuid)
    cards = scene_cards(brief)
    return render(
        request, "briefs/_board.html", {"brief": brief, "cards": cards, "progress": progress_of(cards)}
    )


@login_required
@require_GET
def runs(request: HttpRequest, brief_uuid: str) -> HttpResponse:
    brief = get_object_or_404(briefs_visible_to(request.user), uuid=brief_uuid)
    context = {"brief": brief, "runs": brief_runs(brief), "spend": brief_spend(brief)}
    return render(request, "briefs/_runs.html", context)


@login_required
@require_POST
def brief_save(request: HttpRequest, brief_uuid: str) -> JsonResponse:
    """The brief's fields and story bible, saved as the writer types."""
    brief = get_object_or_404(briefs_visible_to(request.user), uuid=brief_uuid)
    form = BriefForm(request.POST, request.FILES, instance=Brief.objects.get(pk=brief.pk))
    if not form.is_valid():
        return JsonResponse({"errors": form_errors(form)}, status=400)
    try:
        with transaction.atomic():
            brief = services.brief_update(brief=brief, **_base(request), **form.cleaned_data)
            stamp = services.brief_stamp(brief)
            publish_brief_changed(brief=brief, stamp=stamp)
    except services.BriefConflict as exc:
        return _conflict(exc, form.cleaned_data)
    return JsonResponse(
        {
            "brief": {"title": brief.title, "bible_version": brief.bible_version},
            "stamp": stamp,
            "template": _json_value(brief.template),
        }
    )


def _base(request: HttpRequest) -> dict[str, Any]:
    """The state the page edited from, and whether the writer chose to save over a newer one."""
    return {
        "base_stamp": request.POST.get("base_stamp") or None,
        "overwrite": request.POST.get("overwrite") == "1",
    }


def _json_value(value: Any) -> Any:
    if isinstance(value, Model):
        return str(value.pk)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _conflict(exc: services.BriefConflict, submitted: dict[str, Any]) -> JsonResponse:
    return JsonResponse(
        {
            "code": "conflict",
            "error": str(exc),
            "stamp": exc.stamp,
            "differs": exc.differs,
            "theirs": {"fields": {name: _json_value(value) for name, value in exc.current.items()}},
            "yours": {"fields": {name: _json_value(submitted.get(name)) for name in exc.differs}},
        },
        status=409,
    )


@login_required
@require_POST
def character_save(request: HttpRequest, character_uuid: str) -> HttpResponse:
    character = get_object_or_404(
        Character.objects.filter(brief__in=briefs_visible_to(request.user)).select_related("brief"),
        uuid=character_uuid,
    )
    form = CharacterForm(
        request.POST,
        request.FILES,
        instance=Character.objects.get(pk=character.pk),
        prefix=f"c{character.pk}",
        brief=character.brief,
    )
    errors = form_errors(form) if not form.is_valid() else {}
    if not errors:
        try:
            with transaction.atomic():
                character = services.character_update(
                    character=character, **_base(request), **form.cleaned_data
                )
                brief = Brief.objects.get(pk=character.brief_id)
                publish_brief_changed(brief=brief, stamp=services.brief_stamp(brief))
        except services.CharacterRefused as exc:
            errors = {"name": [str(exc)]}
        except services.BriefConflict as exc:
            if wants_json(request):
                return _conflict(exc, form.cleaned_data)
            errors = {"__all__": [str(exc)]}
    if not wants_json(request):  # a form posted without the page's script
        for field, problems in errors.items():
            messages.error(request, f"{character.name}, {field.replace('_', ' ')}: {' '.join(problems)}")
        if not errors:
            messages.success(request, f"{character.name} saved.")
        return redirect(f"{reverse('briefs:detail', args=[character.brief.uuid])}#story-bible")
    if errors:
        return JsonResponse({"errors": errors}, status=400)
    brief = Brief.objects.get(pk=character.brief_id)
    return JsonResponse(
        {
            "character": {"uuid": str(character.uuid), "name": character.name},
            "bible_version": brief.bible_version,
            "stamp": services.brief_stamp(brief),
        }
    )

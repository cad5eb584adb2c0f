"""Pieces of the editor page rendered alone, so that the page refreshes one card, the board or the
Runs panel in place; and the story bible's saves, which the page makes as the writer types."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from briefs import services
from briefs.board import progress_of, scene_cards
from briefs.forms import BriefForm, CharacterForm
from briefs.models import Brief, Character
from briefs.selectors import briefs_visible_to, scenes_visible_to
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
    brief = services.brief_update(brief=brief, **form.cleaned_data)
    return JsonResponse({"brief": {"title": brief.title, "bible_version": brief.bible_version}})


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
            character = services.character_update(character=character, **form.cleaned_data)
        except services.CharacterRefused as exc:
            errors = {"name": [str(exc)]}
    if not wants_json(request):  # a form posted without the page's script
        for field, problems in errors.items():
            messages.error(request, f"{character.name}, {field.replace('_', ' ')}: {' '.join(problems)}")
        if not errors:
            messages.success(request, f"{character.name} saved.")
        return redirect(f"{reverse('briefs:detail', args=[character.brief.uuid])}#story-bible")
    if errors:
        return JsonResponse({"errors": errors}, status=400)
    bible_version = Brief.objects.values_list("bible_version", flat=True).get(pk=character.brief_id)
    return JsonResponse(
        {"character": {"uuid": str(character.uuid), "name": character.name}, "bible_version": bible_version}
    )

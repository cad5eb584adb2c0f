"""The brief editor: server-rendered pages; live progress comes over the brief's socket."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.files.storage import storages
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from briefs import services
from briefs.forms import BriefForm, CharacterForm, IdeaForm, SceneForm
from briefs.models import Brief, Character, OutlineKind, Scene
from briefs.selectors import briefs_visible_to, composed_for, scenes_visible_to, team_preferred_for
from generation import services as render_services
from generation.downloads import artifact_response
from generation.events import job_payload
from generation.models import Artifact
from generation.selectors import artifacts_visible_to, jobs_visible_to, latest_job_per_scene
from storycore.responses import file_response
from telemetry.selectors import brief_runs, brief_spend


def _wants_json(request: HttpRequest) -> bool:
    return request.headers.get("Accept", "").startswith("application/json")


@login_required
@require_POST
def brief_from_idea(request: HttpRequest) -> HttpResponse:
    form = IdeaForm(request.POST)
    if not form.is_valid():
        return _brief_list(request, idea_form=form, status=400)
    assert isinstance(request.user, User)
    brief, _ = services.brief_from_idea(user=request.user, **form.cleaned_data)
    return redirect("briefs:detail", brief_uuid=brief.uuid)


@login_required
def brief_list(request: HttpRequest) -> HttpResponse:
    return _brief_list(request)


def _brief_list(
    request: HttpRequest, *, idea_form: IdeaForm | None = None, status: int = 200
) -> HttpResponse:
    form = BriefForm()
    if request.method == "POST":
        form = BriefForm(request.POST, request.FILES)
        if form.is_valid():
            brief = services.brief_create(user=request.user, **form.cleaned_data)
            messages.success(request, f"Brief “{brief.title}” created. Add its scenes below.")
            return redirect("briefs:detail", brief_uuid=brief.uuid)
    briefs = briefs_visible_to(request.user).select_related("team").prefetch_related("scenes")
    status = 400 if form.errors else status
    context = {
        "briefs": briefs,
        "form": form,
        "idea_form": idea_form or IdeaForm(),
        "current_team": team_preferred_for(request.user),
    }
    return render(request, "briefs/list.html", context, status=status)


def _editor(
    request: HttpRequest,
    brief: Brief,
    *,
    brief_form: BriefForm | None = None,
    new_scene_form: SceneForm | None = None,
    bound_scene: tuple[int, SceneForm] | None = None,
    new_character_form: CharacterForm | None = None,
    status: int = 200,
) -> HttpResponse:
    latest = latest_job_per_scene(brief)
    rows = []
    for scene in brief.scenes.order_by("position"):
        form = (
            bound_scene[1]
            if bound_scene and bound_scene[0] == scene.pk
            else SceneForm(instance=scene, prefix=f"s{scene.pk}", brief=brief)
        )
        job = latest.get(scene.pk)
        rows.append(
            {
                "scene": scene,
                "form": form,
                "job": job,
                "live": job_payload(job) if job else None,
                "composed": composed_for(scene),
            }
        )
    context = {
        "brief": brief,
        "brief_form": brief_form or BriefForm(instance=brief),
        "new_scene_form": new_scene_form or SceneForm(prefix="new", brief=brief),
        "characters": [
            (character, CharacterForm(instance=character, prefix=f"c{character.pk}", brief=brief))
            for character in brief.characters.all()
        ],
        "new_character_form": new_character_form or CharacterForm(prefix="newc", brief=brief),
        # The idea's expansion; refines have their own box (templates/briefs/_refine.html).
        "outline": brief.outline_requests.filter(kind=OutlineKind.EXPAND).first(),
        "rows": rows,
        "runs": brief_runs(brief),
        "spend": brief_spend(brief),
    }
    return render(request, "briefs/detail.html", context, status=status)


@login_required
def brief_detail(request: HttpRequest, brief_uuid: str) -> HttpResponse:
    brief = get_object_or_404(briefs_visible_to(request.user), uuid=brief_uuid)
    if request.method == "POST":
        form = BriefForm(request.POST, request.FILES, instance=Brief.objects.get(pk=brief.pk))
        if not form.is_valid():
            return _editor(request, brief, brief_form=form, status=400)
        services.brief_update(brief=brief, **form.cleaned_data)
        messages.success(request, "Brief saved.")
        return redirect("briefs:detail", brief_uuid=brief.uuid)
    return _editor(request, brief)


@login_required
@require_POST
def scene_create(request: HttpRequest, brief_uuid: str) -> HttpResponse:
    brief = get_object_or_404(briefs_visible_to(request.user), uuid=brief_uuid)
    form = SceneForm(request.POST, request.FILES, prefix="new", brief=brief)
    if not form.is_valid():
        return _editor(request, brief, new_scene_form=form, status=400)
    scene = services.scene_create(brief=brief, **form.cleaned_data)
    messages.success(request, f"Scene {scene.position} added.")
    return redirect(f"{reverse('briefs:detail', args=[brief.uuid])}#scene-{scene.uuid}")


@login_required
@require_POST
def scene_update(request: HttpRequest, scene_uuid: str) -> HttpResponse:
    scene = get_object_or_404(scenes_visible_to(request.user).select_related("brief"), uuid=scene_uuid)
    form = SceneForm(
        request.POST,
        request.FILES,
        instance=Scene.objects.get(pk=scene.pk),
        prefix=f"s{scene.pk}",
        brief=scene.brief,
    )
    if not form.is_valid():
        return _editor(request, scene.brief, bound_scene=(scene.pk, form), status=400)
    services.scene_update(scene=scene, **form.cleaned_data)
    messages.success(request, f"Scene {scene.position} saved.")
    return redirect(f"{reverse('briefs:detail', args=[scene.brief.uuid])}#scene-{scene.uuid}")


@login_required
@require_POST
def character_create(request: HttpRequest, brief_uuid: str) -> HttpResponse:
    brief = get_object_or_404(briefs_visible_to(request.user), uuid=brief_uuid)
    form = CharacterForm(request.POST, request.FILES, prefix="newc", brief=brief)
    if not form.is_valid():
        return _editor(request, brief, new_character_form=form, status=400)
    character = services.character_create(brief=brief, **form.cleaned_data)
    messages.success(request, f"{character.name} added to the story bible.")
    return redirect(f"{reverse('briefs:detail', args=[brief.uuid])}#story-bible")


@login_required
@require_POST
def character_delete(request: HttpRequest, character_uuid: str) -> HttpResponse:
    character = get_object_or_404(
        Character.objects.filter(brief__in=briefs_visible_to(request.user)).select_related("brief"),
        uuid=character_uuid,
    )
    brief_uuid = character.brief.uuid
    services.character_delete(character=character)
    messages.success(request, f"{character.name} removed from the story bible.")
    return redirect(f"{reverse('briefs:detail', args=[brief_uuid])}#story-bible")


@login_required
@require_POST
def scene_delete(request: HttpRequest, scene_uuid: str) -> HttpResponse:
    scene = get_object_or_404(scenes_visible_to(request.user).select_related("brief"), uuid=scene_uuid)
    brief_uuid = scene.brief.uuid
    services.scene_delete(scene=scene)
    messages.success(request, "Scene deleted.")
    return redirect("briefs:detail", brief_uuid=brief_uuid)


@login_required
@require_POST
def scene_render(request: HttpRequest, scene_uuid: str) -> HttpResponse:
    scene = get_object_or_404(scenes_visible_to(request.user).select_related("brief"), uuid=scene_uuid)
    try:
        job = render_services.render_job_submit(scene=scene, user=request.user)
    except render_services.RenderRefused as exc:
        if _wants_json(request):
            return JsonResponse({"error": str(exc)}, status=409)
        messages.error(request, str(exc))
        return redirect("briefs:detail", brief_uuid=scene.brief.uuid)
    if _wants_json(request):
        return JsonResponse({"job": job_payload(job)}, status=202)
    messages.info(request, f"Scene {scene.position} queued for rendering.")
    return redirect(f"{reverse('briefs:detail', args=[scene.brief.uuid])}#scene-{scene.uuid}")


@login_required
@require_POST
def brief_render(request: HttpRequest, brief_uuid: str) -> HttpResponse:
    brief = get_object_or_404(briefs_visible_to(request.user), uuid=brief_uuid)
    try:
        _, jobs = render_services.render_brief_submit(brief=brief, user=request.user)
    except render_services.RenderRefused as exc:
        if _wants_json(request):
            return JsonResponse({"error": str(exc)}, status=409)
        messages.error(request, str(exc))
        return redirect("briefs:detail", brief_uuid=brief.uuid)
    if _wants_json(request):
        return JsonResponse({"jobs": [job_payload(job) for job in jobs]}, status=202)
    messages.info(request, f"{len(jobs)} scenes queued for rendering.")
    return redirect("briefs:detail", brief_uuid=brief.uuid)


@login_required
@require_POST
def job_cancel(request: HttpRequest, job_uuid: str) -> HttpResponse:
    job = get_object_or_404(jobs_visible_to(request.user).select_related("brief"), uuid=job_uuid)
    if render_services.render_job_cancel(job=job):
        messages.info(request, "Render cancelled.")
    else:
        messages.warning(request, "That render had already finished.")
    return HttpResponseRedirect(reverse("briefs:detail", args=[job.brief.uuid]))


@login_required
@require_GET
def artifact_file(request: HttpRequest, artifact_uuid: str) -> FileResponse:
    artifact: Artifact = get_object_or_404(artifacts_visible_to(request.user), uuid=artifact_uuid)
    return artifact_response(request, artifact, as_attachment=request.GET.get("download") == "1")


def _input_response(request: HttpRequest, name: str) -> FileResponse:
    response = file_response(request, storages["inputs"].open(name, "rb"))
    response["Cache-Control"] = "private, max-age=300"
    response["X-Content-Type-Options"] = "nosniff"
    return response


@login_required
@require_GET
def scene_input_image(request: HttpRequest, scene_uuid: str) -> FileResponse:
    scene = get_object_or_404(scenes_visible_to(request.user), uuid=scene_uuid)
    if not scene.input_image:
        raise Http404("This scene has no input image.")
    return _input_response(request, scene.input_image.name)


@login_required
@require_GET
def brief_reference_image(request: HttpRequest, brief_uuid: str) -> FileResponse:
    brief = get_object_or_404(briefs_visible_to(request.user), uuid=brief_uuid)
    if not brief.reference_image:
        raise Http404("This brief has no character reference.")
    return _input_response(request, brief.reference_image.name)

"""The brief editor: server-rendered pages; live progress comes over the brief's socket."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.files.storage import storages
from django.db import transaction
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from briefs import services
from briefs.board import progress_of, scene_cards
from briefs.forms import BriefForm, CharacterForm, SceneForm
from briefs.models import Brief, Character, OutlineKind, Scene
from briefs.outline_views import refine_context
from briefs.presenters import scene_fields_json, scene_payload, scene_values
from briefs.selectors import briefs_visible_to, scenes_visible_to
from generation import services as render_services
from generation.deliverable_views import deliverables_context
from generation.downloads import artifact_response
from generation.events import job_payload, publish_scene_changed
from generation.models import Artifact
from generation.selectors import artifacts_visible_to, jobs_visible_to
from storycore.responses import file_response
from telemetry.selectors import brief_runs, brief_spend


def _wants_json(request: HttpRequest) -> bool:
    return request.headers.get("Accept", "").startswith("application/json")


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
    cards = scene_cards(brief, bound=bound_scene)
    context = {
        "brief": brief,
        "brief_form": brief_form or BriefForm(instance=brief),
        "brief_stamp": services.brief_stamp(brief),
        "new_scene_form": new_scene_form or SceneForm(prefix="new", brief=brief),
        "characters": [
            (character, CharacterForm(instance=character, prefix=f"c{character.pk}", brief=brief))
            for character in brief.characters.all()
        ],
        "new_character_form": new_character_form or CharacterForm(prefix="newc", brief=brief),
        # The idea's expansion; refines have their own box (templates/briefs/_refine.html).
        "outline": brief.outline_requests.filter(kind=OutlineKind.EXPAND).first(),
        "cards": cards,
        "progress": progress_of(cards),
        **refine_context(request, brief),
        **deliverables_context(brief),
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
    with transaction.atomic():
        scene = services.scene_create(brief=brief, **form.cleaned_data)
        publish_scene_changed(brief=brief, scene_uuid=scene.uuid, action="created", version=scene.version)
    messages.success(request, f"Scene {scene.position} added.")
    if form.dropped_note():
        messages.info(request, form.dropped_note())
    return redirect(f"{reverse('briefs:detail', args=[brief.uuid])}#scene-{scene.uuid}")


def _scene_url(scene: Scene) -> str:
    return f"{reverse('briefs:detail', args=[scene.brief.uuid])}#scene-{scene.uuid}"


def _base_version(request: HttpRequest) -> tuple[int | None, str | None]:
    """The scene version the page edited from, and an error when it is missing or not a number."""
    raw = request.POST.get("base_version", "").strip()
    if not raw:
        return None, "Send base_version: the scene version this page was editing from."
    try:
        return int(raw), None
    except ValueError:
        return None, f"base_version must be a scene version (a whole number), not “{raw[:40]}”."


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
    wants_json = _wants_json(request)
    base_version, base_error = _base_version(request)
    if wants_json and base_error:
        return JsonResponse({"errors": {"base_version": [base_error]}}, status=400)
    if not form.is_valid():
        if wants_json:
            return JsonResponse(
                {"errors": {name: list(errs) for name, errs in form.errors.items()}}, status=400
            )
        return _editor(request, scene.brief, bound_scene=(scene.pk, form), status=400)
    before = scene.version
    try:
        with transaction.atomic():
            saved = services.scene_update(
                scene=scene,
                base_version=base_version,
                overwrite=request.POST.get("overwrite") == "1",
                **form.cleaned_data,
            )
            if saved.version != before:
                publish_scene_changed(
                    brief=scene.brief, scene_uuid=scene.uuid, action="updated", version=saved.version
                )
    except services.SceneConflict as exc:
        if not wants_json:
            messages.error(request, f"Not saved: {exc}")
            return redirect(_scene_url(scene))
        return JsonResponse(
            {
                "code": "conflict",
                "error": str(exc),
                "theirs": {
                    "version": exc.scene.version,
                    "fields": scene_fields_json(scene_values(exc.scene)),
                },
                "yours": {"fields": scene_fields_json(form.cleaned_data)},
                "differs": exc.differs,
            },
            status=409,
        )
    except services.SceneRefused as exc:
        if not wants_json:
            messages.error(request, str(exc))
            return redirect("briefs:detail", brief_uuid=scene.brief.uuid)
        return JsonResponse({"code": "deleted", "error": str(exc)}, status=409)
    except services.SceneParamsRefused as exc:
        # The template changed between the form's check and the save: the form says where.
        for name, message in exc.errors.items():
            form.add_error(f"param_{name}" if f"param_{name}" in form.fields else None, message)
        if wants_json:
            return JsonResponse(
                {"errors": {name: list(errs) for name, errs in form.errors.items()}}, status=400
            )
        return _editor(request, scene.brief, bound_scene=(scene.pk, form), status=400)
    if wants_json:
        return JsonResponse({"scene": scene_payload(saved), "note": form.dropped_note()})
    messages.success(request, f"Scene {saved.position} saved.")
    if form.dropped_note():
        messages.info(request, form.dropped_note())
    return redirect(_scene_url(scene))


@login_required
@require_POST
def scene_move(request: HttpRequest, scene_uuid: str) -> HttpResponse:
    scene = get_object_or_404(scenes_visible_to(request.user).select_related("brief"), uuid=scene_uuid)
    raw = request.POST.get("position", "").strip()
    try:
        position = int(raw)
    except ValueError:
        error = f"position must be a whole number from 1 (the first scene), not “{raw[:40]}”."
        if _wants_json(request):
            return JsonResponse({"errors": {"position": [error]}}, status=400)
        messages.error(request, f"Scene not moved: {error}")
        return redirect(_scene_url(scene))
    try:
        with transaction.atomic():
            order = services.scene_move(scene=scene, position=position)
            publish_scene_changed(
                brief=scene.brief, scene_uuid=scene.uuid, action="moved", version=scene.version
            )
    except services.SceneRefused as exc:
        return _scene_refused(request, scene, exc)
    if _wants_json(request):
        return JsonResponse({"order": order})
    now_at = next(item["position"] for item in order if item["uuid"] == str(scene.uuid))
    messages.success(request, f"Scene moved to position {now_at}.")
    return redirect(_scene_url(scene))


def _scene_refused(request: HttpRequest, scene: Scene, exc: Exception) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse({"error": str(exc)}, status=409)
    messages.error(request, str(exc))
    return redirect("briefs:detail", brief_uuid=scene.brief.uuid)


@login_required
@require_POST
def scene_duplicate(request: HttpRequest, scene_uuid: str) -> HttpResponse:
    scene = get_object_or_404(scenes_visible_to(request.user).select_related("brief"), uuid=scene_uuid)
    try:
        with transaction.atomic():
            copy = services.scene_duplicate(scene=scene)
            publish_scene_changed(
                brief=scene.brief, scene_uuid=copy.uuid, action="duplicated", version=copy.version
            )
    except services.SceneRefused as exc:
        return _scene_refused(request, scene, exc)
    if _wants_json(request):
        return JsonResponse(
            {"scene": scene_payload(copy), "order": services.scene_order(brief=scene.brief)}, status=201
        )
    messages.success(request, f"Scene {scene.position} duplicated as scene {copy.position}.")
    return redirect(_scene_url(copy))


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
    with transaction.atomic():
        deleted, _ = render_services.scene_delete_with_renders(scene=scene)
        if deleted is not None:
            publish_scene_changed(
                brief=scene.brief, scene_uuid=scene.uuid, action="deleted", version=scene.version
            )
    undo_url = reverse("briefs:scene-restore", args=[scene.uuid])
    if _wants_json(request):
        return JsonResponse(
            {
                "deleted": {"uuid": str(scene.uuid), "position": scene.position, "title": scene.title},
                "undo_url": undo_url,
            }
        )
    messages.success(request, f"Scene {scene.position} ({scene.title}) deleted.")
    return redirect("briefs:detail", brief_uuid=brief_uuid)


@login_required
@require_POST
def scene_restore(request: HttpRequest, scene_uuid: str) -> HttpResponse:
    # Deleted scenes too, but only in the briefs this user may see.
    scene = get_object_or_404(
        Scene.all_objects.filter(brief__in=briefs_visible_to(request.user)).select_related("brief"),
        uuid=scene_uuid,
    )
    try:
        with transaction.atomic():
            restored = services.scene_restore(scene=scene)
            publish_scene_changed(
                brief=scene.brief, scene_uuid=scene.uuid, action="restored", version=restored.version
            )
    except services.SceneRefused as exc:
        if _wants_json(request):
            return JsonResponse({"code": "not-restorable", "error": str(exc)}, status=409)
        messages.error(request, str(exc))
        return redirect("briefs:detail", brief_uuid=scene.brief.uuid)
    if _wants_json(request):
        return JsonResponse(
            {"scene": scene_payload(restored), "order": services.scene_order(brief=scene.brief)}
        )
    messages.success(request, f"Scene {restored.position} ({restored.title}) restored.")
    return redirect(_scene_url(restored))


@login_required
@require_POST
def scene_render(request: HttpRequest, scene_uuid: str) -> HttpResponse:
    scene = get_object_or_404(scenes_visible_to(request.user).select_related("brief"), uuid=scene_uuid)
    try:
        job = render_services.render_job_submit(
            scene=scene, user=request.user, again=request.POST.get("again") == "1"
        )
    except render_services.RenderAlreadyOpen as exc:
        if _wants_json(request):
            return JsonResponse(
                {"code": "already-rendering", "error": str(exc), "job": job_payload(exc.job)}, status=409
            )
        messages.warning(request, str(exc))
        return redirect(_scene_url(scene))
    except render_services.RenderRefused as exc:
        if _wants_json(request):
            return JsonResponse({"error": str(exc)}, status=409)
        messages.error(request, str(exc))
        return redirect("briefs:detail", brief_uuid=scene.brief.uuid)
    if _wants_json(request):
        return JsonResponse({"job": job_payload(job)}, status=202)
    messages.info(request, f"Scene {scene.position} queued for rendering.")
    return redirect(_scene_url(scene))


@login_required
@require_POST
def brief_render(request: HttpRequest, brief_uuid: str) -> HttpResponse:
    brief = get_object_or_404(briefs_visible_to(request.user), uuid=brief_uuid)
    open_scenes = request.POST.get("open", "ask")
    if open_scenes not in render_services.OPEN_SCENES_CHOICES:
        error = (
            f"open must be one of {', '.join(render_services.OPEN_SCENES_CHOICES)}, not “{open_scenes[:40]}”."
        )
        if _wants_json(request):
            return JsonResponse({"errors": {"open": [error]}}, status=400)
        messages.error(request, error)
        return redirect("briefs:detail", brief_uuid=brief.uuid)
    try:
        _, jobs = render_services.render_brief_submit(brief=brief, user=request.user, open_scenes=open_scenes)
    except render_services.RenderScenesOpen as exc:
        if _wants_json(request):
            return JsonResponse(
                {"code": "already-rendering", "error": str(exc), "scenes": exc.scenes}, status=409
            )
        messages.warning(request, str(exc))
        return redirect("briefs:detail", brief_uuid=brief.uuid)
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
    cancelled = render_services.render_job_cancel(job=job)
    if _wants_json(request):
        if cancelled:
            return JsonResponse({"cancelled": True})
        return JsonResponse({"code": "finished", "error": "That render had already finished."}, status=409)
    if cancelled:
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

from typing import Any, cast

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from briefs import services
from briefs.forms import SceneAdminForm, SceneAdminFormSet, version_note
from briefs.models import Brief, Scene, Team


class SceneInline(admin.TabularInline):
    model = Scene
    form = SceneAdminForm
    formset = SceneAdminFormSet
    fields = ["position", "title", "prompt", "seed", "input_image", "version"]
    readonly_fields = ["version"]
    extra = 0

    def get_formset(
        self, request: HttpRequest, obj: Brief | None = None, **kwargs: Any
    ) -> type[SceneAdminFormSet]:
        formset = cast(type[SceneAdminFormSet], super().get_formset(request, obj, **kwargs))
        formset.request = request  # a class made for this request by inlineformset_factory
        return formset


@admin.register(Brief)
class BriefAdmin(admin.ModelAdmin):
    list_display = ["title", "team", "template", "scene_count", "created_by", "updated_at"]
    list_filter = ["team", "created_at"]
    search_fields = ["title", "idea", "uuid"]
    readonly_fields = ["uuid", "event_seq", "created_at", "updated_at"]
    inlines = [SceneInline]

    @admin.display(description="Scenes")
    def scene_count(self, brief: Brief) -> int:
        return brief.scenes.count()


@admin.register(Scene)
class SceneAdmin(admin.ModelAdmin):
    list_display = ["title", "brief", "position", "version", "updated_at"]
    list_filter = ["brief"]
    search_fields = ["title", "prompt", "uuid", "brief__title"]
    readonly_fields = ["uuid", "version", "created_at", "updated_at"]
    form = SceneAdminForm

    def save_model(self, request: HttpRequest, obj: Scene, form: SceneAdminForm, change: bool) -> None:
        if change:
            scene, before = form.update_scene()
            note = version_note(scene, before)
        else:
            scene = form.create_scene(brief=form.cleaned_data["brief"])
            note = f"scene {scene.position} added"
        self.message_user(request, f"{scene.brief}: {note}.", messages.INFO)

    def delete_model(self, request: HttpRequest, obj: Scene) -> None:
        services.scene_delete(scene=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Scene]) -> None:
        for scene in queryset:
            services.scene_delete(scene=scene)


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["name", "created_at"]
    search_fields = ["name"]
    filter_horizontal = ["members"]

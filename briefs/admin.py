from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.forms import BaseInlineFormSet
from django.http import HttpRequest

from briefs import services
from briefs.forms import SceneAdminForm, SceneAdminFormSet, version_note
from briefs.models import Brief, Character, Scene, Team
from briefs.selectors import team_preferred_for
from generation import services as render_services


class CharacterAdminFormSet(BaseInlineFormSet):
    """The story bible's cast in the admin, changed through `briefs.services` (a new bible version)."""

    def save(self, commit: bool = True) -> list[Any]:
        if not commit:
            raise ValueError("characters are saved through briefs.services; commit=False cannot be honoured")
        return super().save(commit=True)

    def save_new(self, form: Any, commit: bool = True) -> Character:
        values = {name: form.cleaned_data.get(name) for name in services.CHARACTER_FIELDS}
        return services.character_create(brief=self.instance, **values)

    def save_existing(self, form: Any, obj: Any, commit: bool = True) -> Character:
        stored = Character.objects.get(pk=obj.pk)
        changed = {
            name: form.cleaned_data[name] for name in form.changed_data if name in services.CHARACTER_FIELDS
        }
        return services.character_update(character=stored, **changed)

    def delete_existing(self, obj: Any, commit: bool = True) -> None:
        services.character_delete(character=obj)


class CharacterInline(admin.StackedInline):
    model = Character
    formset = CharacterAdminFormSet
    fields = ["name", "description", "look", "prompt_words", "reference_image"]
    extra = 0


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
    list_select_related = ["team", "template", "created_by"]
    search_fields = ["title", "idea", "uuid"]
    readonly_fields = ["uuid", "created_by", "event_seq", "bible_version", "created_at", "updated_at"]
    inlines = [CharacterInline, SceneInline]

    @admin.display(description="Scenes")
    def scene_count(self, brief: Brief) -> int:
        return brief.scenes.count()

    def get_form(
        self, request: HttpRequest, obj: Brief | None = None, change: bool = False, **kwargs: Any
    ) -> type[forms.ModelForm]:
        form = super().get_form(request, obj, change=change, **kwargs)
        if obj is None:
            team = form.base_fields["team"]
            team.required = False
            team.help_text = "Left empty: your current team (your personal team when you have none)."
        return form

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        initial = super().get_changeform_initial_data(request)
        team = team_preferred_for(request.user)
        if team is not None:
            initial.setdefault("team", str(team.pk))
        return initial

    def save_model(self, request: HttpRequest, obj: Brief, form: forms.ModelForm, change: bool) -> None:
        data = form.cleaned_data
        if change:
            stored = Brief.objects.get(pk=obj.pk)
            if "team" in form.changed_data:
                services.brief_move(brief=stored, team=data["team"])
            changed = {name: data[name] for name in form.changed_data if name in services.BRIEF_FIELDS}
            brief = services.brief_update(brief=stored, **changed) if changed else stored
            for field in Brief._meta.concrete_fields:
                setattr(obj, field.attname, getattr(brief, field.attname))
            return
        brief = services.brief_create(
            user=request.user,
            team=data.get("team"),
            **{name: data[name] for name in services.BRIEF_FIELDS if name in data},
        )
        # The admin saves the inlines and logs the addition against the object it built:
        # make that object the row the service created.
        for field in Brief._meta.concrete_fields:
            setattr(obj, field.attname, getattr(brief, field.attname))
        obj._state.adding = False
        obj._state.db = brief._state.db


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
        render_services.scene_delete_with_renders(scene=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Scene]) -> None:
        for scene in queryset:
            render_services.scene_delete_with_renders(scene=scene)


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["name", "personal_for", "member_count", "created_at"]
    list_select_related = ["personal_for"]
    search_fields = ["name", "personal_for__username"]
    raw_id_fields = ["personal_for"]
    filter_horizontal = ["members"]

    @admin.display(description="Members")
    def member_count(self, team: Team) -> int:
        return team.members.count()

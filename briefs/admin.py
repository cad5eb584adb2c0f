from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db.models import Count, Q, QuerySet
from django.forms import BaseInlineFormSet
from django.http import HttpRequest

from briefs import services
from briefs.forms import SceneAdminForm, SceneAdminFormSet, version_note
from briefs.models import Brief, Character, InvitationState, Scene, Team, TeamInvitation
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


class TeamAdminForm(forms.ModelForm):
    invite = forms.CharField(
        required=False,
        max_length=254,
        label="Invite a user",
        help_text="Username or email of an existing user: they see the invitation on their brief list "
        "and join when they accept.",
    )

    class Meta:
        model = Team
        fields = ["name", "personal_for", "members"]

    def clean_invite(self) -> Any:
        value = self.cleaned_data.get("invite", "").strip()
        if not value:
            return None
        user_model = get_user_model()
        user = user_model.objects.filter(username__iexact=value).first()
        if user is None:
            by_email = list(user_model.objects.filter(email__iexact=value)[:2])
            if len(by_email) > 1:
                raise forms.ValidationError(f"More than one user has the email “{value}”; give a username.")
            user = by_email[0] if by_email else None
        if user is None:
            raise forms.ValidationError(f"No user has the username or email “{value}”.")
        return user

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        user = cleaned.get("invite")
        if user is None:
            return cleaned
        members = cleaned.get("members")
        if members is not None and members.filter(pk=user.pk).exists():
            self.add_error("invite", f"{user.get_username()} is already a member of this team.")
        elif (
            self.instance.pk is not None
            and self.instance.invitations.filter(user=user, state=InvitationState.PENDING).exists()
        ):
            self.add_error(
                "invite",
                f"{user.get_username()} already has an invitation to this team waiting for an answer.",
            )
        return cleaned


class TeamInvitationInline(admin.TabularInline):
    model = TeamInvitation
    fk_name = "team"
    fields = readonly_fields = ("user", "state", "invited_by", "created_at", "responded_at")
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # invitations are made with "Invite a user" above, through the service


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    form = TeamAdminForm
    list_display = ["name", "personal_for", "member_count", "pending_invitations", "created_at"]
    list_select_related = ["personal_for"]
    search_fields = ["name", "personal_for__username"]
    raw_id_fields = ["personal_for"]
    filter_horizontal = ["members"]
    fields = ["name", "personal_for", "members", "invite"]
    inlines = [TeamInvitationInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Team]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                n_members=Count("members", distinct=True),
                n_pending=Count(
                    "invitations", filter=Q(invitations__state=InvitationState.PENDING), distinct=True
                ),
            )
        )

    @admin.display(description="Members", ordering="n_members")
    def member_count(self, team: Team) -> int:
        return cast(int, team.n_members)  # type: ignore[attr-defined]

    @admin.display(description="Invitations waiting", ordering="n_pending")
    def pending_invitations(self, team: Team) -> int:
        return cast(int, team.n_pending)  # type: ignore[attr-defined]

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        user = form.cleaned_data.get("invite")
        if user is None:
            return
        assert isinstance(request.user, User)
        try:
            services.team_invite(team=form.instance, user=user, by=request.user)
        except services.InvitationRefused as exc:
            # Someone answered or invited in the moment between the check and now.
            self.message_user(request, str(exc), messages.ERROR)
        else:
            self.message_user(
                request, f"{user.get_username()} is invited to {form.instance.name}.", messages.SUCCESS
            )


@admin.register(TeamInvitation)
class TeamInvitationAdmin(admin.ModelAdmin):
    list_display = ["user", "team", "state", "invited_by", "created_at", "responded_at"]
    list_filter = ["state", "team"]
    list_select_related = ["user", "team", "invited_by"]
    search_fields = ["user__username", "user__email", "team__name"]
    fields = readonly_fields = ("uuid", "team", "user", "invited_by", "state", "created_at", "responded_at")
    actions = ["withdraw"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # made from a team's page ("Invite a user"), so the service's checks apply

    @admin.action(description="Withdraw the selected invitations still waiting")
    def withdraw(self, request: HttpRequest, queryset: QuerySet[TeamInvitation]) -> None:
        withdrawn = sum(services.invitation_withdraw(invitation=invitation) for invitation in queryset)
        skipped = queryset.count() - withdrawn
        note = f"{withdrawn} invitation{'s' if withdrawn != 1 else ''} withdrawn."
        if skipped:
            note += f" {skipped} had already been answered and stay as they were."
        self.message_user(request, note, messages.SUCCESS if withdrawn else messages.WARNING)

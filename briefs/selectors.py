"""Reads about briefs that carry an access rule, shared by the editor, the API and the sockets.

The rule: staff see every brief; any other active user sees the briefs of the teams they
are a member of, and nothing else. Every door that reads or changes a brief, a scene, a
job, an artifact or a run starts from one of these querysets.
"""

from typing import TYPE_CHECKING, cast
from uuid import UUID

from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser, User
from django.db.models import Case, IntegerField, QuerySet, Value, When

from briefs.composition import CharacterSpec, ComposedPrompt, ShotSpec, StyleSpec, compose
from briefs.models import Brief, InvitationState, Scene, Team, TeamInvitation, UserPreference

if TYPE_CHECKING:
    from generation.models import WorkflowTemplate


def teams_of(user: User | AnonymousUser) -> QuerySet[Team]:
    """The teams the user is a member of: shared teams first (by name), their personal team last."""
    if not user.is_authenticated or not user.is_active:
        return Team.objects.none()
    personal_last = Case(
        When(personal_for=user, then=Value(1)), default=Value(0), output_field=IntegerField()
    )
    return (
        Team.objects.filter(members=user)
        .annotate(personal_last=personal_last)
        .order_by("personal_last", "name")
    )


def briefs_visible_to(user: User | AnonymousUser) -> QuerySet[Brief]:
    """Staff see every brief; others see their teams' briefs only."""
    if not user.is_authenticated or not user.is_active:
        return Brief.objects.none()
    if user.is_staff:
        return Brief.objects.all()
    # A subquery rather than a join: one row per brief, no DISTINCT needed.
    return Brief.objects.filter(team__in=Team.objects.filter(members=user).values("pk"))


def scenes_visible_to(user: User | AnonymousUser) -> QuerySet[Scene]:
    return Scene.objects.filter(brief__in=briefs_visible_to(user))


def brief_watchable_by(*, user_pk: int | None, brief_uuid: UUID | str) -> bool:
    """Whether the user may still follow a brief, read fresh from the database.

    For live sockets, which hold a user object from when they connected: a user since
    deactivated, demoted or removed from the brief's team reads False here.
    """
    if user_pk is None:
        return False
    user = get_user_model().objects.filter(pk=user_pk).first()
    if user is None:
        return False
    return briefs_visible_to(user).filter(uuid=brief_uuid).exists()


def team_preferred_for(user: User | AnonymousUser) -> Team | None:
    """The team the user's new briefs go to, when they have one; reads only.

    Their chosen team while they are still in it, else their first team (`teams_of`
    order), else None: `briefs.services.team_current_for` then makes their personal team.
    """
    teams = teams_of(user)
    if isinstance(user, User):
        chosen = UserPreference.objects.filter(user=user).values_list("current_team", flat=True).first()
        if chosen is not None:
            team = teams.filter(pk=chosen).first()
            if team is not None:
                return team
    return teams.first()


def composed_for(scene: Scene) -> ComposedPrompt:
    """The prompt and negative prompt the scene renders with now: its brief's story bible, its cast,
    its shot and its own prompt, composed (briefs.composition)."""
    brief = scene.brief
    return compose(
        prompt=scene.prompt,
        negative_prompt=scene.negative_prompt,
        characters=[
            CharacterSpec(name=c.name, description=c.description, look=c.look, prompt_words=c.prompt_words)
            # .all(), sorted here: a list of scenes prefetched with their cast costs no query each.
            for c in sorted(scene.characters.all(), key=lambda c: (c.position, c.pk))
        ],
        shot=ShotSpec(
            shot_type=scene.shot_type,
            camera_move=scene.camera_move,
            lens=scene.lens,
            lighting=scene.lighting,
            mood=scene.mood,
        ),
        style=StyleSpec(notes=brief.style, palette=brief.palette, negative_terms=brief.negative_style),
        setting=brief.setting,
    )


def invitations_pending_for(user: User | AnonymousUser) -> QuerySet[TeamInvitation]:
    """The invitations waiting for this user's answer, newest first."""
    if not user.is_authenticated or not user.is_active:
        return TeamInvitation.objects.none()
    return TeamInvitation.objects.filter(user=user, state=InvitationState.PENDING).select_related(
        "team", "invited_by"
    )


def studio_default_template() -> "WorkflowTemplate | None":
    """The template of a scene when neither it nor its brief names one: the configured default,
    else the first enabled one. Found by the model's name, like the foreign keys that point at
    it, so that briefs imports nothing of generation."""
    model = cast("type[WorkflowTemplate]", apps.get_model("generation", "WorkflowTemplate"))
    enabled = model.objects.filter(enabled=True)
    return enabled.filter(slug=settings.DEFAULT_TEMPLATE_SLUG).first() or enabled.first()


def template_in_effect(*, brief: Brief, template: "WorkflowTemplate | None") -> "WorkflowTemplate | None":
    """The template a scene renders with: its own, else its brief's, else the studio's default."""
    return template or brief.template or studio_default_template()

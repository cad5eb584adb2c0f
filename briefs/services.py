"""State changes of briefs and scenes. Every door (editor, API, commands) goes through here."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any, cast

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.db import IntegrityError, transaction
from django.db.models import F, Max
from django.utils import timezone

from briefs.models import (
    AspectRatio,
    Brief,
    CameraMove,
    Character,
    InvitationState,
    OutlineKind,
    OutlineRequest,
    OutlineState,
    Scene,
    ShotType,
    Team,
    TeamInvitation,
    Transition,
    UserPreference,
)
from briefs.outline import ASPECTS as OUTLINE_ASPECTS
from briefs.outline import (
    TIMES_OF_DAY,
    WEATHER,
    Expander,
    Outline,
    OutlineError,
    outline_changes,
    scene_named_in,
)
from briefs.outline import Character as OutlineCharacter
from briefs.outline import Scene as OutlineScene
from briefs.outline import StoryBible as OutlineBible
from briefs.outline import Style as OutlineStyle
from briefs.selectors import team_preferred_for, teams_of, template_in_effect
from generation.workflow_parameters import check_values, parameters_from_json

if TYPE_CHECKING:
    # A brief names the template it renders with; the type alone, so briefs imports no generation.
    from generation.models import RenderJob, WorkflowTemplate

# The story bible's own fields: a change to any of them (or to a character) is a new bible version.
BIBLE_FIELDS = ("style", "palette", "negative_style", "setting")
BRIEF_FIELDS = (
    "title",
    "idea",
    "logline",
    *BIBLE_FIELDS,
    "aspect_ratio",
    "target_seconds",
    "reference_image",
    "template",
)
SHOT_FIELDS = ("shot_type", "camera_move", "lens", "lighting", "mood")
# In the order the editor shows them.
SCENE_FIELDS = (
    "title",
    "action",
    "prompt",
    "negative_prompt",
    "characters",
    *SHOT_FIELDS,
    "duration_s",
    "transition",
    "seed",
    "input_image",
    "template",
    "params",
)
CHARACTER_FIELDS = ("name", "description", "look", "prompt_words", "reference_image")

# Briefs made with no user (commands, scripts) go here; so did staff's team-less briefs
# when teams became required (migration 0004, which keeps its own copy of these names).
log = logging.getLogger(__name__)

STUDIO_TEAM_NAME = "Studio"
PERSONAL_TEAM_SUFFIX = " (personal)"


class TeamRefused(Exception):
    """A team the user may not use; the message says why and names no other team."""


# -- teams ----------------------------------------------------------------------
def _unique_team_name(base: str) -> str:
    base = base[: Team._meta.get_field("name").max_length - 6]  # type: ignore[operator]
    name, n = base, 1
    while Team.objects.filter(name=name).exists():
        n += 1
        name = f"{base} #{n}"
    return name


def team_personal_for(*, user: User) -> Team:
    """The user's personal team, made on first use; its owner is always a member."""
    team = Team.objects.filter(personal_for=user).first()
    if team is None:
        try:
            with transaction.atomic():
                team = Team.objects.create(
                    name=_unique_team_name(f"{user.username}{PERSONAL_TEAM_SUFFIX}"), personal_for=user
                )
        except IntegrityError:
            # Another request of theirs made it a moment ago.
            team = Team.objects.get(personal_for=user)
    team.members.add(user)
    return team


def team_current_for(*, user: User) -> Team:
    """The team the user's new briefs go to: the one they chose while they are still in it,
    else their first team, else their personal team, made now."""
    return team_preferred_for(user) or team_personal_for(user=user)


def team_set_current(*, user: User, team: Team) -> UserPreference:
    """Choose the team the user's new briefs go to (the editor's team switcher)."""
    if not teams_of(user).filter(pk=team.pk).exists():
        raise TeamRefused("You are not a member of that team.")
    preference, _ = UserPreference.objects.update_or_create(user=user, defaults={"current_team": team})
    return preference


def team_studio() -> Team:
    team, _ = Team.objects.get_or_create(name=STUDIO_TEAM_NAME)
    return team


# -- invitations -------------------------------------------------------------------
class InvitationRefused(Exception):
    """An invitation that cannot be made or answered as asked; the message says why."""


def team_invite(*, team: Team, user: User, by: User | None) -> TeamInvitation:
    """Ask an existing user to join a team; they become a member when they accept."""
    if team.members.filter(pk=user.pk).exists():
        raise InvitationRefused(f"{user.get_username()} is already a member of {team.name}.")
    try:
        with transaction.atomic():
            return TeamInvitation.objects.create(team=team, user=user, invited_by=by)
    except IntegrityError:
        # The partial unique constraint: one invitation waits per person and team.
        raise InvitationRefused(
            f"{user.get_username()} already has an invitation to {team.name} waiting for an answer."
        ) from None


def _invitation_answer(*, invitation: TeamInvitation, user: User, state: str) -> TeamInvitation:
    moved = TeamInvitation.objects.filter(pk=invitation.pk, user=user, state=InvitationState.PENDING).update(
        state=state, responded_at=timezone.now()
    )
    invitation.refresh_from_db()
    if moved != 1:
        raise InvitationRefused(
            f"This invitation to {invitation.team.name} was already answered: "
            f"{invitation.get_state_display().lower()}."
        )
    return invitation


@transaction.atomic
def invitation_accept(*, invitation: TeamInvitation, user: User) -> TeamInvitation:
    """The invited user joins the team; an invitation already answered changes nothing."""
    invitation = _invitation_answer(invitation=invitation, user=user, state=InvitationState.ACCEPTED)
    invitation.team.members.add(user)
    return invitation


def invitation_decline(*, invitation: TeamInvitation, user: User) -> TeamInvitation:
    return _invitation_answer(invitation=invitation, user=user, state=InvitationState.DECLINED)


def invitation_withdraw(*, invitation: TeamInvitation) -> bool:
    """Take back an invitation still waiting (staff, in the admin); False when it was answered."""
    moved = TeamInvitation.objects.filter(pk=invitation.pk, state=InvitationState.PENDING).update(
        state=InvitationState.WITHDRAWN, responded_at=timezone.now()
    )
    return moved == 1


# -- briefs and scenes ----------------------------------------------------------
@transaction.atomic
def brief_create(
    *,
    user: User | AnonymousUser | None,
    title: str,
    idea: str = "",
    team: Team | None = None,
    template: WorkflowTemplate | None = None,
    reference_image: Any = None,
    characters: list[dict[str, Any]] | None = None,
    scenes: list[dict[str, Any]] | None = None,
    **values: Any,
) -> Brief:
    """A brief in `team`, else in the user's current team (the Studio team without a user).

    A user who is not staff may only name one of their own teams. `characters` are the story bible's
    cast (name, description, look, prompt_words); a scene names its cast by character name.
    """
    unknown = set(values) - set(BRIEF_FIELDS)
    if unknown:
        raise TypeError(f"brief_create() got unknown fields: {', '.join(sorted(unknown))}")
    owner = user if isinstance(user, User) else None
    if team is None:
        team = team_current_for(user=owner) if owner is not None else team_studio()
    elif owner is not None and not owner.is_staff and not teams_of(owner).filter(pk=team.pk).exists():
        raise TeamRefused("You are not a member of that team.")
    brief = Brief.objects.create(
        title=title,
        idea=idea,
        team=team,
        template=template,
        reference_image=reference_image or "",
        created_by=owner,
        **values,
    )
    for character in characters or []:
        _character_add(brief=brief, **character)
    for scene_values in scenes or []:
        scene_create(brief=brief, **scene_values)
    return brief


class BriefConflict(Exception):
    """A save of the brief or its cast made from an older state of it that would overwrite what
    someone else saved since. Nothing was saved; `differs` names the fields, `current` what is stored."""

    def __init__(self, *, current: dict[str, Any], differs: list[str], stamp: str) -> None:
        super().__init__(
            "The story bible was changed elsewhere while you were editing it. Both versions are "
            "shown; keep yours or take theirs."
        )
        self.current = current
        self.differs = differs
        self.stamp = stamp


def brief_stamp(brief: Brief) -> str:
    """What the editor holds to say which state of the brief and its cast it edits."""
    return brief.updated_at.isoformat()


def _refuse_stale(*, brief_id: int, base_stamp: str | None, row: Any, values: dict[str, Any]) -> None:
    """Lock the brief; when it moved on since `base_stamp` and `values` would change `row` (the brief
    or a character, read again under the lock), refuse with BriefConflict."""
    brief = Brief.objects.select_for_update().get(pk=brief_id)
    if base_stamp is None or brief_stamp(brief) == base_stamp:
        return
    row.refresh_from_db()
    differs = [
        name for name, value in values.items() if name != "reference_image" and getattr(row, name) != value
    ]
    if differs:
        raise BriefConflict(
            current={name: getattr(row, name) for name in differs}, differs=differs, stamp=brief_stamp(brief)
        )


def brief_update(
    *, brief: Brief, base_stamp: str | None = None, overwrite: bool = False, **values: Any
) -> Brief:
    """Change the brief; `base_stamp` (brief_stamp of what the editor started from) makes a save
    over someone else's newer one refuse with BriefConflict, unless `overwrite`."""
    unknown = set(values) - set(BRIEF_FIELDS)
    if unknown:
        raise TypeError(f"brief_update() got unknown fields: {', '.join(sorted(unknown))}")
    if values.get("reference_image") is False:  # a cleared file input
        values["reference_image"] = ""
    with transaction.atomic():
        _refuse_stale(
            brief_id=brief.pk, base_stamp=None if overwrite else base_stamp, row=brief, values=values
        )
        bible_changed = any(
            name in BIBLE_FIELDS and getattr(brief, name) != value for name, value in values.items()
        )
        for name, value in values.items():
            setattr(brief, name, value)
        # save() rather than update(): a new file must go through the field's storage.
        brief.save(update_fields=[*values, "updated_at"])
        if bible_changed:
            _bible_changed(brief)
    brief.refresh_from_db()
    return brief


@transaction.atomic
def brief_move(*, brief: Brief, team: Team) -> Brief:
    """Give a brief to another team (staff, in the admin): its watchers outside that team lose it."""
    Brief.objects.filter(pk=brief.pk).update(team=team, updated_at=timezone.now())
    brief.refresh_from_db()
    return brief


def _bible_changed(brief: Brief) -> None:
    Brief.objects.filter(pk=brief.pk).update(bible_version=F("bible_version") + 1, updated_at=timezone.now())


# -- the story bible's cast --------------------------------------------------------
class CharacterRefused(Exception):
    """A character that cannot be saved as asked; the message says why."""


def _character_add(*, brief: Brief, name: str, position: int | None = None, **values: Any) -> Character:
    unknown = set(values) - set(CHARACTER_FIELDS)
    if unknown:
        raise TypeError(f"character_create() got unknown fields: {', '.join(sorted(unknown))}")
    name = name.strip()
    if not name:
        raise CharacterRefused("Give the character a name.")
    if brief.characters.filter(name__iexact=name).exists():
        raise CharacterRefused(f"This brief already has a character named {name}.")
    last = brief.characters.aggregate(last=Max("position"))["last"] or 0
    values["reference_image"] = values.get("reference_image") or ""
    return Character.objects.create(brief=brief, name=name, position=position or last + 1, **values)


@transaction.atomic
def character_create(*, brief: Brief, name: str, **values: Any) -> Character:
    Brief.objects.select_for_update().filter(pk=brief.pk).first()
    character = _character_add(brief=brief, name=name, **values)
    _bible_changed(brief)
    return character


@transaction.atomic
def character_update(
    *, character: Character, base_stamp: str | None = None, overwrite: bool = False, **values: Any
) -> Character:
    """Change a character; `base_stamp` as for brief_update (the cast is part of the brief's state)."""
    unknown = set(values) - set(CHARACTER_FIELDS)
    if unknown:
        raise TypeError(f"character_update() got unknown fields: {', '.join(sorted(unknown))}")
    _refuse_stale(
        brief_id=character.brief_id,
        base_stamp=None if overwrite else base_stamp,
        row=character,
        values=values,
    )
    if "name" in values:
        values["name"] = values["name"].strip()
        if not values["name"]:
            raise CharacterRefused("Give the character a name.")
        clash = character.brief.characters.filter(name__iexact=values["name"]).exclude(pk=character.pk)
        if clash.exists():
            raise CharacterRefused(f"This brief already has a character named {values['name']}.")
    if values.get("reference_image") is False:
        values["reference_image"] = ""
    changed = [name for name, value in values.items() if getattr(character, name) != value]
    if not changed:
        return character
    for name in changed:
        setattr(character, name, values[name])
    character.save(update_fields=changed)
    _bible_changed(character.brief)
    return character


@transaction.atomic
def character_delete(*, character: Character) -> None:
    brief = character.brief
    # The scenes they were in change what they render: each gets a new version.
    Scene.objects.filter(characters=character).update(version=F("version") + 1, updated_at=timezone.now())
    character.delete()
    _bible_changed(brief)


class SceneParamsRefused(Exception):
    """Template parameter values a scene cannot take; `errors` holds a message per parameter."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(errors.values()))
        self.errors = errors


def scene_params_checked(
    *, brief: Brief, template: WorkflowTemplate | None, params: dict[str, Any]
) -> dict[str, Any]:
    """The parameter values a scene of `brief` with `template` (None: the brief's) stores: only those
    set and unlike the default. The one check of the editor, the admin and the API; SceneParamsRefused
    names each unknown parameter, wrong type, value out of range or choice not offered."""
    if not isinstance(params, dict):
        raise SceneParamsRefused({"params": "params must be an object of parameter name -> value"})
    effective = template_in_effect(brief=brief, template=template)
    if effective is None:
        if params:
            raise SceneParamsRefused({name: "no workflow template is loaded to take it" for name in params})
        return {}
    kept, errors = check_values(parameters_from_json(effective.parameters), params, template=effective.name)
    if errors:
        raise SceneParamsRefused(errors)
    return kept


def scene_params_fitted(
    *, brief: Brief, template: WorkflowTemplate | None, params: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, str]]:
    """The values that still fit a scene's new template, and why each of the others was dropped."""
    effective = template_in_effect(brief=brief, template=template)
    if effective is None:
        return {}, {name: "no workflow template is loaded to take it" for name in params}
    return check_values(parameters_from_json(effective.parameters), params, template=effective.name)


@transaction.atomic
def scene_create(
    *,
    brief: Brief,
    title: str,
    prompt: str,
    negative_prompt: str = "",
    seed: int | None = None,
    position: int | None = None,
    input_image: Any = None,
    characters: list[str] | None = None,
    template: WorkflowTemplate | None = None,
    params: dict[str, Any] | None = None,
    **values: Any,
) -> Scene:
    """A scene at `position` (last when left out). `characters` names its cast from the story bible;
    `params` are values for the parameters of its template (`template`, else the brief's)."""
    unknown = set(values) - set(SCENE_FIELDS)
    if unknown:
        raise TypeError(f"scene_create() got unknown fields: {', '.join(sorted(unknown))}")
    params = scene_params_checked(brief=brief, template=template, params=params or {})
    # Lock the brief row so two scenes added at once get distinct positions.
    Brief.objects.select_for_update().filter(pk=brief.pk).first()
    last = brief.scenes.aggregate(last=Max("position"))["last"] or 0
    if position is None or position > last:
        position = last + 1
    else:
        brief.scenes.filter(position__gte=position).update(position=F("position") + 1)
    scene = Scene.objects.create(
        brief=brief,
        position=position,
        title=title,
        prompt=prompt,
        negative_prompt=negative_prompt,
        seed=seed,
        input_image=input_image or "",
        template=template,
        params=params,
        **values,
    )
    if characters:
        scene.characters.set(_cast(brief, characters))
    Brief.objects.filter(pk=brief.pk).update(updated_at=scene.created_at)
    return scene


def _cast(brief: Brief, names_or_characters: list[Any]) -> list[Character]:
    """The brief's characters named, in the order given; an unknown name is refused by name."""
    cast = []
    known = {c.name.lower(): c for c in brief.characters.all()}
    for item in names_or_characters:
        if isinstance(item, Character):
            if item.brief_id != brief.pk:
                raise CharacterRefused(f"{item.name} is not in this brief's story bible.")
            cast.append(item)
            continue
        found = known.get(str(item).strip().lower())
        if found is None:
            raise CharacterRefused(f"There is no character named {item} in this brief's story bible.")
        cast.append(found)
    return cast


class SceneRefused(Exception):
    """A change to a scene that cannot be made as asked; the message says why."""


class SceneConflict(Exception):
    """A save made from an older version of the scene that would overwrite someone else's edit.

    Nothing was saved. `scene` is the scene as stored now; `differs` names the fields where what
    was submitted differs from it.
    """

    def __init__(self, *, scene: Scene, differs: list[str]) -> None:
        super().__init__(
            f"Someone saved this scene while you were editing (version {scene.version}). "
            "Both versions are shown; keep yours or take theirs."
        )
        self.scene = scene
        self.differs = differs


def scene_differs(scene: Scene, values: dict[str, Any]) -> list[str]:
    """The fields (in the editor's order) where `values` would change the scene as given."""
    differs = []
    for name in SCENE_FIELDS:
        if name not in values:
            continue
        value = values[name]
        if name == "characters":
            cast = {c.pk for c in _cast(scene.brief, list(value))}
            if cast != set(scene.characters.values_list("pk", flat=True)):
                differs.append(name)
        elif name == "input_image":
            # None leaves the stored image alone; False clears it; else a file, stored or new.
            if value is not None and (
                bool(scene.input_image) if value is False else value != scene.input_image
            ):
                differs.append(name)
        elif getattr(scene, name) != value:
            differs.append(name)
    return differs


def scene_update(
    *, scene: Scene, base_version: int | None = None, overwrite: bool = False, **values: Any
) -> Scene:
    """Change a scene; its version goes up when anything that a render uses changed.

    `base_version` is the version the values were edited from: when the scene has moved on since
    and the values differ from it, SceneConflict is raised and nothing changes, unless `overwrite`.

    `params` are checked against the template the scene will have. A new template given without
    params keeps the stored values that still fit it and drops the others.
    """
    unknown = set(values) - set(SCENE_FIELDS)
    if unknown:
        raise TypeError(f"scene_update() got unknown fields: {', '.join(sorted(unknown))}")
    template = values.get("template", scene.template)
    if "params" in values:
        values["params"] = scene_params_checked(brief=scene.brief, template=template, params=values["params"])
    elif "template" in values and template != scene.template:
        values["params"], dropped = scene_params_fitted(
            brief=scene.brief, template=template, params=scene.params
        )
        if dropped:
            log.info(
                "scene %s: %s dropped with the change of template", scene.uuid, ", ".join(sorted(dropped))
            )
    with transaction.atomic():
        # The brief first, then the scene: the order every change to a brief's scenes locks in
        # (moves, deletes, the event counter), so that two of them never wait on each other.
        Brief.objects.select_for_update().filter(pk=scene.brief_id).first()
        # Read the row as stored, locked: two saves of one scene compare and write in turn.
        stored = Scene.objects.select_for_update().select_related("brief").filter(pk=scene.pk).first()
        if stored is None:
            raise SceneRefused("This scene has been deleted; restore it before saving.")
        differs = scene_differs(stored, values)
        if base_version is not None and stored.version != base_version and differs and not overwrite:
            raise SceneConflict(scene=stored, differs=differs)
        if not differs:
            return scene
        image = values.pop("input_image", None)
        if "characters" in differs:
            stored.characters.set(_cast(stored.brief, list(values["characters"])))
        if "input_image" in differs:
            stored.input_image = "" if image is False else image
            # save() rather than update(): a new file must go through the field's storage.
            stored.save(update_fields=["input_image"])
        changed = {name: values[name] for name in differs if name not in ("characters", "input_image")}
        Scene.objects.filter(pk=stored.pk).update(
            version=F("version") + 1, updated_at=timezone.now(), **changed
        )
    stored.refresh_from_db()
    if scene is not stored:
        scene.refresh_from_db()  # callers holding their copy see what was saved
    return stored


# generation.models.JobState.SUCCEEDED, spelled out: briefs imports nothing of generation.
_TAKE_STATE = "succeeded"


def scene_pick_final(*, scene: Scene, job: RenderJob | None) -> Scene:
    """Make `job` the scene's final, or clear the final with None.

    Only a take of this scene may be its final: a render of this scene that succeeded.
    """
    if job is not None:
        if job.scene_id != scene.pk:
            raise SceneRefused("That take is not a render of this scene; pick one of its own takes.")
        if job.state != _TAKE_STATE:
            raise SceneRefused(f"Only a finished render can be the final; that one is {job.state}.")
    with transaction.atomic():
        Brief.objects.select_for_update().filter(pk=scene.brief_id).first()  # brief, then scene
        changed = Scene.objects.filter(pk=scene.pk).update(final=job, updated_at=timezone.now())
    if changed != 1:
        raise SceneRefused("This scene has been deleted; restore it before picking its final.")
    scene.final = job
    return scene


def _scene_order(brief_id: int) -> list[dict[str, Any]]:
    return [
        {"uuid": str(uuid), "position": position}
        for uuid, position in Scene.objects.filter(brief_id=brief_id)
        .order_by("position", "id")
        .values_list("uuid", "position")
    ]


def scene_order(*, brief: Brief) -> list[dict[str, Any]]:
    """The brief's scenes in order, as the editor's board places them: [{"uuid", "position"}]."""
    return _scene_order(brief.pk)


def _lock_scenes(brief_id: int) -> list[Scene]:
    """Lock the brief (as scene_create does) and its scenes; the scenes in their order."""
    Brief.objects.select_for_update().filter(pk=brief_id).first()
    return list(Scene.objects.select_for_update().filter(brief_id=brief_id).order_by("position", "id"))


def _renumber(scenes: list[Scene]) -> None:
    """Positions 1..n in the order given, writing only the rows that move."""
    for position, scene in enumerate(scenes, start=1):
        if scene.position != position:
            Scene.objects.filter(pk=scene.pk).update(position=position)
            scene.position = position


@transaction.atomic
def scene_move(*, scene: Scene, position: int) -> list[dict[str, Any]]:
    """Move a scene to `position` (from 1, clamped to the brief's scenes); returns the new order.

    Its version stays: the order is not part of what a render sends.
    """
    scenes = _lock_scenes(scene.brief_id)
    moving = next((s for s in scenes if s.pk == scene.pk), None)
    if moving is None:
        raise SceneRefused("This scene has been deleted; restore it before moving it.")
    scenes.remove(moving)
    scenes.insert(min(max(position, 1), len(scenes) + 1) - 1, moving)
    _renumber(scenes)
    Brief.objects.filter(pk=scene.brief_id).update(updated_at=timezone.now())
    return _scene_order(scene.brief_id)


COPY_SUFFIX = " (copy)"


@transaction.atomic
def scene_duplicate(*, scene: Scene) -> Scene:
    """A copy of the scene right after it: every field, its cast, its seed and its input image.

    The copy shares the stored image file: nothing deletes scene images (a purge removes rows only).
    """
    scenes = _lock_scenes(scene.brief_id)
    original = next((s for s in scenes if s.pk == scene.pk), None)
    if original is None:
        raise SceneRefused("This scene has been deleted; restore it before duplicating it.")
    max_title = Scene._meta.get_field("title").max_length or 200
    values = {
        name: getattr(original, name) for name in SCENE_FIELDS if name not in ("characters", "input_image")
    }
    values["title"] = original.title[: max_title - len(COPY_SUFFIX)] + COPY_SUFFIX
    copy = Scene.objects.create(
        brief_id=original.brief_id,
        position=original.position + 1,
        input_image=original.input_image.name or "",
        **values,
    )
    copy.characters.set(original.characters.all())
    scenes.insert(scenes.index(original) + 1, copy)
    _renumber(scenes)
    Brief.objects.filter(pk=scene.brief_id).update(updated_at=timezone.now())
    copy.refresh_from_db()
    return copy


@transaction.atomic
def scene_delete(*, scene: Scene) -> Scene | None:
    """Take a scene out of its brief, restorable for SCENE_UNDO_KEEP_S (`scene_restore`).

    It keeps the position it had, for a restore; the scenes after it move up. Returns the scene
    as deleted, or None when it already was. Its renders are the render services' to cancel.
    """
    brief_id = scene.brief_id
    # Lock the brief and read the position as stored: the caller's copy may predate
    # another delete in the same brief (the admin deletes several scenes in one save).
    Brief.objects.select_for_update().filter(pk=brief_id).first()
    position = Scene.objects.filter(pk=scene.pk).values_list("position", flat=True).first()
    if position is None:
        return None
    now = timezone.now()
    Scene.objects.filter(pk=scene.pk).update(deleted_at=now, updated_at=now)
    Scene.objects.filter(brief_id=brief_id, position__gt=position).update(position=F("position") - 1)
    Brief.objects.filter(pk=brief_id).update(updated_at=now)
    return Scene.all_objects.get(pk=scene.pk)


def scene_restorable_until(scene: Scene) -> Any:
    assert scene.deleted_at is not None
    return scene.deleted_at + timedelta(seconds=settings.SCENE_UNDO_KEEP_S)


@transaction.atomic
def scene_restore(*, scene: Scene) -> Scene:
    """Put a deleted scene back where it was (clamped to the brief's scenes now)."""
    scenes = _lock_scenes(scene.brief_id)
    stored = Scene.all_objects.filter(pk=scene.pk).first()
    if stored is None:
        raise SceneRefused("This scene was deleted for good; it can no longer be restored.")
    if stored.deleted_at is None:
        raise SceneRefused(
            f"Scene {stored.position} ({stored.title}) is not deleted; there is nothing to restore."
        )
    if timezone.now() > scene_restorable_until(stored):
        raise SceneRefused(
            f"“{stored.title}” was deleted more than {_duration(settings.SCENE_UNDO_KEEP_S)} ago; "
            "it can no longer be restored."
        )
    position = min(max(stored.position, 1), len(scenes) + 1)
    scenes.insert(position - 1, stored)
    now = timezone.now()
    Scene.all_objects.filter(pk=stored.pk).update(deleted_at=None, updated_at=now)
    _renumber(scenes)
    Brief.objects.filter(pk=scene.brief_id).update(updated_at=now)
    return Scene.objects.get(pk=stored.pk)


def _duration(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        hours = int(seconds // 3600)
        return f"{hours} hour{'s' if hours != 1 else ''}"
    if seconds >= 60 and seconds % 60 == 0:
        minutes = int(seconds // 60)
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    return f"{seconds:g} seconds"


def scenes_purge_deleted(*, older_than_s: float) -> int:
    """Delete for good the scenes deleted longer ago than the undo window (with their renders)."""
    cutoff = timezone.now() - timedelta(seconds=older_than_s)
    purged = 0
    for pk in Scene.all_objects.filter(deleted_at__lt=cutoff).values_list("pk", flat=True):
        with transaction.atomic():
            # One at a time: a scene restored meanwhile is left alone.
            count, _ = Scene.all_objects.filter(pk=pk, deleted_at__lt=cutoff).delete()
            purged += 1 if count else 0
    return purged


# -- outline expansion ---------------------------------------------------------------
class OutlineRefused(Exception):
    """An expansion or a refine that cannot start (or land) as asked; the message says why, and
    `field` names the input it is about ("note", "scene"), when there is one."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class OutlineBusy(OutlineRefused):
    """Another outline request of the brief is queued or running."""

    def __init__(self) -> None:
        super().__init__(
            "Another outline request of this brief is still being written: wait for it to finish."
        )


# The outline's camera vocabulary is finer than a scene's: a tilt up and a tilt down are both a tilt.
_CAMERA_FROM_OUTLINE = {
    "tilt up": "tilt",
    "tilt down": "tilt",
    "crane up": "crane",
    "crane down": "crane",
    "zoom in": "zoom",
    "zoom out": "zoom",
}


def _choice(words: str, values: list[str]) -> str:
    """An outline's word ("medium close-up") as a scene's choice ("medium-close-up"), or none."""
    value = words.replace(" ", "-")
    return value if value in values else ""


@transaction.atomic
def brief_from_idea(
    *,
    user: User,
    idea: str,
    title: str = "",
    aspect_ratio: str = "",
    target_seconds: int | None = None,
    reference_image: Any = None,
) -> tuple[Brief, OutlineRequest]:
    """A new brief holding only its idea, and the expansion that will write the rest."""
    idea = idea.strip()
    if not idea:
        raise OutlineRefused("Write the idea first: a few sentences of what happens, and to whom.")
    values: dict[str, Any] = {"target_seconds": target_seconds}
    if aspect_ratio:
        values["aspect_ratio"] = aspect_ratio
    brief = brief_create(
        user=user,
        title=title.strip() or _working_title(idea),
        idea=idea,
        reference_image=reference_image,
        **values,
    )
    return brief, outline_request_start(brief=brief, user=user)


def _working_title(idea: str) -> str:
    words = idea.split()
    title = " ".join(words[:8])
    return (title + ("…" if len(words) > 8 else ""))[:200]


@transaction.atomic
def outline_request_start(*, brief: Brief, user: User | None) -> OutlineRequest:
    Brief.objects.select_for_update().filter(pk=brief.pk).first()
    if brief.scenes.exists():
        raise OutlineRefused("This brief already has scenes: an outline is written for a brief without them.")
    if brief.outline_requests.filter(state__in=[OutlineState.QUEUED, OutlineState.RUNNING]).exists():
        raise OutlineBusy()
    request = OutlineRequest.objects.create(brief=brief, idea=brief.idea, created_by=user)
    from briefs.tasks import expand_outline

    transaction.on_commit(lambda: expand_outline.delay(request.pk))
    return request


def outline_run(*, request_id: int, expander: Expander) -> OutlineRequest:
    """Write the outline and put it into the brief at once; a failure changes nothing but the request."""
    moved = OutlineRequest.objects.filter(pk=request_id, state=OutlineState.QUEUED).update(
        state=OutlineState.RUNNING, expander=expander.name
    )
    request = OutlineRequest.objects.select_related("brief", "scene").get(pk=request_id)
    if not moved:
        return request  # another worker has it, or it ended
    if request.kind == OutlineKind.REFINE:
        return _refine_run(request=request, expander=expander)
    brief = request.brief
    try:
        outline = expander.expand(
            request.idea,
            target_seconds=brief.target_seconds,
            aspect=brief.aspect_ratio if brief.aspect_ratio in OUTLINE_ASPECTS else None,
        )
        with transaction.atomic():
            brief_apply_outline(brief=Brief.objects.select_for_update().get(pk=brief.pk), outline=outline)
            OutlineRequest.objects.filter(pk=request_id).update(
                state=OutlineState.SUCCEEDED, finished_at=timezone.now()
            )
    except (OutlineError, OutlineRefused, CharacterRefused) as exc:
        OutlineRequest.objects.filter(pk=request_id).update(
            state=OutlineState.FAILED, error=str(exc)[:2000], finished_at=timezone.now()
        )
    except Exception:
        log.exception("outline request %s failed", request.uuid)
        OutlineRequest.objects.filter(pk=request_id).update(
            state=OutlineState.FAILED,
            error="The outline could not be written (an internal error, logged for the studio's staff).",
            finished_at=timezone.now(),
        )
    request.refresh_from_db()
    return request


def brief_apply_outline(*, brief: Brief, outline: Outline) -> Brief:
    """An outline's logline, story bible and scenes into a brief that has no scenes yet."""
    if brief.scenes.exists():
        raise OutlineRefused("This brief has scenes by now: the outline was not applied, to keep them.")
    bible = outline.bible
    brief_update(
        brief=brief,
        logline=outline.logline,
        style=bible.style.notes,
        palette=", ".join(bible.style.palette),
        negative_style=", ".join(bible.style.negative),
        setting=bible.setting,
        **cast(
            "dict[str, Any]", {"aspect_ratio": outline.aspect} if outline.aspect in AspectRatio.values else {}
        ),
    )
    known = {c.name.lower() for c in brief.characters.all()}
    for character in bible.characters:
        if character.name.lower() not in known:
            character_create(
                brief=brief,
                name=character.name,
                description=character.description,
                look=character.look,
                prompt_words=", ".join(character.anchors),
            )
    for scene in outline.scenes:
        lighting = ", ".join(part for part in (scene.time_of_day, scene.weather, scene.lighting) if part)
        scene_create(
            brief=brief,
            title=scene.title,
            action=scene.action,
            prompt=scene.prompt,
            characters=list(scene.characters),
            shot_type=_choice(scene.shot, ShotType.values),
            camera_move=_choice(_CAMERA_FROM_OUTLINE.get(scene.camera, scene.camera), CameraMove.values),
            lens=scene.lens,
            lighting=lighting[:200],
            mood=scene.mood[:200],
            duration_s=scene.duration_seconds,
            transition=scene.transition if scene.transition in Transition.values else Transition.CUT,
        )
    brief.refresh_from_db()
    return brief


def outline_requests_left_behind(*, older_than_s: float) -> list[int]:
    """Requests to run again: queued for long (their message was lost), or running for longer than
    any expansion takes (their worker died), which go back to the queue first."""
    cutoff = timezone.now() - timedelta(seconds=older_than_s)
    OutlineRequest.objects.filter(state=OutlineState.RUNNING, created_at__lt=cutoff).update(
        state=OutlineState.QUEUED
    )
    return list(
        OutlineRequest.objects.filter(
            state=OutlineState.QUEUED, created_at__lt=timezone.now() - timedelta(seconds=30)
        ).values_list("pk", flat=True)
    )


# -- refining an outline from a note ---------------------------------------------------
NOTE_MAX_CHARS = 1000
# A scene's choices as the outline's words: the outline's vocabulary is finer ("tilt up") or
# spelled with spaces ("medium close-up"); an "extreme wide" is the outline's "wide".
_SHOT_TO_OUTLINE = {
    "extreme-wide": "wide",
    "medium-close-up": "medium close-up",
    "extreme-close-up": "extreme close-up",
}
_CAMERA_TO_OUTLINE = {
    "tilt": "tilt up",
    "crane": "crane up",
    "zoom": "zoom in",
    "dolly-in": "dolly in",
    "dolly-out": "dolly out",
}


def _words(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _outline_scene(scene: Scene) -> OutlineScene:
    """A brief's scene in the outline's terms. The time of day and the weather lead a scene's
    lighting when an outline wrote it ("night, rain, moonlight"); elsewhere they are unknown."""
    parts = list(_words(scene.lighting))
    time = parts.pop(0) if parts and parts[0] in TIMES_OF_DAY else ""
    weather = parts.pop(0) if parts and parts[0] in WEATHER else ""
    return OutlineScene(
        title=scene.title,
        action=scene.action,
        prompt=scene.prompt,
        shot=_SHOT_TO_OUTLINE.get(scene.shot_type, scene.shot_type),
        camera=_CAMERA_TO_OUTLINE.get(scene.camera_move, scene.camera_move),
        lens=scene.lens,
        lighting=", ".join(parts),
        mood=scene.mood,
        time_of_day=time,
        weather=weather,
        duration_seconds=max(1, round(scene.duration_s)),
        transition=scene.transition,
        characters=tuple(c.name for c in scene.characters.all()),
    )


def outline_of_brief(*, brief: Brief) -> tuple[Outline, list[Scene]]:
    """The brief as an outline (what a refine starts from and is compared with), and its scenes in
    the outline's order. Fields the brief leaves empty stay empty: nothing is made up."""
    scenes = list(brief.scenes.order_by("position", "id").prefetch_related("characters"))
    outline = Outline(
        title=brief.title,
        logline=brief.logline,
        aspect=brief.aspect_ratio,
        bible=OutlineBible(
            characters=tuple(
                OutlineCharacter(
                    name=c.name, description=c.description, look=c.look, anchors=_words(c.prompt_words)
                )
                for c in brief.characters.all()
            ),
            style=OutlineStyle(
                notes=brief.style, palette=_words(brief.palette), negative=_words(brief.negative_style)
            ),
            setting=brief.setting,
        ),
        scenes=tuple(_outline_scene(scene) for scene in scenes),
    )
    return outline, scenes


@transaction.atomic
def outline_refine_start(
    *, brief: Brief, user: User | None, note: str, scene: Scene | None = None
) -> OutlineRequest:
    """A rewrite of one scene (or of the whole outline, with no scene) from a writer's note, run by
    the outline task once this is saved. Refused, with the field it is about, for an empty or long
    note, a scene of another brief, a scene the note contradicts, or while another request of the
    brief is queued or running."""
    note = (note or "").strip()
    if not note:
        raise OutlineRefused("Write a note first: what to change, e.g. 'make scene 3 a night shot'.", "note")
    if len(note) > NOTE_MAX_CHARS:
        raise OutlineRefused(f"The note is {len(note)} characters long; at most {NOTE_MAX_CHARS}.", "note")
    if scene is not None and scene.brief_id != brief.pk:
        raise OutlineRefused("That scene is not in this brief.", "scene")
    Brief.objects.select_for_update().filter(pk=brief.pk).first()
    count = brief.scenes.count()
    if not count:
        raise OutlineRefused("This brief has no scenes yet: write or expand its outline first.")
    named = scene_named_in(note)
    if named is not None and not 0 <= named < count:
        raise OutlineRefused(f"The note names scene {named + 1}, but the brief has {count} scenes.", "note")
    if named is not None and scene is not None:
        position = list(brief.scenes.order_by("position", "id").values_list("pk", flat=True)).index(scene.pk)
        if position != named:
            raise OutlineRefused(
                f"The note names scene {named + 1}, but scene {position + 1} was chosen.", "note"
            )
    if brief.outline_requests.filter(state__in=[OutlineState.QUEUED, OutlineState.RUNNING]).exists():
        raise OutlineBusy()
    request = OutlineRequest.objects.create(
        brief=brief, kind=OutlineKind.REFINE, note=note, scene=scene, created_by=user
    )
    from briefs.tasks import expand_outline

    transaction.on_commit(lambda: expand_outline.delay(request.pk))
    return request


def _refine_run(*, request: OutlineRequest, expander: Expander) -> OutlineRequest:
    """Rewrite from the note, then apply what changed in one transaction, only if the brief is
    still what the expander saw; any failure leaves the brief as it was and says why."""
    brief = request.brief
    try:
        before, scenes = outline_of_brief(brief=brief)
        index = None
        if request.scene_id is not None:
            index = next((i for i, scene in enumerate(scenes) if scene.pk == request.scene_id), None)
            if index is None:
                raise OutlineRefused(
                    "The scene the note was for is no longer in this brief: nothing was changed."
                )
        after = expander.refine(before, request.note, scene_index=index)
        with transaction.atomic():
            locked = Brief.objects.select_for_update().get(pk=brief.pk)
            now, scenes = outline_of_brief(brief=locked)
            if now != before:
                raise OutlineRefused(
                    "The brief changed while the note was being applied, so nothing was changed: "
                    "send the note again."
                )
            summary = brief_apply_refine(brief=locked, before=before, after=after, scenes=scenes)
            OutlineRequest.objects.filter(pk=request.pk).update(
                state=OutlineState.SUCCEEDED, summary="\n".join(summary), finished_at=timezone.now()
            )
    except (OutlineError, OutlineRefused, CharacterRefused) as exc:
        OutlineRequest.objects.filter(pk=request.pk).update(
            state=OutlineState.FAILED, error=str(exc)[:2000], finished_at=timezone.now()
        )
    except Exception:
        log.exception("refine request %s failed", request.uuid)
        OutlineRequest.objects.filter(pk=request.pk).update(
            state=OutlineState.FAILED,
            error="The note could not be applied (an internal error, logged for the studio's staff).",
            finished_at=timezone.now(),
        )
    request.refresh_from_db()
    return request


def _scene_values(before: OutlineScene | None, after: OutlineScene, position: int) -> dict[str, Any]:
    """The scene fields whose outline words moved from `before` to `after` (all of them for a new
    scene), as a scene stores them."""

    def moved(*names: str) -> bool:
        return before is None or any(getattr(before, n) != getattr(after, n) for n in names)

    values: dict[str, Any] = {}
    if moved("title"):
        values["title"] = after.title[:200]
    if moved("action"):
        limit = Scene._meta.get_field("action").max_length or 4000
        if len(after.action) > limit:
            raise OutlineRefused(
                f"Scene {position}'s action would be {len(after.action)} characters long; at most {limit}: "
                "shorten the action or the note."
            )
        values["action"] = after.action
    if moved("prompt"):
        values["prompt"] = after.prompt
    if moved("shot"):
        values["shot_type"] = _choice(after.shot, ShotType.values)
    if moved("camera"):
        values["camera_move"] = _choice(
            _CAMERA_FROM_OUTLINE.get(after.camera, after.camera), CameraMove.values
        )
    if moved("lens"):
        values["lens"] = after.lens[:60]
    if moved("lighting", "time_of_day", "weather"):
        values["lighting"] = ", ".join(p for p in (after.time_of_day, after.weather, after.lighting) if p)[
            :200
        ]
    if moved("mood"):
        values["mood"] = after.mood[:200]
    if moved("duration_seconds"):
        values["duration_s"] = after.duration_seconds
    if moved("transition"):
        values["transition"] = after.transition if after.transition in Transition.values else Transition.CUT
    if moved("characters"):
        values["characters"] = list(after.characters)
    return values


def brief_apply_refine(*, brief: Brief, before: Outline, after: Outline, scenes: list[Scene]) -> list[str]:
    """Put into the brief what a refine changed from `before` (the brief as an outline) to `after`:
    the logline and the story bible, characters matched by name (new ones added), scenes in place by
    position through `scene_update` (so only a scene that changed gets a new version), new scenes
    appended. No scene is ever deleted. Returns what changed, in words. Call inside a transaction."""
    values: dict[str, Any] = {}
    if after.logline != before.logline:
        values["logline"] = after.logline[:300]
    if after.bible.setting != before.bible.setting:
        values["setting"] = after.bible.setting
    if after.bible.style.notes != before.bible.style.notes:
        values["style"] = after.bible.style.notes
    if after.bible.style.palette != before.bible.style.palette:
        values["palette"] = ", ".join(after.bible.style.palette)[:300]
    if after.bible.style.negative != before.bible.style.negative:
        values["negative_style"] = ", ".join(after.bible.style.negative)
    if values:
        brief_update(brief=brief, **values)
    known = {c.name.casefold(): c for c in brief.characters.all()}
    was = {c.name.casefold(): c for c in before.bible.characters}
    for character in after.bible.characters:
        row = known.get(character.name.casefold())
        words: dict[str, Any] = {
            "description": character.description,
            "look": character.look,
            "prompt_words": ", ".join(character.anchors),
        }
        if row is None:
            character_create(brief=brief, name=character.name, **words)
        elif was.get(character.name.casefold()) != character:
            character_update(character=row, **words)
    for i, new in enumerate(after.scenes):
        old = before.scenes[i] if i < len(before.scenes) else None
        if old == new:
            continue
        changed = _scene_values(old, new, i + 1)
        if old is None:
            scene_create(brief=brief, **changed)
        else:
            scene_update(scene=scenes[i], **changed)
    return outline_changes(before, after)

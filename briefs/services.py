"""State changes of briefs and scenes. Every door (editor, API, commands) goes through here."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib.auth.models import AnonymousUser, User
from django.db import IntegrityError, transaction
from django.db.models import F, Max
from django.utils import timezone

from briefs.models import Brief, Character, Scene, Team, UserPreference
from briefs.selectors import team_preferred_for, teams_of

if TYPE_CHECKING:
    # A brief names the template it renders with; the type alone, so briefs imports no generation.
    from generation.models import WorkflowTemplate

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
SCENE_FIELDS = (
    "title",
    "action",
    "prompt",
    "negative_prompt",
    *SHOT_FIELDS,
    "duration_s",
    "transition",
    "seed",
    "input_image",
    "characters",
)
CHARACTER_FIELDS = ("name", "description", "look", "prompt_words", "reference_image")

# Briefs made with no user (commands, scripts) go here; so did staff's team-less briefs
# when teams became required (migration 0004, which keeps its own copy of these names).
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


def brief_update(*, brief: Brief, **values: Any) -> Brief:
    unknown = set(values) - set(BRIEF_FIELDS)
    if unknown:
        raise TypeError(f"brief_update() got unknown fields: {', '.join(sorted(unknown))}")
    if values.get("reference_image") is False:  # a cleared file input
        values["reference_image"] = ""
    bible_changed = any(
        name in BIBLE_FIELDS and getattr(brief, name) != value for name, value in values.items()
    )
    for name, value in values.items():
        setattr(brief, name, value)
    with transaction.atomic():
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
def character_update(*, character: Character, **values: Any) -> Character:
    unknown = set(values) - set(CHARACTER_FIELDS)
    if unknown:
        raise TypeError(f"character_update() got unknown fields: {', '.join(sorted(unknown))}")
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
    **values: Any,
) -> Scene:
    """A scene at `position` (last when left out). `characters` names its cast from the story bible."""
    unknown = set(values) - set(SCENE_FIELDS)
    if unknown:
        raise TypeError(f"scene_create() got unknown fields: {', '.join(sorted(unknown))}")
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


def scene_update(*, scene: Scene, **values: Any) -> Scene:
    """Change a scene; its version goes up when anything that a render uses changed."""
    unknown = set(values) - set(SCENE_FIELDS)
    if unknown:
        raise TypeError(f"scene_update() got unknown fields: {', '.join(sorted(unknown))}")
    image = values.pop("input_image", None)  # None: untouched, False: cleared, else the stored or a new file
    cast = _cast(scene.brief, list(values.pop("characters"))) if "characters" in values else None
    cast_changed = cast is not None and {c.pk for c in cast} != set(
        scene.characters.values_list("pk", flat=True)
    )
    changed = {name: value for name, value in values.items() if getattr(scene, name) != value}
    if image is None:
        image_changed = False
    elif image is False:
        image_changed = bool(scene.input_image)
    else:
        image_changed = image != scene.input_image
    if not changed and not image_changed and not cast_changed:
        return scene
    with transaction.atomic():
        if cast_changed:
            assert cast is not None
            scene.characters.set(cast)
        if image_changed:
            scene.input_image = "" if image is False else image
            # save() rather than update(): a new file must go through the field's storage.
            scene.save(update_fields=["input_image"])
        Scene.objects.filter(pk=scene.pk).update(
            version=F("version") + 1, updated_at=timezone.now(), **changed
        )
    scene.refresh_from_db()
    return scene


@transaction.atomic
def scene_delete(*, scene: Scene) -> None:
    brief_id = scene.brief_id
    # Lock the brief and read the position as stored: the caller's copy may predate
    # another delete in the same brief (the admin deletes several scenes in one save).
    Brief.objects.select_for_update().filter(pk=brief_id).first()
    position = Scene.objects.filter(pk=scene.pk).values_list("position", flat=True).first()
    if position is None:
        return
    scene.delete()
    Scene.objects.filter(brief_id=brief_id, position__gt=position).update(position=F("position") - 1)

"""Scenes as the editor's board reads them in JSON: one shape for every answer that carries a scene."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db.models import DecimalField, Model

from briefs.models import Scene
from briefs.selectors import composed_for
from briefs.services import SCENE_FIELDS


def scene_fields_json(values: dict[str, Any]) -> dict[str, Any]:
    """Scene field values (a scene's, or a form's cleaned data) as JSON: the cast as character uuids,
    decimals as strings with the field's places. The input image is not among them."""
    fields: dict[str, Any] = {}
    for name in SCENE_FIELDS:
        if name == "input_image" or name not in values:
            continue
        value = values[name]
        if name == "characters":
            value = [str(c.uuid) for c in sorted(value, key=lambda c: (c.position, c.pk))]
        elif isinstance(field := Scene._meta.get_field(name), DecimalField) and value is not None:
            value = f"{Decimal(str(value)):.{field.decimal_places}f}"
        elif isinstance(value, Model):
            value = str(value.pk)
        fields[name] = value
    return fields


def scene_values(scene: Scene) -> dict[str, Any]:
    values = {
        name: getattr(scene, name) for name in SCENE_FIELDS if name not in ("characters", "input_image")
    }
    values["characters"] = list(scene.characters.all())
    return values


def shot_summary(scene: Scene) -> str:
    """One line: shot type · camera · duration · transition · who is in it (empty parts left out)."""
    cast = sorted(scene.characters.all(), key=lambda c: (c.position, c.pk))
    parts = [
        scene.get_shot_type_display() if scene.shot_type else "",
        scene.get_camera_move_display() if scene.camera_move else "",
        f"{Decimal(str(scene.duration_s)).normalize():f} s" if scene.duration_s is not None else "",
        scene.get_transition_display(),
        ", ".join(c.name for c in cast),
    ]
    return " · ".join(part for part in parts if part)


def scene_payload(scene: Scene) -> dict[str, Any]:
    composed = composed_for(scene)
    return {
        "uuid": str(scene.uuid),
        "position": scene.position,
        "title": scene.title,
        "version": scene.version,
        "bible_version": scene.brief.bible_version,
        "composed": {"prompt": composed.prompt, "negative_prompt": composed.negative_prompt},
        "shot": shot_summary(scene),
        "fields": scene_fields_json(scene_values(scene)),
    }

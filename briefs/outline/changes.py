"""What a refine changed, in words a writer reads on the page: one line per thing that moved."""

from __future__ import annotations

from briefs.outline.model import Outline, Scene
from briefs.outline.reading import clip

# (field, how the page names it); text fields are said changed, choices are said from → to.
_CHOICES = (
    ("time_of_day", "time of day"),
    ("weather", "weather"),
    ("shot", "shot"),
    ("camera", "camera"),
    ("lens", "lens"),
    ("transition", "transition"),
)
_TEXTS = (("title", "title"), ("lighting", "lighting"), ("mood", "mood"), ("prompt", "prompt"))


def _said(value: str) -> str:
    return repr(clip(value, 60)) if value else "none"


def scene_changes(before: Scene, after: Scene) -> list[str]:
    """What moved in one scene, in the order the editor shows it; empty when nothing did."""
    said = []
    for name, label in _CHOICES:
        old, new = getattr(before, name), getattr(after, name)
        if old != new:
            said.append(f"{label} {old or 'none'} → {new}")
    if before.duration_seconds != after.duration_seconds:
        said.append(f"{before.duration_seconds} s → {after.duration_seconds} s")
    for name, label in _TEXTS:
        old, new = getattr(before, name), getattr(after, name)
        if old != new:
            said.append(f"{label} {_said(new)}" if name != "prompt" else "prompt rewritten")
    if before.action != after.action:
        if after.action.startswith(before.action.rstrip()) and len(after.action) > len(before.action):
            said.append(f"added to the action: {_said(after.action[len(before.action.rstrip()) :].strip())}")
        else:
            said.append("action rewritten")
    if before.characters != after.characters:
        said.append("in the shot: " + (", ".join(after.characters) or "no one"))
    return said


def outline_changes(before: Outline, after: Outline) -> list[str]:
    """Every change from `before` to `after`, scene by scene by position; a scene `before` has and
    `after` lacks is said to stay as it was (a refine never deletes a scene)."""
    said = []
    if before.logline != after.logline:
        said.append(f"Logline: {_said(after.logline)}.")
    if before.bible.setting != after.bible.setting:
        said.append(f"Setting: {_said(after.bible.setting)}.")
    if before.bible.style != after.bible.style:
        said.append("Style notes, palette or never-show terms changed.")
    known = {c.name.casefold(): c for c in before.bible.characters}
    for character in after.bible.characters:
        was = known.get(character.name.casefold())
        if was is None:
            said.append(f"New character: {character.name}.")
        elif was != character:
            said.append(f"{character.name} changed.")
    for i, (old, new) in enumerate(zip(before.scenes, after.scenes, strict=False)):
        changed = scene_changes(old, new)
        if changed:
            said.append(f"Scene {i + 1}: " + "; ".join(changed) + ".")
    if len(after.scenes) > len(before.scenes):
        added = range(len(before.scenes) + 1, len(after.scenes) + 1)
        said.append("New scenes: " + ", ".join(str(n) for n in added) + ".")
    if len(after.scenes) < len(before.scenes):
        first, last = len(after.scenes) + 1, len(before.scenes)
        which = (
            f"Scene {first} stays as it was"
            if first == last
            else f"Scenes {first} to {last} stay as they were"
        )
        said.append(f"{which}: the new outline has {len(after.scenes)} scenes.")
    return said or ["Nothing changed: the scenes already were as the note asks."]

"""What the storyboard shows of each scene, shared by the editor page and its fragments."""

from dataclasses import dataclass, field
from typing import Any

from django import forms
from django.urls import reverse

from briefs.composition import ComposedPrompt
from briefs.forms import SceneForm
from briefs.models import Brief, Scene
from briefs.selectors import composed_for
from generation.events import job_payload
from generation.models import RenderJob
from generation.selectors import latest_frame_per_scene, latest_job_per_scene
from generation.takes import Take, takes_per_scene

# The scene form in three groups, in the order a writer fills them in; fields not named here
# (a template's own parameters) go to the last group.
FIELD_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Story", ("title", "action", "prompt", "negative_prompt", "characters")),
    ("Shot", ("shot_type", "camera_move", "lens", "lighting", "mood", "duration_s", "transition")),
    ("Render", ()),
)


@dataclass
class Card:
    scene: Scene
    form: SceneForm
    composed: ComposedPrompt
    job: RenderJob | None
    live: dict[str, Any] | None
    frame_url: str | None
    frame_kind: str
    takes: list[Take] = field(default_factory=list)
    groups: list[tuple[str, list[forms.BoundField]]] = field(default_factory=list)


def grouped_fields(form: forms.BaseForm) -> list[tuple[str, list[forms.BoundField]]]:
    named = {name for _, names in FIELD_GROUPS for name in names}
    groups = []
    for label, names in FIELD_GROUPS:
        fields = [form[name] for name in names if name in form.fields] if names else []
        if not names:
            fields = [form[name] for name in form.fields if name not in named]
        if fields:
            groups.append((label, fields))
    return groups


def scene_cards(
    brief: Brief, *, only: Scene | None = None, bound: tuple[int, SceneForm] | None = None
) -> list[Card]:
    """The cards of a brief in story order (or the one card of `only`), with their newest job and
    newest frame: a scene whose new render failed still shows the frame it had."""
    latest = latest_job_per_scene(brief)
    frames = latest_frame_per_scene(brief)
    takes = takes_per_scene(brief, only=only)
    scenes = brief.scenes.order_by("position").prefetch_related("characters").select_related("brief")
    if only is not None:
        scenes = scenes.filter(pk=only.pk)
    cards = []
    for scene in scenes:
        form = (
            bound[1]
            if bound and bound[0] == scene.pk
            else SceneForm(instance=scene, prefix=f"s{scene.pk}", brief=brief)
        )
        job = latest.get(scene.pk)
        artifact = frames.get(scene.pk)
        card = Card(
            scene=scene,
            form=form,
            composed=composed_for(scene),
            job=job,
            live=job_payload(job) if job else None,
            frame_url=reverse("briefs:artifact", args=[artifact[0]]) if artifact else None,
            frame_kind=artifact[1] if artifact else "",
            takes=takes.get(scene.pk, []),
        )
        card.groups = grouped_fields(form)
        cards.append(card)
    return cards


def progress_of(cards: list[Card]) -> tuple[int, int]:
    """Scenes with a frame, of all scenes: the board's "3 of 5 rendered"."""
    return sum(1 for card in cards if card.frame_url), len(cards)

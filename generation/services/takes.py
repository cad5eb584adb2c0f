"""Takes: render a scene again from one of its takes, or put a take's scene text back."""

from __future__ import annotations

import random
from decimal import Decimal

from django.contrib.auth.models import AnonymousUser, User

from briefs import services as brief_services
from briefs.models import Scene
from generation.models import JobState, RenderJob
from generation.services.jobs import MAX_SEED, SNAPSHOT_FIELDS, RenderRefused, render_job_submit


class TakeRefused(Exception):
    """A take that cannot be used as asked; the message says why."""


def _checked(take: RenderJob) -> RenderJob:
    if take.state != JobState.SUCCEEDED:
        raise TakeRefused(f"Only a finished render is a take; that one is {take.state}.")
    return take


def take_render_again(*, take: RenderJob, user: User | AnonymousUser | None, same_seed: bool) -> RenderJob:
    """Render the take's scene as it is now: with the take's seed, or with a new random one.

    Asked for deliberately, so it is queued even while the same version is still rendering.
    """
    _checked(take)
    recorded = take.params.get("seed")
    if same_seed and not isinstance(recorded, int):
        raise TakeRefused("This take recorded no seed; render it with a new seed instead.")
    seed = recorded if same_seed else random.randrange(MAX_SEED)
    scene = Scene.all_objects.select_related("brief").get(pk=take.scene_id)
    if scene.deleted_at is not None:
        raise RenderRefused(f"Scene {scene.position} ({scene.title}) has been deleted; restore it first.")
    return render_job_submit(scene=scene, user=user, again=True, seed=seed)


def take_restore(*, take: RenderJob) -> Scene:
    """Put the scene text and shot the take was rendered from back on its scene (a new version).

    Takes rendered before jobs kept that text have nothing to put back and are refused.
    """
    _checked(take)
    recorded = take.params.get("scene_fields")
    if not isinstance(recorded, dict):
        raise TakeRefused(
            "This take was rendered before takes kept their scene's text; there is nothing to restore."
        )
    values = {name: recorded[name] for name in SNAPSHOT_FIELDS if name in recorded}
    if "duration_s" in values:
        values["duration_s"] = Decimal(str(values["duration_s"]))
    scene = Scene.all_objects.select_related("brief").get(pk=take.scene_id)
    return brief_services.scene_update(scene=scene, **values)

"""Which output a scene's card shows: the newest successful render's first picture or clip, a sound
only when that render made nothing else; and the card draws a clip as a player, not a picture."""

from __future__ import annotations

import pytest
from django.test import Client

from generation.models import Artifact, RenderJob
from generation.selectors import latest_frame_per_scene
from tests.unit.test_takes import _take


def _kinds(job: RenderJob, *kinds: str) -> None:
    """Make the job's outputs these kinds, in this order (the first stays the stored PNG)."""
    first = job.artifacts.get()
    first.kind, first.content_type = (
        kinds[0],
        {"image": "image/png", "video": "video/mp4", "audio": "audio/flac"}[kinds[0]],
    )
    first.save()
    for number, kind in enumerate(kinds[1:], start=1):
        Artifact.objects.create(
            job=job,
            attempt=first.attempt,
            storage_name=f"{first.storage_name}.{number}",
            content_type={"image": "image/png", "video": "video/mp4", "audio": "audio/flac"}[kind],
            kind=kind,
            size_bytes=first.size_bytes,
            sha256=first.sha256,
        )


@pytest.mark.django_db
def test_a_render_of_sound_then_clip_shows_the_clip_and_an_older_take_is_not_looked_at(
    brief, template, backend, staff_user
):
    scene = brief.scenes.get(position=1)
    older = _take(scene, staff_user, backend)
    newer = _take(scene, staff_user, backend)
    _kinds(newer, "audio", "video")
    uuid, kind = latest_frame_per_scene(brief)[scene.pk]
    assert kind == "video"
    assert uuid == newer.artifacts.get(kind="video").uuid
    assert uuid not in {a.uuid for a in older.artifacts.all()}


@pytest.mark.django_db
def test_a_render_of_sound_alone_shows_the_sound(brief, template, backend, staff_user):
    scene = brief.scenes.get(position=1)
    _kinds(_take(scene, staff_user, backend), "audio")
    assert latest_frame_per_scene(brief)[scene.pk][1] == "audio"


@pytest.mark.django_db
def test_the_card_draws_a_clip_as_a_player(brief, template, backend, staff_user):
    scene = brief.scenes.get(position=1)
    _kinds(_take(scene, staff_user, backend), "video")
    client = Client()
    client.force_login(staff_user)
    page = client.get(f"/scenes/{scene.uuid}/card/").content.decode()
    assert '<video src="/artifacts/' in page and 'data-kind="video"' in page

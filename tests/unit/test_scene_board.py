"""The storyboard board's JSON doors: autosave with conflicts, reorder, duplicate, delete with undo,
the duplicate-render guard, and the live events that tell a brief's other windows."""

from __future__ import annotations

import io
import threading
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.files.base import ContentFile
from django.db import connection
from django.test import Client
from django.utils import timezone
from PIL import Image

from briefs import services as brief_services
from briefs.models import Brief, Scene
from briefs.tasks import purge_deleted_scenes
from generation import services
from generation.events import brief_group
from generation.models import JobState, RenderJob

JSON = {"HTTP_ACCEPT": "application/json"}


@pytest.fixture
def client(staff_user) -> Client:
    client = Client()
    client.force_login(staff_user)
    return client


def _form(scene: Scene, **changes: Any) -> dict[str, Any]:
    """The scene's card as the editor posts it: every field, prefixed, with some changed."""
    values: dict[str, Any] = {
        "title": scene.title,
        "action": scene.action,
        "prompt": scene.prompt,
        "negative_prompt": scene.negative_prompt,
        "characters": [c.pk for c in scene.characters.all()],
        "shot_type": scene.shot_type,
        "camera_move": scene.camera_move,
        "lens": scene.lens,
        "lighting": scene.lighting,
        "mood": scene.mood,
        "duration_s": str(scene.duration_s),
        "transition": scene.transition,
        "seed": "" if scene.seed is None else str(scene.seed),
    }
    values.update(changes)
    return {f"s{scene.pk}-{name}": value for name, value in values.items()}


def _save(client: Client, scene: Scene, *, base_version: Any, json: bool = True, **changes: Any) -> Any:
    data = _form(scene, **changes)
    if base_version is not None:
        data["base_version"] = str(base_version)
    return client.post(f"/scenes/{scene.uuid}/", data, **(JSON if json else {}))


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 40, 40)).save(buffer, "PNG")
    return buffer.getvalue()


def _titles(brief: Brief) -> list[str]:
    return list(brief.scenes.order_by("position").values_list("title", flat=True))


# -- autosave ------------------------------------------------------------------------
def test_an_autosave_answers_the_scene_as_saved(client, brief):
    mara = brief_services.character_create(brief=brief, name="Mara", look="red scarf")
    scene = brief.scenes.get(position=1)
    response = _save(
        client,
        scene,
        base_version=1,
        prompt="the ferry slips its moorings",
        characters=[mara.pk],
        shot_type="wide",
        camera_move="pan",
        duration_s="4.5",
    )
    assert response.status_code == 200, response.content
    payload = response.json()["scene"]
    assert payload["uuid"] == str(scene.uuid)
    assert payload["position"] == 1
    assert payload["title"] == "Harbour"
    assert payload["version"] == 2
    assert payload["bible_version"] == Brief.objects.get(pk=brief.pk).bible_version
    assert payload["composed"]["prompt"].startswith("wide shot")
    assert "the ferry slips its moorings" in payload["composed"]["prompt"]
    assert "Mara" in payload["composed"]["prompt"]
    assert payload["shot"] == "Wide · Pan · 4.5 s · Cut · Mara"
    assert payload["fields"]["characters"] == [str(mara.uuid)]
    assert payload["fields"]["duration_s"] == "4.50"
    assert payload["fields"]["seed"] is None
    assert "input_image" not in payload["fields"]
    assert set(payload["fields"]) == set(brief_services.SCENE_FIELDS) - {"input_image"}
    assert Scene.objects.get(pk=scene.pk).prompt == "the ferry slips its moorings"


def test_an_autosave_of_nothing_new_keeps_the_version(client, brief):
    scene = brief.scenes.get(position=1)
    response = _save(client, scene, base_version=1)
    assert response.status_code == 200
    assert response.json()["scene"]["version"] == 1


def test_an_invalid_autosave_names_each_field_without_its_prefix_and_saves_nothing(client, brief):
    scene = brief.scenes.get(position=1)
    response = _save(client, scene, base_version=1, prompt="  ", duration_s="900")
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert errors["prompt"] == ["Describe what the frame shows; a scene needs a prompt to render."]
    assert errors["duration_s"] == ["A shot holds between 0.1 and 600 seconds."]
    stored = Scene.objects.get(pk=scene.pk)
    assert (stored.prompt, stored.version) == ("a ferry leaving a foggy harbour", 1)


@pytest.mark.parametrize("base_version", [None, "", "two"])
def test_an_autosave_without_a_usable_base_version_is_refused(client, brief, base_version):
    scene = brief.scenes.get(position=1)
    response = _save(client, scene, base_version=base_version, prompt="changed")
    assert response.status_code == 400
    [message] = response.json()["errors"]["base_version"]
    assert "base_version" in message
    assert Scene.objects.get(pk=scene.pk).prompt == "a ferry leaving a foggy harbour"


def test_a_save_from_an_older_version_that_differs_is_refused_with_both_versions(client, brief):
    scene = brief.scenes.get(position=1)
    # Another window saved first: version 2, a new prompt.
    brief_services.scene_update(scene=scene, prompt="their prompt")
    response = _save(client, scene, base_version=1, prompt="my prompt", mood="eerie")
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "conflict"
    assert body["error"] == (
        "Someone saved this scene while you were editing (version 2). "
        "Both versions are shown; keep yours or take theirs."
    )
    assert body["theirs"]["version"] == 2
    assert body["theirs"]["fields"]["prompt"] == "their prompt"
    assert body["yours"]["fields"]["prompt"] == "my prompt"
    assert body["yours"]["fields"]["mood"] == "eerie"
    assert body["differs"] == ["prompt", "mood"]
    stored = Scene.objects.get(pk=scene.pk)
    assert (stored.prompt, stored.mood, stored.version) == ("their prompt", "", 2)


def test_a_save_from_an_older_version_that_matches_what_is_stored_goes_through(client, brief):
    scene = brief.scenes.get(position=1)
    brief_services.scene_update(scene=scene, prompt="the same words")
    response = _save(client, scene, base_version=1, prompt="the same words")
    assert response.status_code == 200
    assert response.json()["scene"]["version"] == 2


def test_overwrite_saves_over_a_newer_version(client, brief):
    scene = brief.scenes.get(position=1)
    brief_services.scene_update(scene=scene, prompt="their prompt")
    data = _form(scene, prompt="my prompt")
    data.update(base_version="1", overwrite="1")
    response = client.post(f"/scenes/{scene.uuid}/", data, **JSON)
    assert response.status_code == 200
    assert response.json()["scene"]["version"] == 3
    assert Scene.objects.get(pk=scene.pk).prompt == "my prompt"


def test_the_page_without_scripts_still_saves_and_redirects(client, brief):
    scene = brief.scenes.get(position=1)
    response = _save(client, scene, base_version=None, json=False, prompt="plain form")
    assert response.status_code == 302
    assert response["Location"].endswith(f"#scene-{scene.uuid}")
    assert Scene.objects.get(pk=scene.pk).prompt == "plain form"


def test_the_page_without_scripts_is_told_of_a_conflict_and_loses_nothing(client, brief):
    scene = brief.scenes.get(position=1)
    brief_services.scene_update(scene=scene, prompt="their prompt")
    response = _save(client, scene, base_version=1, json=False, prompt="my prompt")
    assert response.status_code == 302
    page = client.get(response["Location"])
    assert "Someone saved this scene while you were editing (version 2)" in page.content.decode()
    assert Scene.objects.get(pk=scene.pk).prompt == "their prompt"


# -- reorder ---------------------------------------------------------------------------
@pytest.fixture
def four(brief):
    for title in ("Cabin", "Dawn"):
        brief_services.scene_create(brief=brief, title=title, prompt=title.lower())
    return brief


@pytest.mark.parametrize(
    ("position", "titles"),
    [
        ("1", ["Dawn", "Harbour", "Deck", "Cabin"]),
        ("3", ["Harbour", "Deck", "Dawn", "Cabin"]),
        ("99", ["Harbour", "Deck", "Cabin", "Dawn"]),
        ("0", ["Dawn", "Harbour", "Deck", "Cabin"]),
        ("-4", ["Dawn", "Harbour", "Deck", "Cabin"]),
    ],
)
def test_a_move_renumbers_the_brief_and_answers_the_order(client, four, position, titles):
    dawn = four.scenes.get(title="Dawn")
    response = client.post(f"/scenes/{dawn.uuid}/move/", {"position": position}, **JSON)
    assert response.status_code == 200
    assert _titles(four) == titles
    expected = [{"uuid": str(s.uuid), "position": s.position} for s in four.scenes.order_by("position")]
    assert response.json() == {"order": expected}
    assert [item["position"] for item in expected] == [1, 2, 3, 4]
    # The order is not part of what a render sends: no new version.
    assert Scene.objects.get(pk=dawn.pk).version == 1


@pytest.mark.parametrize("position", ["", "second", "2.5"])
def test_a_move_to_no_position_is_refused_and_moves_nothing(client, four, position):
    dawn = four.scenes.get(title="Dawn")
    response = client.post(f"/scenes/{dawn.uuid}/move/", {"position": position}, **JSON)
    assert response.status_code == 400
    [message] = response.json()["errors"]["position"]
    assert "whole number" in message
    assert _titles(four) == ["Harbour", "Deck", "Cabin", "Dawn"]


def test_a_move_without_scripts_redirects_with_a_message(client, four):
    dawn = four.scenes.get(title="Dawn")
    response = client.post(f"/scenes/{dawn.uuid}/move/", {"position": "2"})
    assert response.status_code == 302
    assert "Scene moved to position 2." in client.get(response["Location"]).content.decode()
    assert _titles(four) == ["Harbour", "Dawn", "Deck", "Cabin"]


# -- duplicate ---------------------------------------------------------------------------
def test_a_duplicate_is_a_full_copy_right_after_the_original(client, brief):
    mara = brief_services.character_create(brief=brief, name="Mara", look="red scarf")
    harbour = brief.scenes.get(position=1)
    brief_services.scene_update(
        scene=harbour,
        characters=[mara],
        seed=77,
        mood="hushed",
        input_image=ContentFile(_png(), name="harbour.png"),
    )
    harbour.refresh_from_db()
    response = client.post(f"/scenes/{harbour.uuid}/duplicate/", **JSON)
    assert response.status_code == 201
    body = response.json()
    copy = Scene.objects.get(uuid=body["scene"]["uuid"])
    assert _titles(brief) == ["Harbour", "Harbour (copy)", "Deck"]
    assert body["order"] == [
        {"uuid": str(s.uuid), "position": s.position} for s in brief.scenes.order_by("position")
    ]
    assert body["scene"]["position"] == 2
    assert body["scene"]["version"] == 1
    for name in brief_services.SCENE_FIELDS:
        if name not in ("title", "characters", "input_image"):
            assert getattr(copy, name) == getattr(harbour, name), name
    assert list(copy.characters.all()) == [mara]
    assert copy.seed == 77
    # The same stored file: nothing deletes scene images, so neither loses it.
    assert copy.input_image.name == harbour.input_image.name
    assert copy.input_image.read() == _png()


def test_a_duplicate_title_stays_within_its_length(client, brief):
    harbour = brief.scenes.get(position=1)
    brief_services.scene_update(scene=harbour, title="x" * 200)
    response = client.post(f"/scenes/{harbour.uuid}/duplicate/", **JSON)
    title = response.json()["scene"]["title"]
    assert len(title) == 200
    assert title.endswith("x (copy)")


# -- delete and undo -----------------------------------------------------------------------
def test_a_deleted_scene_leaves_the_brief_and_its_open_render_is_cancelled(
    client, brief, template, backend, staff_user
):
    harbour = brief.scenes.get(position=1)
    job = services.render_job_submit(scene=harbour, user=staff_user)
    response = client.post(f"/scenes/{harbour.uuid}/delete/", **JSON)
    assert response.status_code == 200
    assert response.json() == {
        "deleted": {"uuid": str(harbour.uuid), "position": 1, "title": "Harbour"},
        "undo_url": f"/scenes/{harbour.uuid}/restore/",
    }
    assert _titles(brief) == ["Deck"]
    assert brief.scenes.get().position == 1
    assert not Scene.objects.filter(pk=harbour.pk).exists()
    job.refresh_from_db()
    assert job.state == JobState.CANCELLED  # kept, not cascaded away
    # Render all no longer sees it.
    _, jobs = services.render_brief_submit(brief=brief, user=staff_user)
    assert [j.scene.title for j in jobs] == ["Deck"]


def test_the_api_does_not_list_a_deleted_scene(api_client, brief):
    brief_services.scene_delete(scene=brief.scenes.get(position=1))
    response = api_client.get(f"/api/v1/briefs/{brief.uuid}/")
    assert response.status_code == 200
    assert [s["title"] for s in response.json()["scenes"]] == ["Deck"]


def test_a_restored_scene_comes_back_at_its_place_with_its_renders(
    client, four, template, backend, staff_user
):
    deck = four.scenes.get(title="Deck")
    job = services.render_job_submit(scene=deck, user=staff_user)
    client.post(f"/scenes/{deck.uuid}/delete/", **JSON)
    assert _titles(four) == ["Harbour", "Cabin", "Dawn"]
    response = client.post(f"/scenes/{deck.uuid}/restore/", **JSON)
    assert response.status_code == 200
    body = response.json()
    assert _titles(four) == ["Harbour", "Deck", "Cabin", "Dawn"]
    assert body["scene"]["uuid"] == str(deck.uuid)
    assert body["scene"]["position"] == 2
    assert body["order"] == [
        {"uuid": str(s.uuid), "position": s.position} for s in four.scenes.order_by("position")
    ]
    assert RenderJob.objects.filter(pk=job.pk, scene=deck).exists()


def test_a_restore_is_clamped_to_the_scenes_left(client, four):
    dawn = four.scenes.get(title="Dawn")
    client.post(f"/scenes/{dawn.uuid}/delete/", **JSON)
    for title in ("Cabin", "Deck"):
        client.post(f"/scenes/{four.scenes.get(title=title).uuid}/delete/", **JSON)
    response = client.post(f"/scenes/{dawn.uuid}/restore/", **JSON)
    assert response.json()["scene"]["position"] == 2
    assert _titles(four) == ["Harbour", "Dawn"]


def test_a_restore_after_the_undo_window_is_refused(client, brief, settings):
    settings.SCENE_UNDO_KEEP_S = 60
    harbour = brief.scenes.get(position=1)
    client.post(f"/scenes/{harbour.uuid}/delete/", **JSON)
    Scene.all_objects.filter(pk=harbour.pk).update(deleted_at=timezone.now() - timedelta(seconds=61))
    response = client.post(f"/scenes/{harbour.uuid}/restore/", **JSON)
    assert response.status_code == 409
    assert response.json() == {
        "code": "not-restorable",
        "error": "“Harbour” was deleted more than 1 minute ago; it can no longer be restored.",
    }
    assert _titles(brief) == ["Deck"]


def test_restoring_a_scene_that_is_not_deleted_says_so(client, brief):
    deck = brief.scenes.get(position=2)
    response = client.post(f"/scenes/{deck.uuid}/restore/", **JSON)
    assert response.status_code == 409
    assert response.json()["error"] == "Scene 2 (Deck) is not deleted; there is nothing to restore."


def test_another_teams_deleted_scene_is_unknown(brief, writer):
    harbour = brief.scenes.get(position=1)
    brief_services.scene_delete(scene=harbour)
    outsider = Client()
    outsider.force_login(writer)
    assert outsider.post(f"/scenes/{harbour.uuid}/restore/", **JSON).status_code == 404
    assert Scene.all_objects.get(pk=harbour.pk).deleted_at is not None


def test_beat_purges_scenes_past_the_undo_window_only(brief, template, backend, staff_user, settings):
    settings.SCENE_UNDO_KEEP_S = 3600
    harbour, deck = brief.scenes.order_by("position")
    job = services.render_job_submit(scene=harbour, user=staff_user)
    services.scene_delete_with_renders(scene=harbour)
    services.scene_delete_with_renders(scene=deck)
    Scene.all_objects.filter(pk=harbour.pk).update(deleted_at=timezone.now() - timedelta(hours=2))
    purge_deleted_scenes()
    assert not Scene.all_objects.filter(pk=harbour.pk).exists()
    assert not RenderJob.objects.filter(pk=job.pk).exists()
    assert Scene.all_objects.filter(pk=deck.pk).exists()


def test_a_delete_without_scripts_redirects_with_a_message(client, brief):
    harbour = brief.scenes.get(position=1)
    response = client.post(f"/scenes/{harbour.uuid}/delete/")
    assert response.status_code == 302
    assert "Scene 1 (Harbour) deleted." in client.get(response["Location"]).content.decode()


# -- the duplicate-render guard --------------------------------------------------------------
def test_a_second_render_of_an_unchanged_scene_asks_first(client, brief, template, backend):
    deck = brief.scenes.get(position=2)
    first = client.post(f"/scenes/{deck.uuid}/render/", **JSON)
    assert first.status_code == 202
    second = client.post(f"/scenes/{deck.uuid}/render/", **JSON)
    assert second.status_code == 409
    body = second.json()
    assert body["code"] == "already-rendering"
    assert body["error"].startswith("Scene 2 is already rendering this version (queued ")
    assert body["error"].endswith(" s ago). Render it again anyway?")
    assert body["job"] == first.json()["job"]
    assert RenderJob.objects.filter(scene=deck).count() == 1
    again = client.post(f"/scenes/{deck.uuid}/render/", {"again": "1"}, **JSON)
    assert again.status_code == 202
    assert RenderJob.objects.filter(scene=deck).count() == 2


def test_a_render_after_an_edit_or_a_finished_render_is_not_asked(
    client, brief, template, backend, staff_user
):
    deck = brief.scenes.get(position=2)
    job = services.render_job_submit(scene=deck, user=staff_user)
    brief_services.scene_update(scene=deck, mood="tense")
    assert client.post(f"/scenes/{deck.uuid}/render/", **JSON).status_code == 202
    # A change to the story bible is a change too.
    brief_services.brief_update(brief=brief, palette="teal and amber")
    assert client.post(f"/scenes/{deck.uuid}/render/", **JSON).status_code == 202
    for open_job in RenderJob.objects.filter(scene=deck).exclude(pk=job.pk):
        services.render_job_cancel(job=open_job)
    assert client.post(f"/scenes/{deck.uuid}/render/", **JSON).status_code == 202


def test_a_second_render_without_scripts_redirects_with_the_question(client, brief, template, backend):
    deck = brief.scenes.get(position=2)
    client.post(f"/scenes/{deck.uuid}/render/")
    response = client.post(f"/scenes/{deck.uuid}/render/")
    assert response.status_code == 302
    assert "Scene 2 is already rendering this version" in client.get(response["Location"]).content.decode()
    assert RenderJob.objects.filter(scene=deck).count() == 1


def test_the_api_renders_again_as_before(api_client, brief, template, backend):
    deck = brief.scenes.get(position=2)
    for _ in range(2):
        assert api_client.post(f"/api/v1/scenes/{deck.uuid}/renders/", {}, format="json").status_code == 202
    assert RenderJob.objects.filter(scene=deck).count() == 2


def test_render_all_asks_about_scenes_still_rendering_unchanged(client, four, template, backend, staff_user):
    harbour, deck = four.scenes.order_by("position")[:2]
    for scene in (harbour, deck):
        services.render_job_submit(scene=scene, user=staff_user)
    response = client.post(f"/briefs/{four.uuid}/render/", **JSON)
    assert response.status_code == 409
    assert response.json() == {
        "code": "already-rendering",
        "error": "2 of 4 scenes are already rendering unchanged. Render only the others, or all of them again?",
        "scenes": [str(harbour.uuid), str(deck.uuid)],
    }
    assert RenderJob.objects.count() == 2

    skipped = client.post(f"/briefs/{four.uuid}/render/", {"open": "skip"}, **JSON)
    assert skipped.status_code == 202
    assert [job["scene"] for job in skipped.json()["jobs"]] == [
        str(s.uuid) for s in four.scenes.filter(title__in=["Cabin", "Dawn"]).order_by("position")
    ]
    every = client.post(f"/briefs/{four.uuid}/render/", {"open": "again"}, **JSON)
    assert every.status_code == 202
    assert len(every.json()["jobs"]) == 4
    assert RenderJob.objects.count() == 8


def test_render_all_skipping_everything_queues_nothing(client, brief, template, backend, staff_user):
    services.render_brief_submit(brief=brief, user=staff_user)
    response = client.post(f"/briefs/{brief.uuid}/render/", {"open": "skip"}, **JSON)
    assert response.status_code == 409
    assert response.json() == {"error": "Every scene is already rendering unchanged; nothing new to queue."}
    assert RenderJob.objects.count() == 2


def test_render_all_with_an_unknown_choice_is_refused(client, brief, template, backend):
    response = client.post(f"/briefs/{brief.uuid}/render/", {"open": "maybe"}, **JSON)
    assert response.status_code == 400
    assert response.json() == {"errors": {"open": ["open must be one of ask, skip, again, not “maybe”."]}}
    assert RenderJob.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_three_clicks_at_once_queue_one_render(brief, template, backend, staff_user):
    """Real threads, each on its own connection: the scene's row lock (SQLite: the write lock
    IMMEDIATE transactions take) makes them check one after another."""
    deck = brief.scenes.get(position=2)
    start = threading.Barrier(3)
    outcomes: list[str] = []

    def click() -> None:
        try:
            start.wait()
            services.render_job_submit(scene=Scene.objects.get(pk=deck.pk), user=staff_user)
            outcomes.append("queued")
        except services.RenderAlreadyOpen:
            outcomes.append("asked")
        finally:
            connection.close()

    threads = [threading.Thread(target=click) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(outcomes) == ["asked", "asked", "queued"]
    assert RenderJob.objects.filter(scene=deck).count() == 1


# -- other windows ---------------------------------------------------------------------------
def _listen(brief: Brief) -> tuple[Any, str]:
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(brief_group(brief.uuid), channel)
    return layer, channel


def _event(layer: Any, channel: str) -> dict[str, Any]:
    return async_to_sync(layer.receive)(channel)["message"]


def test_every_board_change_reaches_the_briefs_other_windows_numbered(
    client, brief, django_capture_on_commit_callbacks
):
    layer, channel = _listen(brief)
    harbour = brief.scenes.get(position=1)
    seq = Brief.objects.get(pk=brief.pk).event_seq
    with django_capture_on_commit_callbacks(execute=True):
        _save(client, harbour, base_version=1, prompt="a new prompt")
        client.post(f"/scenes/{harbour.uuid}/move/", {"position": "2"}, **JSON)
        copy_uuid = client.post(f"/scenes/{harbour.uuid}/duplicate/", **JSON).json()["scene"]["uuid"]
        client.post(f"/scenes/{harbour.uuid}/delete/", **JSON)
        client.post(f"/scenes/{harbour.uuid}/restore/", **JSON)
    received = [_event(layer, channel) for _ in range(5)]
    assert [m["type"] for m in received] == ["scene.changed"] * 5
    assert [m["seq"] for m in received] == list(range(seq + 1, seq + 6))
    assert {m["brief"] for m in received} == {str(brief.uuid)}
    assert [m["data"] for m in received] == [
        {"scene": str(harbour.uuid), "action": "updated", "version": 2},
        {"scene": str(harbour.uuid), "action": "moved", "version": 2},
        {"scene": copy_uuid, "action": "duplicated", "version": 1},
        {"scene": str(harbour.uuid), "action": "deleted", "version": 2},
        {"scene": str(harbour.uuid), "action": "restored", "version": 2},
    ]


def test_a_save_that_changes_nothing_tells_nobody(client, brief):
    seq = Brief.objects.get(pk=brief.pk).event_seq
    _save(client, brief.scenes.get(position=1), base_version=1)
    assert Brief.objects.get(pk=brief.pk).event_seq == seq


def test_a_scene_deleted_in_the_admin_can_be_restored_and_its_render_is_cancelled(
    admin_client, client, brief, template, backend, staff_user
):
    harbour = brief.scenes.get(position=1)
    job = services.render_job_submit(scene=harbour, user=staff_user)
    response = admin_client.post(f"/admin/briefs/scene/{harbour.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert _titles(brief) == ["Deck"]
    job.refresh_from_db()
    assert job.state == JobState.CANCELLED
    assert client.post(f"/scenes/{harbour.uuid}/restore/", **JSON).status_code == 200
    assert _titles(brief) == ["Harbour", "Deck"]

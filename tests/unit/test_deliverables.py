"""Deliverables through the service, the task's entry point and the doors: finals resolved (or
reported), files swapped in only when whole, failures that say why, downloads for the team only."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from datetime import timedelta
from typing import Any

import av
import pytest
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.test import Client
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from briefs.models import Brief, Scene, Team
from briefs.services import brief_create
from generation import services
from generation.deliverables.plan import frame_size
from generation.models import (
    Attempt,
    AttemptState,
    Deliverable,
    DeliverableState,
    JobState,
    RenderJob,
)
from generation.tasks import build_deliverable, sweep_deliverables
from tests.artifacts import png_bytes, stored_png

pytestmark = pytest.mark.django_db

COLOURS = [(220, 40, 40), (40, 200, 60), (40, 60, 220)]


def take(scene: Scene, backend: Any, colour: tuple[int, int, int], *, final: bool = True) -> RenderJob:
    """A successful render of the scene with one stored frame; picked as its final when asked."""
    job = services.render_job_submit(scene=scene, user=None, again=True)
    attempt = Attempt.objects.create(job=job, number=1, backend=backend, state=AttemptState.SUCCEEDED)
    stored_png(job, attempt, size=(64, 36), colour=colour)
    assert services.job_transition(job.pk, from_states={JobState.QUEUED}, to_state=JobState.SUCCEEDED)
    if final:
        Scene.objects.filter(pk=scene.pk).update(final=job)
    return job


@pytest.fixture
def team_users(db):
    users = get_user_model()
    member = users.objects.create_user("member")
    outsider = users.objects.create_user("outsider")
    Team.objects.create(name="Harbour films").members.add(member)
    Team.objects.create(name="Other films").members.add(outsider)
    return member, outsider


@pytest.fixture
def three(team_users, template, backend) -> Brief:
    member, _ = team_users
    return brief_create(
        user=member,
        title="Night ferry",
        scenes=[
            {"title": "Harbour", "prompt": "a ferry in fog", "duration_s": "1"},
            {"title": "Deck", "prompt": "two strangers", "duration_s": "0.5", "transition": "dissolve"},
            {"title": "Dawn", "prompt": "first light", "duration_s": "1.25"},
        ],
    )


def scenes_of(brief: Brief) -> list[Scene]:
    return list(Scene.objects.filter(brief=brief).order_by("position"))


def with_finals(brief: Brief, backend: Any) -> list[RenderJob]:
    return [take(scene, backend, colour) for scene, colour in zip(scenes_of(brief), COLOURS, strict=True)]


def build(brief: Brief, kind: str, **options: Any) -> Deliverable:
    deliverable = services.deliverable_request(brief=brief, kind=kind, user=None, **options)
    build_deliverable(deliverable.pk)  # the task's body, run here
    deliverable.refresh_from_db()
    return deliverable


def nothing_stored(brief: Brief) -> bool:
    folder = str(brief.uuid)
    return not storages["deliverables"].exists(folder) or storages["deliverables"].listdir(folder) == ([], [])


def stored(deliverable: Deliverable) -> bytes:
    with storages["deliverables"].open(deliverable.file_name, "rb") as handle:
        return handle.read()


def test_no_finals_is_refused_at_once_naming_the_scenes(three):
    with pytest.raises(
        services.DeliverableRefused, match=r"No scene has a final yet \(scene 1 \(Harbour\), scene 2"
    ):
        services.deliverable_request(brief=three, kind="zip", user=None)
    assert not Deliverable.objects.exists()


def test_stop_names_the_scenes_without_a_final(three, backend):
    first, second, _ = scenes_of(three)
    take(first, backend, COLOURS[0])
    take(second, backend, COLOURS[1], final=False)
    with pytest.raises(
        services.DeliverableRefused, match=r"No final picked for scene 2 \(Deck\), scene 3 \(Dawn\)"
    ):
        services.deliverable_request(brief=three, kind="zip", user=None, missing="stop")


def test_latest_uses_each_scenes_newest_take_and_says_so(three, backend):
    first, second, third = scenes_of(three)
    take(first, backend, COLOURS[0])
    take(second, backend, (1, 1, 1), final=False)
    newest = take(second, backend, COLOURS[1], final=False)
    take(third, backend, COLOURS[2], final=False)
    deliverable = build(three, "zip", missing="latest")
    assert deliverable.state == DeliverableState.SUCCEEDED, deliverable.error
    assert "No final picked for scene 2 (Deck), scene 3 (Dawn): used the latest take." in deliverable.notes
    with zipfile.ZipFile(io.BytesIO(stored(deliverable))) as archive:
        table = json.loads(archive.read("manifest.json"))
    assert [s["source"] for s in table["scenes"]] == ["final", "latest", "latest"]
    assert table["scenes"][1]["take"] == str(newest.uuid)


def test_latest_still_refuses_a_scene_with_no_take_at_all(three, backend):
    take(scenes_of(three)[0], backend, COLOURS[0])
    with pytest.raises(
        services.DeliverableRefused, match=r"scene 2 \(Deck\), scene 3 \(Dawn\) have no final and no"
    ):
        services.deliverable_request(brief=three, kind="zip", user=None, missing="latest")


def test_the_zip_manifest_matches_the_finals_hashes(three, backend):
    jobs = with_finals(three, backend)
    deliverable = build(three, "zip")
    assert deliverable.state == DeliverableState.SUCCEEDED and deliverable.progress == 100
    body = stored(deliverable)
    assert deliverable.sha256 == hashlib.sha256(body).hexdigest() and deliverable.size_bytes == len(body)
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        table = json.loads(archive.read("manifest.json"))
        for entry, job in zip(table["scenes"], jobs, strict=True):
            (file,) = entry["files"]
            assert file["sha256"] == job.artifacts.get().sha256
            assert hashlib.sha256(archive.read(file["path"])).hexdigest() == file["sha256"]
            assert entry["template"] == job.template.slug and entry["prompt"] == job.params["prompt"]
            assert entry["seed"] == job.params.get("seed")


def test_the_animatic_is_the_briefs_size_and_length(three, backend):
    Brief.objects.filter(pk=three.pk).update(aspect_ratio="9:16")
    three.refresh_from_db()
    with_finals(three, backend)
    deliverable = build(three, "animatic", titles=True)
    assert deliverable.state == DeliverableState.SUCCEEDED, deliverable.error
    with av.open(io.BytesIO(stored(deliverable))) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == frame_size("9:16")
        frames = sum(1 for _ in container.decode(stream))
    assert abs(frames / 24 - 2.75) <= 1 / 24


@pytest.mark.parametrize(
    ("kind", "magic"), [("contact_png", b"\x89PNG"), ("contact_pdf", b"%PDF"), ("shotlist", b"position,")]
)
def test_each_kind_is_built_into_its_own_file(three, backend, kind, magic):
    with_finals(three, backend)
    deliverable = build(three, kind)
    assert deliverable.state == DeliverableState.SUCCEEDED, deliverable.error
    assert stored(deliverable).startswith(magic)


def test_a_final_whose_file_is_missing_fails_with_its_scene_and_leaves_no_file(three, backend):
    jobs = with_finals(three, backend)
    deliverable = services.deliverable_request(brief=three, kind="zip", user=None)
    storages["artifacts"].delete(jobs[1].artifacts.get().storage_name)
    build_deliverable(deliverable.pk)
    deliverable.refresh_from_db()
    assert deliverable.state == DeliverableState.FAILED
    assert "scene 2 (Deck)" in deliverable.error and "missing from storage" in deliverable.error
    assert deliverable.file_name == ""
    assert nothing_stored(three)


def test_a_file_changed_since_it_was_stored_fails_the_build_and_leaves_nothing(three, backend):
    jobs = with_finals(three, backend)
    deliverable = services.deliverable_request(brief=three, kind="zip", user=None)
    # The file is there, so the precheck passes; its bytes are not the ones that were recorded.
    name = jobs[2].artifacts.get().storage_name
    storages["artifacts"].delete(name)
    storages["artifacts"].save(name, ContentFile(png_bytes((64, 36), (9, 9, 9))))
    build_deliverable(deliverable.pk)
    deliverable.refresh_from_db()
    assert deliverable.state == DeliverableState.FAILED
    assert "scene 3 (Dawn)" in deliverable.error and "changed since it was stored" in deliverable.error
    assert nothing_stored(three)


def test_a_rebuild_replaces_the_old_file_only_when_complete(
    three, backend, django_capture_on_commit_callbacks
):
    jobs = with_finals(three, backend)
    with django_capture_on_commit_callbacks(execute=True):
        first = build(three, "contact_png")
    assert first.state == DeliverableState.SUCCEEDED
    # A rebuild that fails keeps the first one, file and all.
    name = jobs[0].artifacts.get().storage_name
    body = storages["artifacts"].open(name, "rb").read()
    with django_capture_on_commit_callbacks(execute=False):
        broken = services.deliverable_request(brief=three, kind="contact_png", user=None)
    storages["artifacts"].delete(name)
    with django_capture_on_commit_callbacks(execute=True):
        build_deliverable(broken.pk)
    broken.refresh_from_db()
    assert broken.state == DeliverableState.FAILED and "scene 1 (Harbour)" in broken.error
    first.refresh_from_db()
    assert first.state == DeliverableState.SUCCEEDED and storages["deliverables"].exists(first.file_name)
    # One that completes takes its place; the old file goes once that is committed.
    storages["artifacts"].save(name, ContentFile(body))
    with django_capture_on_commit_callbacks(execute=True):
        second = build(three, "contact_png")
    assert second.state == DeliverableState.SUCCEEDED
    assert list(Deliverable.objects.filter(brief=three, kind="contact_png")) == [second]
    assert not storages["deliverables"].exists(first.file_name)
    assert storages["deliverables"].exists(second.file_name)


def test_one_build_of_a_kind_at_a_time(three, backend):
    with_finals(three, backend)
    services.deliverable_request(brief=three, kind="zip", user=None)
    with pytest.raises(services.DeliverableBusy, match="already being built"):
        services.deliverable_request(brief=three, kind="zip", user=None)
    services.deliverable_request(brief=three, kind="animatic", user=None)


def test_progress_is_sent_live_in_steps(three, backend):
    with_finals(three, backend)
    before = Brief.objects.get(pk=three.pk).event_seq
    deliverable = build(three, "animatic")
    events = Brief.objects.get(pk=three.pk).event_seq - before
    # Queued, running, some steps, done: more than the ends, never one per frame (66 frames).
    assert deliverable.state == DeliverableState.SUCCEEDED
    assert 4 <= events <= 2 + 100 // services.deliverables.PROGRESS_STEP


def test_the_sweep_fails_builds_whose_worker_was_lost_and_resends_lost_messages(three, backend, settings):
    with_finals(three, backend)
    lost = services.deliverable_request(brief=three, kind="zip", user=None)
    waiting = services.deliverable_request(brief=three, kind="shotlist", user=None)
    old = timezone.now() - timedelta(hours=1)
    Deliverable.objects.filter(pk=lost.pk).update(state=DeliverableState.RUNNING, updated_at=old)
    Deliverable.objects.filter(pk=waiting.pk).update(updated_at=old)
    assert services.deliverables_left_behind(stale_after_s=settings.DELIVERABLE_STALE_S) == [waiting.pk]
    lost.refresh_from_db()
    assert lost.state == DeliverableState.FAILED and "worker was lost" in lost.error
    sweep_deliverables()  # sends the waiting one again (to the in-memory broker)


def test_an_animatic_longer_than_the_limit_is_refused_with_its_length(three, backend, settings):
    with_finals(three, backend)
    settings.DELIVERABLE_ANIMATIC_MAX_S = 2
    with pytest.raises(services.DeliverableRefused, match=r"would run 3 s \(3 scenes\); at most 2 s"):
        services.deliverable_request(brief=three, kind="animatic", user=None)


# -- the doors ----------------------------------------------------------------------
def test_the_editor_builds_follows_and_downloads_for_the_team_only(three, backend, team_users):
    member, outsider = team_users
    with_finals(three, backend)
    client = Client()
    client.force_login(member)
    url = f"/briefs/{three.uuid}/deliverables/"
    response = client.post(url, {"kind": "shotlist"}, headers={"accept": "application/json"})
    assert response.status_code == 202
    data = response.json()["deliverable"]
    assert set(data) == {"uuid", "kind", "state", "progress", "error", "notes", "url", "size"}
    assert data["state"] == "queued" and data["url"] is None
    build_deliverable(Deliverable.objects.get(uuid=data["uuid"]).pk)
    listing = client.get(url).json()["deliverables"]
    ready = next(row for row in listing if row["kind"] == "shotlist")["ready"]
    assert ready["url"] == f"/deliverables/{data['uuid']}/download/"
    download = client.get(ready["url"])
    assert download.status_code == 200
    assert download["Content-Disposition"] == 'attachment; filename="night-ferry-shotlist.csv"'
    assert b"".join(download.streaming_content).startswith(b"position,title")
    page = client.get(f"/briefs/{three.uuid}/")
    assert b'data-testid="download-shotlist"' in page.content and ready["url"].encode() in page.content
    stranger = Client()
    stranger.force_login(outsider)
    assert stranger.get(ready["url"]).status_code == 404
    assert stranger.post(url, {"kind": "zip"}).status_code == 404


def test_the_editor_says_what_was_wrong(three, backend, team_users):
    member, _ = team_users
    client = Client()
    client.force_login(member)
    url = f"/briefs/{three.uuid}/deliverables/"
    json_accept = {"accept": "application/json"}
    bad_kind = client.post(url, {"kind": "poster"}, headers=json_accept)
    assert bad_kind.status_code == 400 and "kind must be one of" in bad_kind.json()["error"]
    bad_missing = client.post(url, {"kind": "zip", "missing": "skip"}, headers=json_accept)
    assert (
        bad_missing.status_code == 400
        and "missing must be one of stop, latest" in bad_missing.json()["error"]
    )
    no_finals = client.post(url, {"kind": "zip"}, headers=json_accept)
    assert no_finals.status_code == 400 and "No scene has a final yet" in no_finals.json()["error"]
    with_finals(three, backend)
    assert client.post(url, {"kind": "zip"}, headers=json_accept).status_code == 202
    busy = client.post(url, {"kind": "zip"}, headers=json_accept)
    assert busy.status_code == 409 and busy.json()["code"] == "busy"
    page = client.post(url, {"kind": "zip"}, follow=True)
    assert "Not built: A finals (zip) is already being built" in page.content.decode()


def test_a_failed_deliverable_has_no_download(three, backend, team_users):
    member, _ = team_users
    with_finals(three, backend)
    deliverable = services.deliverable_request(brief=three, kind="zip", user=None)
    services.deliverable_fail(deliverable_id=deliverable.pk, error="stopped")
    client = Client()
    client.force_login(member)
    assert client.get(f"/deliverables/{deliverable.uuid}/download/").status_code == 404


def test_the_api_builds_lists_and_downloads(three, backend, team_users):
    member, outsider = team_users
    with_finals(three, backend)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=member).key}")
    url = f"/api/v1/briefs/{three.uuid}/deliverables/"
    created = client.post(url, {"kind": "contact_pdf"}, format="json")
    assert created.status_code == 202 and created.json()["download_url"] is None
    build_deliverable(Deliverable.objects.get(uuid=created.json()["uuid"]).pk)
    (row,) = client.get(url).json()
    assert row["state"] == "succeeded" and row["options"] == {"missing": "stop", "titles": False}
    download = client.get(row["download_url"])
    assert download.status_code == 200 and download["Content-Type"] == "application/pdf"
    assert hashlib.sha256(b"".join(download.streaming_content)).hexdigest() == row["sha256"]
    refused = client.post(url, {"kind": "zip", "missing": "skip"}, format="json")
    assert refused.status_code == 400 and "missing" in refused.json()
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=outsider).key}")
    assert other.get(row["download_url"]).status_code == 404


def test_a_brief_of_200_scenes_is_zipped_whole_with_its_progress_in_steps(team_users, template, backend):
    member, _ = team_users
    brief = brief_create(
        user=member,
        title="Long night",
        scenes=[{"title": f"Shot {n}", "prompt": f"frame {n}", "duration_s": "1"} for n in range(1, 201)],
    )
    for number, scene in enumerate(scenes_of(brief)):
        take(scene, backend, COLOURS[number % 3])
    before = Brief.objects.get(pk=brief.pk).event_seq
    deliverable = build(brief, "zip")
    assert deliverable.state == DeliverableState.SUCCEEDED, deliverable.error
    with zipfile.ZipFile(io.BytesIO(stored(deliverable))) as archive:
        table = json.loads(archive.read("manifest.json"))
    assert [s["position"] for s in table["scenes"]] == list(range(1, 201))
    assert Brief.objects.get(pk=brief.pk).event_seq - before <= 3 + 100 // services.deliverables.PROGRESS_STEP

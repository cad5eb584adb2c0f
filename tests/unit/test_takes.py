"""Takes: every successful render of a scene, when it goes stale, picking a final, rendering again
from a take, restoring its text, comparing takes, review's picks and the expected finish."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.db.models import F
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from briefs import services as brief_services
from briefs.models import Scene
from generation import services
from generation.models import Attempt, AttemptState, JobState, RenderJob, WorkflowTemplate
from generation.takes import brief_eta, render_estimate, review_reel, take_differences, takes_per_scene
from tests.artifacts import stored_png


def _succeed(job: RenderJob, backend: Any, *, seconds: float = 4.0, cost: float | None = None) -> RenderJob:
    """What the engine leaves behind a successful render: an attempt with telemetry, a file."""
    telemetry: dict[str, Any] = {"duration_s": seconds, "gpu_seconds": seconds}
    if cost is not None:
        telemetry["estimated_cost_usd"] = cost
    attempt = Attempt.objects.create(
        job=job,
        number=1,
        backend=backend,
        state=AttemptState.SUCCEEDED,
        telemetry=telemetry,
        finished_at=timezone.now(),
    )
    stored_png(job, attempt)
    assert services.job_transition(job.pk, from_states={JobState.QUEUED}, to_state=JobState.SUCCEEDED)
    job.refresh_from_db()
    return job


def _take(scene: Scene, user: Any, backend: Any, **kwargs: Any) -> RenderJob:
    job = services.render_job_submit(scene=scene, user=user, again=True)
    return _succeed(job, backend, **kwargs)


def _stale(scene: Scene) -> dict[str, list[str]]:
    scene = Scene.objects.select_related("brief").get(pk=scene.pk)
    return {str(t.job.uuid): t.stale for t in takes_per_scene(scene.brief, only=scene).get(scene.pk, [])}


# -- stale ---------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_a_fresh_take_is_not_stale_and_takes_come_newest_first(brief, template, backend, staff_user):
    scene = brief.scenes.get(position=1)
    first = _take(scene, staff_user, backend)
    second = _take(scene, staff_user, backend)
    takes = takes_per_scene(brief)[scene.pk]
    assert [t.job.pk for t in takes] == [second.pk, first.pk]
    assert [t.stale for t in takes] == [[], []]
    assert takes[0].artifact_url == reverse("briefs:artifact", args=[takes[0].artifact.uuid])


@pytest.mark.django_db
def test_a_failed_or_unfinished_render_is_no_take(brief, template, backend, staff_user):
    scene = brief.scenes.get(position=1)
    failed = services.render_job_submit(scene=scene, user=staff_user)
    services.job_transition(
        failed.pk, from_states={JobState.QUEUED}, to_state=JobState.FAILED, error_code="execution_failed"
    )
    services.render_job_submit(scene=scene, user=staff_user)
    assert takes_per_scene(brief).get(scene.pk, []) == []


@pytest.mark.django_db
def test_editing_the_scene_makes_its_takes_stale_saying_so(brief, template, backend, staff_user):
    scene = brief.scenes.get(position=1)
    take = _take(scene, staff_user, backend)
    brief_services.scene_update(scene=scene, prompt="a ferry in a storm")
    assert _stale(scene)[str(take.uuid)] == ["the scene was edited (version 1 → 2)"]


@pytest.mark.django_db
def test_changing_the_story_bible_makes_takes_stale(brief, template, backend, staff_user):
    scene = brief.scenes.get(position=1)
    take = _take(scene, staff_user, backend)
    before = brief.bible_version
    brief_services.brief_update(brief=brief, style="oil paint")
    brief.refresh_from_db()
    assert _stale(scene)[str(take.uuid)] == [
        f"the story bible changed (version {before} → {brief.bible_version})"
    ]


@pytest.mark.django_db
def test_a_new_version_of_the_workflow_makes_takes_stale(brief, template, backend, staff_user):
    scene = brief.scenes.get(position=1)
    take = _take(scene, staff_user, backend)
    WorkflowTemplate.objects.filter(pk=template.pk).update(version=F("version") + 1)
    assert _stale(scene)[str(take.uuid)] == [
        f"the workflow {template.name} changed (v{template.version} → v{template.version + 1})"
    ]


# -- the final -----------------------------------------------------------------------------------
@pytest.mark.django_db
def test_a_take_of_the_scene_becomes_its_final_and_can_be_cleared(brief, template, backend, staff_user):
    scene = brief.scenes.get(position=1)
    take = _take(scene, staff_user, backend)
    brief_services.scene_pick_final(scene=scene, job=take)
    assert Scene.objects.get(pk=scene.pk).final_id == take.pk
    assert [t.is_final for t in takes_per_scene(brief)[scene.pk]] == [True]
    brief_services.scene_pick_final(scene=scene, job=None)
    assert Scene.objects.get(pk=scene.pk).final_id is None


@pytest.mark.django_db
def test_another_scenes_take_or_a_failed_render_cannot_be_the_final(brief, template, backend, staff_user):
    one, two = brief.scenes.order_by("position")
    other = _take(two, staff_user, backend)
    with pytest.raises(brief_services.SceneRefused, match="not a render of this scene"):
        brief_services.scene_pick_final(scene=one, job=other)
    failed = services.render_job_submit(scene=one, user=staff_user)
    services.job_transition(
        failed.pk, from_states={JobState.QUEUED}, to_state=JobState.FAILED, error_code="execution_failed"
    )
    with pytest.raises(brief_services.SceneRefused, match="that one is failed"):
        brief_services.scene_pick_final(scene=one, job=RenderJob.objects.get(pk=failed.pk))
    assert Scene.objects.get(pk=one.pk).final_id is None


@pytest.mark.django_db
def test_the_final_door_answers_json_and_refuses_with_reasons(brief, template, backend, staff_user, writer):
    one, two = brief.scenes.order_by("position")
    take = _take(one, staff_user, backend)
    other = _take(two, staff_user, backend)
    client = Client()
    client.force_login(staff_user)
    url = reverse("briefs:scene-final", args=[one.uuid])
    json_accept = {"HTTP_ACCEPT": "application/json"}
    answer = client.post(url, {"take": str(take.uuid)}, **json_accept)
    assert answer.status_code == 200
    assert answer.json() == {"scene": str(one.uuid), "final": str(take.uuid)}
    refused = client.post(url, {"take": str(other.uuid)}, **json_accept)
    assert refused.status_code == 400
    assert "not a render of this scene" in refused.json()["error"]
    garbled = client.post(url, {"take": "yesterday"}, **json_accept)
    assert garbled.status_code == 400
    assert "yesterday" in garbled.json()["error"]
    assert Scene.objects.get(pk=one.pk).final_id == take.pk  # nothing lost on the way
    # Another team's scene is unknown to them, whatever take they name.
    stranger = Client()
    stranger.force_login(writer)
    assert stranger.post(url, {"take": str(take.uuid)}, **json_accept).status_code == 404
    cleared = client.post(url, {"take": ""}, **json_accept)
    assert cleared.json()["final"] is None


@pytest.mark.django_db
def test_another_teams_take_cannot_be_named_as_a_final(brief, template, backend, staff_user, writer):
    mine = brief_services.brief_create(user=writer, title="Mine", scenes=[{"title": "A", "prompt": "a"}])
    take = _take(brief.scenes.get(position=1), staff_user, backend)
    client = Client()
    client.force_login(writer)
    answer = client.post(
        reverse("briefs:scene-final", args=[mine.scenes.get().uuid]),
        {"take": str(take.uuid)},
        HTTP_ACCEPT="application/json",
    )
    assert answer.status_code == 400
    assert mine.scenes.get().final_id is None


# -- render again, restore -----------------------------------------------------------------------
@pytest.mark.django_db
def test_render_again_keeps_the_takes_seed_and_new_seed_draws_another(brief, template, backend, staff_user):
    scene = brief.scenes.get(position=1)
    take = _take(scene, staff_user, backend)
    again = services.take_render_again(take=take, user=staff_user, same_seed=True)
    assert again.params["seed"] == take.params["seed"]
    assert again.scene_id == scene.pk
    fresh = services.take_render_again(take=take, user=staff_user, same_seed=False)
    assert fresh.params["seed"] != take.params["seed"]


@pytest.mark.django_db
def test_new_seed_overrides_a_scenes_fixed_seed(brief, template, backend, staff_user):
    scene = brief.scenes.get(position=1)
    brief_services.scene_update(scene=scene, seed=77)
    take = _take(scene, staff_user, backend)
    assert take.params["seed"] == 77
    assert services.take_render_again(take=take, user=staff_user, same_seed=False).params["seed"] != 77


@pytest.mark.django_db
def test_only_a_finished_render_is_rendered_again(brief, template, backend, staff_user):
    queued = services.render_job_submit(scene=brief.scenes.get(position=1), user=staff_user)
    with pytest.raises(services.TakeRefused, match="that one is queued"):
        services.take_render_again(take=queued, user=staff_user, same_seed=True)


@pytest.mark.django_db
def test_the_again_door_renders_with_the_seed_asked_for(brief, template, backend, staff_user):
    take = _take(brief.scenes.get(position=1), staff_user, backend)
    client = Client()
    client.force_login(staff_user)
    url = reverse("briefs:take-again", args=[take.uuid])
    answer = client.post(url, {"seed": "same"}, HTTP_ACCEPT="application/json")
    assert answer.status_code == 202
    assert answer.json()["seed"] == take.params["seed"]
    bad = client.post(url, {"seed": "lucky"}, HTTP_ACCEPT="application/json")
    assert bad.status_code == 400
    assert "lucky" in bad.json()["error"]


@pytest.mark.django_db
def test_restore_puts_the_takes_text_back_as_a_new_version(brief, template, backend, staff_user):
    scene = brief.scenes.get(position=1)
    take = _take(scene, staff_user, backend)
    brief_services.scene_update(scene=scene, prompt="a ferry in a storm", lighting="lightning", title="Storm")
    restored = services.take_restore(take=take)
    assert (restored.prompt, restored.lighting, restored.title) == (
        "a ferry leaving a foggy harbour",
        "",
        "Harbour",
    )
    assert restored.version == 3
    assert _stale(scene)[str(take.uuid)] == ["the scene was edited (version 1 → 3)"]


@pytest.mark.django_db
def test_a_take_from_before_snapshots_has_nothing_to_restore(brief, template, backend, staff_user):
    scene = brief.scenes.get(position=1)
    take = _take(scene, staff_user, backend)
    params = dict(take.params)
    del params["scene_fields"]
    RenderJob.objects.filter(pk=take.pk).update(params=params)
    brief_services.scene_update(scene=scene, prompt="a ferry in a storm")
    with pytest.raises(services.TakeRefused, match="nothing to restore"):
        services.take_restore(take=RenderJob.objects.get(pk=take.pk))
    assert Scene.objects.get(pk=scene.pk).prompt == "a ferry in a storm"


@pytest.mark.django_db
def test_the_restore_door_answers_the_scene(brief, template, backend, staff_user, writer):
    scene = brief.scenes.get(position=1)
    take = _take(scene, staff_user, backend)
    brief_services.scene_update(scene=scene, prompt="a ferry in a storm")
    stranger = Client()
    stranger.force_login(writer)
    url = reverse("briefs:take-restore", args=[take.uuid])
    assert stranger.post(url, HTTP_ACCEPT="application/json").status_code == 404
    client = Client()
    client.force_login(staff_user)
    answer = client.post(url, HTTP_ACCEPT="application/json")
    assert answer.status_code == 200
    assert answer.json()["changed"] is True
    assert answer.json()["scene"]["fields"]["prompt"] == "a ferry leaving a foggy harbour"


# -- compare, review, download -------------------------------------------------------------------
@pytest.mark.django_db
def test_compare_lists_only_the_parameters_that_differ(brief, template, backend, staff_user):
    scene = brief.scenes.get(position=1)
    one = _take(scene, staff_user, backend, seconds=3.0)
    two = _take(scene, staff_user, backend, seconds=3.0)
    takes = {t.job.pk: t for t in takes_per_scene(brief)[scene.pk]}
    names = [row["name"] for row in take_differences([takes[one.pk], takes[two.pk]])]
    assert names == ["seed"]
    client = Client()
    client.force_login(staff_user)
    url = reverse("briefs:takes-compare", args=[brief.uuid])
    answer = client.get(url, {"take": [str(one.uuid), str(two.uuid)]})
    assert answer.status_code == 200
    body = answer.json()
    assert [t["take"] for t in body["takes"]] == [str(one.uuid), str(two.uuid)]
    assert body["differences"][0]["values"] == [one.params["seed"], two.params["seed"]]
    alone = client.get(url, {"take": [str(one.uuid)]})
    assert alone.status_code == 400
    assert "from 2" in json.dumps(alone.json())


@pytest.mark.django_db
def test_review_plays_each_scenes_final_else_its_newest_take(brief, template, backend, staff_user):
    one, two = brief.scenes.order_by("position")
    picked = _take(one, staff_user, backend)
    _take(one, staff_user, backend)
    newest = _take(two, staff_user, backend)
    brief_services.scene_pick_final(scene=one, job=picked)
    reel = review_reel(brief)
    assert [(shot.scene.pk, shot.take.job.pk, shot.take.is_final) for shot in reel if shot.take] == [
        (one.pk, picked.pk, True),
        (two.pk, newest.pk, False),
    ]


@pytest.mark.django_db
def test_a_takes_download_is_for_the_team_only(brief, template, backend, staff_user, writer):
    take = _take(brief.scenes.get(position=1), staff_user, backend)
    (shown,) = takes_per_scene(brief)[take.scene_id]
    url = f"{shown.artifact_url}?download=1"
    stranger = Client()
    stranger.force_login(writer)
    assert stranger.get(url).status_code == 404
    client = Client()
    client.force_login(staff_user)
    answer = client.get(url)
    assert answer.status_code == 200
    assert answer["Content-Disposition"].startswith("attachment")
    b"".join(answer.streaming_content)


# -- expected finish -----------------------------------------------------------------------------
@pytest.mark.django_db
def test_the_estimate_is_the_median_and_middle_half_of_past_renders(brief, template, backend, staff_user):
    scene = brief.scenes.get(position=1)
    assert render_estimate(template=template, backend=backend) is None
    for seconds in (2.0, 4.0, 6.0, 8.0, 100.0):
        _take(scene, staff_user, backend, seconds=seconds)
    estimate = render_estimate(template=template, backend=backend)
    assert (estimate.median_s, estimate.low_s, estimate.high_s, estimate.samples) == (6.0, 4.0, 8.0, 5)
    other = services.backend_register_preview(url="http://127.0.0.1:8", name="Other")
    assert render_estimate(template=template, backend=other) is None


@pytest.mark.django_db
def test_an_open_render_is_expected_after_the_median_and_the_door_adds_the_spend(
    brief, template, backend, staff_user
):
    scene = brief.scenes.get(position=1)
    _take(scene, staff_user, backend, seconds=10.0, cost=0.25)
    job = services.render_job_submit(scene=scene, user=staff_user, again=True)
    started = timezone.now() - timedelta(seconds=4)
    RenderJob.objects.filter(pk=job.pk).update(state=JobState.RUNNING, started_at=started, backend=backend)
    eta = brief_eta(brief)
    (row,) = eta["jobs"]
    assert row["job"] == str(job.uuid)
    assert row["estimate"]["median_s"] == 10.0
    expected = timezone.datetime.fromisoformat(row["expected_at"])
    assert abs((expected - (started + timedelta(seconds=10))).total_seconds()) < 0.01
    client = Client()
    client.force_login(staff_user)
    body = client.get(reverse("briefs:eta", args=[brief.uuid])).json()
    assert body["open"] == 1
    assert body["spend"]["cost_usd"] == "0.2500"

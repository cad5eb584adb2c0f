import pytest

from generation import services
from generation.models import JobEvent, JobState, RenderJob


@pytest.mark.django_db(transaction=True)
def test_a_scene_render_is_queued_with_a_snapshot_of_what_it_renders(brief, template, backend, staff_user):
    scene = brief.scenes.get(position=1)
    job = services.render_job_submit(scene=scene, user=staff_user)
    job.refresh_from_db()
    assert job.state == JobState.QUEUED
    assert job.params["prompt"] == "a ferry leaving a foggy harbour, ink wash"
    assert isinstance(job.params["seed"], int)
    assert job.scene_version == scene.version
    assert job.template_version == template.version
    assert job.template_sha256 == template.content_sha256
    assert list(JobEvent.objects.filter(job=job).values_list("to_state", flat=True)) == ["queued"]


@pytest.mark.django_db(transaction=True)
def test_a_fixed_seed_is_kept(brief, template, backend, staff_user):
    scene = brief.scenes.get(position=2)
    scene.seed = 1234
    scene.save()
    job = services.render_job_submit(scene=scene, user=staff_user)
    assert job.params["seed"] == 1234


@pytest.mark.django_db(transaction=True)
def test_render_all_queues_one_job_per_scene_in_order(brief, template, backend, staff_user):
    batch, jobs = services.render_brief_submit(brief=brief, user=staff_user)
    assert [job.scene.position for job in jobs] == [1, 2]
    assert {job.batch_id for job in jobs} == {batch.pk}


@pytest.mark.django_db
def test_render_without_a_template_is_refused_with_a_reason(brief, backend, staff_user):
    with pytest.raises(services.RenderRefused, match="No workflow template is loaded"):
        services.render_job_submit(scene=brief.scenes.first(), user=staff_user)
    assert RenderJob.objects.count() == 0


@pytest.mark.django_db
def test_render_all_of_an_empty_brief_is_refused(staff_user, template):
    from briefs.services import brief_create

    empty = brief_create(user=staff_user, title="Empty")
    with pytest.raises(services.RenderRefused, match="no scenes"):
        services.render_brief_submit(brief=empty, user=staff_user)


@pytest.mark.django_db(transaction=True)
def test_a_transition_happens_only_from_the_expected_state(brief, template, backend, staff_user):
    job = services.render_job_submit(scene=brief.scenes.first(), user=staff_user)
    assert services.job_transition(job.pk, from_states={JobState.QUEUED}, to_state=JobState.DISPATCHED)
    # A second worker racing for the same job finds it already moved.
    assert not services.job_transition(job.pk, from_states={JobState.QUEUED}, to_state=JobState.DISPATCHED)
    assert list(job.events.values_list("from_state", "to_state")) == [
        ("", "queued"),
        ("queued", "dispatched"),
    ]


@pytest.mark.django_db(transaction=True)
def test_cancel_works_once_and_not_after_the_end(brief, template, backend, staff_user):
    job = services.render_job_submit(scene=brief.scenes.first(), user=staff_user)
    assert services.render_job_cancel(job=job)
    assert not services.render_job_cancel(job=job)
    job.refresh_from_db()
    assert job.state == JobState.CANCELLED
    assert job.finished_at is not None


@pytest.mark.django_db(transaction=True)
def test_each_change_is_numbered_per_brief(brief, template, backend, staff_user):
    job = services.render_job_submit(scene=brief.scenes.first(), user=staff_user)
    services.job_transition(job.pk, from_states={JobState.QUEUED}, to_state=JobState.DISPATCHED)
    brief.refresh_from_db()
    assert brief.event_seq == 2


@pytest.mark.django_db
def test_editing_a_scene_bumps_its_version_only_when_something_changed(brief):
    from briefs.services import scene_update

    scene = brief.scenes.first()
    scene_update(scene=scene, title=scene.title)
    assert scene.version == 1
    scene_update(scene=scene, prompt="a ferry in the rain")
    assert scene.version == 2


@pytest.mark.django_db
def test_scenes_inserted_in_the_middle_push_the_rest_down(brief):
    from briefs.services import scene_create, scene_delete

    scene_create(brief=brief, title="Between", prompt="gulls", position=2)
    assert list(brief.scenes.values_list("title", "position")) == [
        ("Harbour", 1),
        ("Between", 2),
        ("Deck", 3),
    ]
    scene_delete(scene=brief.scenes.get(title="Harbour"))
    assert list(brief.scenes.values_list("title", "position")) == [("Between", 1), ("Deck", 2)]


@pytest.mark.django_db
def test_a_render_with_no_backend_enabled_is_refused_at_once(brief, template, staff_user):
    with pytest.raises(services.RenderRefused, match="No render backend is enabled"):
        services.render_job_submit(scene=brief.scenes.first(), user=staff_user)
    assert RenderJob.objects.count() == 0

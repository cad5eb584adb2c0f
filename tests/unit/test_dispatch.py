"""Dispatch: slots, priorities, fairness between briefs, placement by models, drain, and races."""

import threading

import pytest
from django.db import connection
from django.utils import timezone

from briefs.services import brief_create
from generation import services
from generation.dispatch import dispatch_round
from generation.models import Backend, JobState, RenderJob

SUBMITTED: list = []


def record(attempt) -> None:
    SUBMITTED.append(attempt)


@pytest.fixture(autouse=True)
def _clear():
    SUBMITTED.clear()


def _backend(name: str, **fields) -> Backend:
    return Backend.objects.create(name=name, base_url=f"http://127.0.0.1:9/{name}", **fields)


def _brief(user, title: str, scenes: int):
    return brief_create(
        user=user,
        title=title,
        scenes=[{"title": f"{title} {i}", "prompt": f"{title} frame {i}"} for i in range(scenes)],
    )


@pytest.mark.django_db(transaction=True)
def test_each_backend_gets_its_running_slot_plus_its_queue_depth_and_no_more(template, staff_user):
    _backend("a", capacity=1, queue_depth=1)
    _backend("b", capacity=1, queue_depth=2)
    services.render_brief_submit(brief=_brief(staff_user, "Big", 9), user=staff_user)
    assert dispatch_round(submit=record) == 5
    per_backend = {
        b: RenderJob.objects.filter(backend__name=b, state=JobState.DISPATCHED).count() for b in "ab"
    }
    assert per_backend == {"a": 2, "b": 3}
    assert RenderJob.objects.filter(state=JobState.QUEUED).count() == 4
    assert dispatch_round(submit=record) == 0  # full: nothing more until a render ends


@pytest.mark.django_db(transaction=True)
def test_an_interactive_render_goes_before_a_waiting_batch(template, staff_user):
    _backend("a", capacity=1, queue_depth=0)
    services.render_brief_submit(brief=_brief(staff_user, "Batch", 3), user=staff_user)
    single = services.render_job_submit(scene=_brief(staff_user, "Quick", 1).scenes.get(), user=staff_user)
    dispatch_round(submit=record)
    assert [a.job_id for a in SUBMITTED] == [single.pk]


@pytest.mark.django_db(transaction=True)
def test_a_big_batch_does_not_starve_another_brief(template, staff_user):
    _backend("a", capacity=1, queue_depth=3)
    services.render_brief_submit(brief=_brief(staff_user, "Huge", 20), user=staff_user)
    small = _brief(staff_user, "Small", 2)
    services.render_brief_submit(brief=small, user=staff_user)
    dispatch_round(submit=record)
    briefs = [RenderJob.objects.get(pk=a.job_id).brief_id for a in SUBMITTED]
    assert briefs.count(small.pk) == 2  # both of the small brief's scenes among the first four


@pytest.mark.django_db(transaction=True)
def test_placement_skips_backends_without_the_models_and_prefers_those_that_have_them(template, staff_user):
    ckpt = template.graph["4"]["inputs"]["ckpt_name"]
    catalogue = {"CheckpointLoaderSimple": {"input": {"required": {"ckpt_name": [[ckpt], {}]}}}}
    lacking = {"CheckpointLoaderSimple": {"input": {"required": {"ckpt_name": [["x"], {}]}}}}
    _backend("lacks", object_info=lacking, object_info_fetched_at=timezone.now())
    _backend("unknown")
    _backend("has", object_info=catalogue, object_info_fetched_at=timezone.now())
    services.render_brief_submit(brief=_brief(staff_user, "B", 3), user=staff_user)
    dispatch_round(submit=record)
    order = [a.backend.name for a in SUBMITTED]
    assert "lacks" not in order
    assert order[:2] == ["has", "has"]


@pytest.mark.django_db(transaction=True)
def test_a_workflow_no_backend_can_render_fails_with_the_missing_model_named(template, staff_user):
    lacking = {"CheckpointLoaderSimple": {"input": {"required": {"ckpt_name": [["x"], {}]}}}}
    _backend("lacks", object_info=lacking, object_info_fetched_at=timezone.now())
    job = services.render_job_submit(scene=_brief(staff_user, "B", 1).scenes.get(), user=staff_user)
    dispatch_round(submit=record)
    job.refresh_from_db()
    assert job.state == JobState.FAILED
    assert job.error_code == "missing_model"
    assert template.graph["4"]["inputs"]["ckpt_name"] in job.error_message


@pytest.mark.django_db(transaction=True)
def test_a_draining_or_down_backend_takes_nothing_new(template, staff_user):
    _backend("draining", draining=True)
    _backend("down", health_state="down")
    _backend("disabled", enabled=False)
    live = _backend("live", capacity=1, queue_depth=0)
    services.render_brief_submit(brief=_brief(staff_user, "B", 3), user=staff_user)
    dispatch_round(submit=record)
    assert {a.backend_id for a in SUBMITTED} == {live.pk}


@pytest.mark.django_db(transaction=True)
def test_a_render_asked_for_one_backend_waits_for_that_one(template, staff_user):
    busy = _backend("busy", capacity=1, queue_depth=0)
    _backend("free")
    services.render_brief_submit(brief=_brief(staff_user, "B", 2), user=staff_user, backend=busy)
    dispatch_round(submit=record)
    assert [a.backend.name for a in SUBMITTED] == ["busy"]
    assert RenderJob.objects.filter(state=JobState.QUEUED).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_policy_preset_and_overrides_are_snapshotted_on_batch_and_jobs(template, staff_user, backend):
    from generation.models import QueuePolicy

    # Transactional tests start from an emptied database, so the shipped preset is made again.
    fast, _ = QueuePolicy.objects.get_or_create(
        name="Fast iteration", defaults={"max_wait_s": 120, "poll_interval_s": 0.5, "retry_budget": 0}
    )
    batch, jobs = services.render_brief_submit(
        brief=_brief(staff_user, "B", 2), user=staff_user, preset=fast, policy_overrides={"retry_budget": 3}
    )
    assert batch.policy["max_wait_s"] == fast.max_wait_s
    assert batch.policy["retry_budget"] == 3
    assert all(job.policy == batch.policy for job in jobs)
    fast.max_wait_s = 999
    fast.save()
    assert RenderJob.objects.get(pk=jobs[0].pk).policy["max_wait_s"] == 120  # a snapshot, not a reference


@pytest.mark.django_db(transaction=True)
def test_two_workers_racing_for_one_job_a_thousand_times_one_wins_each_time(
    template, staff_user, brief, backend
):
    rounds = 1000
    job = services.render_job_submit(scene=brief.scenes.first(), user=staff_user)
    wins = []
    for _ in range(rounds):
        RenderJob.objects.filter(pk=job.pk).update(state=JobState.QUEUED)
        results: list[bool] = []
        barrier = threading.Barrier(2)

        def claim(barrier: threading.Barrier = barrier, results: list[bool] = results) -> None:
            barrier.wait()
            results.append(
                services.job_transition(
                    job.pk, from_states={JobState.QUEUED}, to_state=JobState.DISPATCHED, backend=backend
                )
            )
            connection.close()

        threads = [threading.Thread(target=claim) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wins.append(results.count(True))
    print(f"{rounds} races: {wins.count(1)} with exactly one winner")
    assert wins == [1] * rounds


@pytest.mark.django_db(transaction=True)
def test_a_render_asked_for_a_draining_backend_fails_with_a_reason_instead_of_waiting(template, staff_user):
    drained = _backend("drained", draining=True)
    _backend("free")
    job = services.render_job_submit(
        scene=_brief(staff_user, "B", 1).scenes.get(), user=staff_user, backend=drained
    )
    dispatch_round(submit=record)
    job.refresh_from_db()
    assert (job.state, job.error_code) == (JobState.FAILED, "config_invalid")
    assert "drained, is draining" in job.error_message

"""`manage.py stability_sweep`: N batches of a brief one after another, then the stability report;
exit 1 when a run failed validation or a job failed, 2 when the sweep could not run."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from generation.models import AttemptState, Backend, JobState, QueuePolicy, RenderBatch, RenderJob
from telemetry import sweep
from telemetry.management.commands.stability_sweep import Command
from tests.unit.test_stability_report import add_attempt, failed_record, move, ok_record

pytestmark = pytest.mark.django_db


def fake_studio(monkeypatch, *, fail_in_run: int | None = None):
    """What the watcher would do between two polls: every queued job renders (and one may fail)."""
    ended_batches: list[int] = []

    def pause(seconds: float) -> None:
        for job in RenderJob.objects.filter(state=JobState.QUEUED).order_by("pk"):
            backend = Backend.objects.filter(enabled=True).first()
            move(job, JobState.DISPATCHED, backend=backend)
            run = RenderBatch.objects.filter(created_at__lte=job.batch.created_at).count()
            if (
                run == fail_in_run
                and not RenderJob.objects.filter(batch=job.batch, state=JobState.FAILED).exists()
            ):
                add_attempt(
                    job,
                    1,
                    backend,
                    state=AttemptState.FAILED,
                    error_code="execution_failed",
                    record=failed_record(job),
                )
                move(job, JobState.FAILED, error_code="execution_failed", error_message="KSampler raised")
            else:
                add_attempt(job, 1, backend, state=AttemptState.SUCCEEDED, record=ok_record(job))
                move(job, JobState.SUCCEEDED)
            if job.batch_id not in ended_batches:
                ended_batches.append(job.batch_id)

    monkeypatch.setattr(sweep, "pause", pause)
    return ended_batches


def sweep_command(*args: str) -> str:
    out = io.StringIO()
    call_command("stability_sweep", *args, "--poll-interval", "0.01", stdout=out)
    return out.getvalue()


def test_it_runs_the_batches_one_after_another_and_prints_a_stable_report(
    monkeypatch, template, backend, brief
):
    ended = fake_studio(monkeypatch)
    out = sweep_command("--brief", str(brief.uuid), "--runs", "2")
    batches = list(RenderBatch.objects.order_by("created_at"))
    assert len(batches) == 2 and ended == [b.pk for b in batches]
    first_done = max(j.finished_at for j in batches[0].jobs.all())
    assert batches[1].created_at >= first_done  # the second run began after the first had ended
    assert f"run 1/2: batch {batches[0].uuid} submitted, 2 job(s)" in out
    assert "run 1/2: 0 of 2 jobs ended (queued 2)" in out
    assert "run 2/2: 2 of 2 jobs ended (succeeded 2)" in out
    assert "Stability report: 2 given run(s)" in out
    assert "Runs: 2 (2 passed validation, 0 failed, 0 not validated; pass rate 100.0%)" in out
    assert out.rstrip().endswith("STABLE: 0 run(s) failed validation, 0 not validated, 0 job(s) failed")


def test_a_failed_job_makes_it_exit_1(monkeypatch, template, backend, brief):
    fake_studio(monkeypatch, fail_in_run=2)
    out = io.StringIO()
    with pytest.raises(SystemExit) as exit_:
        call_command(
            "stability_sweep",
            "--brief",
            str(brief.uuid),
            "--runs",
            "2",
            "--poll-interval",
            "0.01",
            stdout=out,
        )
    assert exit_.value.code == 1
    assert "execution_failed 1/1" in out.getvalue() and "UNSTABLE" in out.getvalue()


def test_a_batch_that_does_not_finish_in_time_stops_the_sweep(template, backend, brief):
    with pytest.raises(CommandError) as error:
        sweep_command("--brief", str(brief.uuid), "--runs", "3", "--timeout", "0.05")
    assert error.value.returncode == 2
    message = str(error.value)
    assert "run 1/3: batch" in message and "did not finish within 0.05 s: 0 of 2 jobs ended" in message
    assert "render watcher" in message
    assert RenderBatch.objects.count() == 1  # no second run was started


def test_it_needs_an_enabled_backend(template, backend, brief):
    Backend.objects.update(enabled=False)
    with pytest.raises(CommandError, match="no render backend is enabled") as error:
        sweep_command("--brief", str(brief.uuid), "--runs", "1")
    assert error.value.returncode == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--brief", "nope", "--runs", "1"], "--brief: not a UUID"),
        (["--brief", "00000000-0000-0000-0000-000000000000", "--runs", "1"], "--brief: no brief"),
        (["--runs", "0"], "--runs must be 1 to"),
        (["--runs", "1", "--timeout", "0"], "more than 0 seconds"),
        (["--runs", "1", "--backend", "gpu-99"], "no backend named 'gpu-99' (known: Storyboard preview)"),
        (["--runs", "1", "--policy", "Slow"], "no queue policy named 'Slow'"),
    ],
)
def test_bad_arguments_are_refused_before_anything_is_rendered(template, backend, brief, args, message):
    if "--brief" not in args:
        args = ["--brief", str(brief.uuid), *args]
    with pytest.raises(CommandError) as error:
        sweep_command(*args)
    assert message in str(error.value)
    assert not RenderBatch.objects.exists()


def test_backend_and_policy_are_passed_to_each_batch(monkeypatch, template, backend, brief):
    fake_studio(monkeypatch)
    QueuePolicy.objects.create(name="Patient", max_wait_s=900, retry_budget=2)
    sweep_command("--brief", str(brief.uuid), "--runs", "1", "--backend", backend.name, "--policy", "Patient")
    job = RenderJob.objects.first()
    assert job.requested_backend == backend
    assert job.policy["max_wait_s"] == 900 and job.policy["retry_budget"] == 2


def test_its_help_says_the_studio_must_be_running():
    text = Command().create_parser("manage.py", "stability_sweep").format_help()
    assert "render watcher" in text and "Celery worker" in text

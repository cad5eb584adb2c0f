"""Run reports: written when a batch ends, validated, downloadable from the editor, admin and API,
checked again by `manage.py validate_runs`."""

from __future__ import annotations

import hashlib
import io
import json

import pytest
from django.core.management import call_command
from django.utils import timezone

from briefs.models import Team
from generation import services
from generation.models import Artifact, Attempt, AttemptState, JobState, RenderJob
from telemetry import runs
from telemetry.models import RunReport, ValidationReport
from tests.unit.test_telemetry_attempt_rules import success_record

pytestmark = pytest.mark.django_db


def _finish_batch(brief, user, backend):
    """A batch whose jobs all succeeded, each with one attempt, its telemetry and an artifact."""
    batch, jobs = services.render_brief_submit(brief=brief, user=user)
    for job in jobs:
        record = success_record(policy=batch.policy)
        attempt = Attempt.objects.create(
            job=job, number=1, backend=backend, state=AttemptState.SUCCEEDED, policy=batch.policy
        )
        Attempt.objects.filter(pk=attempt.pk).update(telemetry=record, finished_at=timezone.now())
        body = f"frame of {job.uuid}".encode()
        Artifact.objects.create(
            job=job,
            attempt=attempt,
            storage_name=f"{brief.uuid}/{job.uuid}/{attempt.uuid}-0.png",
            content_type="image/png",
            size_bytes=len(body),
            sha256=hashlib.sha256(body).hexdigest(),
            width=512,
            height=512,
        )
        services.job_transition(job.pk, from_states={JobState.QUEUED}, to_state=JobState.SUCCEEDED)
    return batch, jobs


@pytest.fixture
def finished(staff_user, template, backend, brief):
    return _finish_batch(brief, staff_user, backend)


def test_a_finished_batch_gets_a_report_that_passes(finished):
    batch, jobs = finished
    assert [b.pk for b in runs.due_batches()] == [batch.pk]
    assert runs.finish_due_runs() == 1
    assert runs.due_batches() == []
    report = RunReport.objects.get(batch=batch)
    validation = ValidationReport.objects.get(batch=batch)
    failures = [r for r in validation.results if not r["passed"]]
    assert validation.passed, failures
    assert report.scenes == len(jobs) == report.succeeded == report.attempts
    assert f"Scenes: {len(jobs)} ({len(jobs)} succeeded)" in report.summary_text
    assert report.gpu_seconds == pytest.approx(len(jobs) * jobs[0].attempts.get().telemetry["gpu_seconds"])
    assert {a["sha256"] for s in report.metadata["scenes"] for a in s["artifacts"]} == set(
        Artifact.objects.values_list("sha256", flat=True)
    )


def test_an_unfinished_batch_is_not_due_and_the_api_says_why(
    api_client, staff_user, template, backend, brief
):
    batch, jobs = services.render_brief_submit(brief=brief, user=staff_user)
    assert runs.due_batches() == []
    response = api_client.get(f"/api/v1/batches/{batch.uuid}/summary/")
    assert response.status_code == 409
    assert f"still rendering ({len(jobs)} of {len(jobs)} jobs open)" in response.json()["detail"]
    body = api_client.get(f"/api/v1/batches/{batch.uuid}/").json()
    assert body["finished"] is False and body["run_report"] is None and body["jobs_open"] == len(jobs)


def test_a_tampered_attempt_fails_validation_naming_the_scene_and_values(finished):
    batch, _ = finished
    runs.finish_due_runs()
    report = RunReport.objects.get(batch=batch)
    scene = report.metadata["scenes"][1]
    scene["attempts"][0]["telemetry"]["vram_after_mb"] += 100  # delta no longer after - before
    report.save()
    validation = runs.validate_report(report, trigger="command")
    assert not validation.passed
    failed = [r for r in validation.results if not r["passed"]]
    assert validation.results[0]["passed"] is False  # failures first
    vram = next(r for r in failed if r["subject"] == "scene 2 attempt 1" and "vram" in r["check"])
    assert vram["offending"]


def test_downloads_from_the_api_editor_and_admin_are_the_same_documents(
    finished, api_client, client, staff_user, django_user_model
):
    batch, _ = finished
    runs.finish_due_runs()
    report = RunReport.objects.get(batch=batch)

    from_api = api_client.get(f"/api/v1/batches/{batch.uuid}/metadata/")
    assert from_api.status_code == 200
    assert from_api["Content-Disposition"] == f'attachment; filename="run-{batch.uuid}-metadata.json"'
    assert json.loads(from_api.content) == report.metadata
    summary = api_client.get(f"/api/v1/batches/{batch.uuid}/summary/")
    assert summary["Content-Type"].startswith("text/plain")
    assert summary.content.decode() == report.summary_text
    assert json.loads(api_client.get(f"/api/v1/batches/{batch.uuid}/summary.json").content) == report.summary

    client.force_login(staff_user)
    editor = client.get(f"/briefs/{batch.brief.uuid}/")
    page = editor.content.decode()
    assert f"/runs/{batch.uuid}/summary.txt" in page and "validated" in page
    assert client.get(f"/runs/{batch.uuid}/summary.txt").content.decode() == report.summary_text
    assert json.loads(client.get(f"/runs/{batch.uuid}/metadata.json").content) == report.metadata

    # Staff without the telemetry permissions may not read the admin's copies; operators may.
    assert client.get(f"/admin/telemetry/runreport/{report.pk}/metadata/").status_code == 403
    client.force_login(django_user_model.objects.create_superuser("ops", password="a-long-password-5"))
    admin_meta = client.get(f"/admin/telemetry/runreport/{report.pk}/metadata/")
    assert json.loads(admin_meta.content) == report.metadata
    for url in (
        "/admin/telemetry/runreport/",
        f"/admin/telemetry/runreport/{report.pk}/change/",
        "/admin/telemetry/validationreport/?passed__exact=1",
        f"/admin/telemetry/validationreport/{ValidationReport.objects.get().pk}/change/",
    ):
        assert client.get(url).status_code == 200, url


def test_another_teams_runs_stay_hidden(finished, client, writer):
    batch, _ = finished
    runs.finish_due_runs()
    brief = batch.brief
    brief.team = Team.objects.create(name="Other")
    brief.save()
    client.force_login(writer)
    assert client.get(f"/runs/{batch.uuid}/summary.txt").status_code == 404
    assert client.get(f"/runs/{batch.uuid}/metadata.json").status_code == 404
    assert client.get(f"/admin/telemetry/runreport/{RunReport.objects.get().pk}/metadata/").status_code == 302
    assert client.get("/api/v1/validation-reports/").status_code == 403  # signed in, not staff


def test_validation_reports_api_filters_and_revalidates(finished, api_client):
    batch, _ = finished
    runs.finish_due_runs()
    assert api_client.get("/api/v1/validation-reports/?passed=false").json()["results"] == []
    listed = api_client.get("/api/v1/validation-reports/?passed=true").json()["results"]
    assert [r["batch"] for r in listed] == [str(batch.uuid)]
    assert api_client.get("/api/v1/validation-reports/?passed=maybe").status_code == 400
    again = api_client.post(f"/api/v1/batches/{batch.uuid}/validate/")
    assert again.status_code == 201 and again.json()["trigger"] == "api"
    detail = api_client.get(f"/api/v1/batches/{batch.uuid}/").json()
    assert detail["validation"]["passed"] is True and detail["run_report"]["scenes"] == batch.jobs.count()


def test_validate_runs_exits_nonzero_when_a_run_fails(finished):
    batch, _ = finished
    out = io.StringIO()
    call_command("validate_runs", stdout=out)  # writes the missing report first
    assert f"PASS batch {batch.uuid}" in out.getvalue()
    assert "1 run(s) validated, 0 failed (1 report(s) written first" in out.getvalue()

    report = RunReport.objects.get(batch=batch)
    report.summary["header"]["queue_policy"]["retry_budget"] = 7  # the summary no longer matches
    report.save()
    out = io.StringIO()
    with pytest.raises(SystemExit) as exit_info:
        call_command("validate_runs", "--batch", str(batch.uuid), stdout=out)
    assert exit_info.value.code == 1
    assert f"FAIL batch {batch.uuid}" in out.getvalue()
    assert "retry_budget" in out.getvalue()

    # --rebuild writes the documents again from the database: the run passes once more.
    call_command("validate_runs", "--rebuild", "--json", stdout=(out := io.StringIO()))
    assert json.loads(out.getvalue().splitlines()[0])["passed"] is True


def test_validate_runs_explains_what_it_cannot_validate(staff_user, template, backend, brief):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="no finished run matches") as nothing:
        call_command("validate_runs", stdout=io.StringIO())
    assert nothing.value.returncode == 2  # a pipeline tells "nothing to check" from "a run failed"
    batch, jobs = services.render_brief_submit(brief=brief, user=staff_user)
    with pytest.raises(CommandError, match=rf"still rendering \({len(jobs)} of {len(jobs)} jobs open\)"):
        call_command("validate_runs", "--batch", str(batch.uuid))
    with pytest.raises(CommandError, match="not a UUID"):
        call_command("validate_runs", "--batch", "nope")
    assert RenderJob.objects.filter(state=JobState.QUEUED).count() == len(jobs)  # nothing was touched

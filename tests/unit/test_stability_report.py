"""The stability report over many runs: retries, requeues, contract completeness and failures,
per backend and template, as the selector counts them, as text, and in the admin."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from generation import services
from generation.models import Attempt, AttemptState, Backend, JobState, RenderBatch
from telemetry import runs
from telemetry.stability import StabilityScope, StabilityScopeError, stability_report
from telemetry.stability_report import stability_text
from tests.unit.test_telemetry_attempt_rules import at, h100, success_record

pytestmark = pytest.mark.django_db


def move(job, to_state, **fields):
    assert services.job_transition(job.pk, from_states=set(JobState), to_state=to_state, **fields)


def add_attempt(job, number, backend, *, state, record, error_code="", minutes=0):
    attempt = Attempt.objects.create(
        job=job, number=number, backend=backend, state=state, error_code=error_code, policy=job.policy
    )
    Attempt.objects.filter(pk=attempt.pk).update(
        telemetry=record, finished_at=timezone.now() + timedelta(minutes=minutes)
    )
    return attempt


def ok_record(job, *, number=1, seconds=14.5, used_mb=9800):
    return success_record(
        policy=job.policy, attempt_number=number, finished_at=at(seconds), gpu_after=h100(used_mb=used_mb)
    )


def failed_record(job, *, number=1):
    """An attempt that ended without a verdict (an execution error, a timeout): exit reason unknown."""
    return success_record(
        policy=job.policy,
        attempt_number=number,
        success_detected_at=None,
        exit_reason="unknown",
        output_complete_detected=False,
        output_wait_s=None,
    )


@pytest.fixture
def second_backend(db):
    return Backend.objects.create(name="gpu-02 <b>", base_url="http://127.0.0.1:10", kind="comfyui")


@pytest.fixture
def two_runs(staff_user, template, backend, second_backend, brief):
    """Run 1: scene 1 timed out on the preview backend, was requeued and succeeded on gpu-02; scene 2
    succeeded with a record that breaks the contract. Run 2: scene 1 failed (execution_failed),
    scene 2 succeeded."""
    batch1, (a1, b1) = services.render_brief_submit(brief=brief, user=staff_user)
    move(a1, JobState.DISPATCHED, backend=backend)
    add_attempt(a1, 1, backend, state=AttemptState.FAILED, error_code="timeout", record=failed_record(a1))
    move(a1, JobState.QUEUED)  # the requeue
    move(a1, JobState.DISPATCHED, backend=second_backend)
    add_attempt(
        a1, 2, second_backend, state=AttemptState.SUCCEEDED, record=ok_record(a1, number=2, seconds=40)
    )
    move(a1, JobState.SUCCEEDED)
    move(b1, JobState.DISPATCHED, backend=backend)
    broken = dict(ok_record(b1), vram_delta_mb=1)
    add_attempt(b1, 1, backend, state=AttemptState.SUCCEEDED, record=broken)
    move(b1, JobState.SUCCEEDED)

    batch2, (a2, b2) = services.render_brief_submit(brief=brief, user=staff_user)
    RenderBatch.objects.filter(pk=batch2.pk).update(created_at=timezone.now() + timedelta(seconds=1))
    move(a2, JobState.DISPATCHED, backend=backend)
    add_attempt(
        a2, 1, backend, state=AttemptState.FAILED, error_code="execution_failed", record=failed_record(a2)
    )
    move(a2, JobState.FAILED, error_code="execution_failed", error_message="KSampler raised")
    move(b2, JobState.DISPATCHED, backend=backend)
    add_attempt(b2, 1, backend, state=AttemptState.SUCCEEDED, record=ok_record(b2, seconds=20))
    move(b2, JobState.SUCCEEDED)
    assert runs.finish_due_runs() == 2
    return batch1, batch2


def test_it_counts_retries_requeues_completeness_and_failures_over_the_runs(two_runs):
    batch1, batch2 = two_runs
    report = stability_report(StabilityScope())
    assert [r.batch for r in report.runs] == [str(batch1.uuid), str(batch2.uuid)]
    assert [r.verdict for r in report.runs] == ["failed", "passed"]
    assert (report.runs_validated, report.runs_passed) == (2, 1)
    t = report.totals
    assert (t.jobs, t.jobs_failed, t.attempts, t.attempts_failed) == (4, 1, 5, 2)
    assert (t.retries, t.requeues) == (1, 1)
    assert (t.telemetry_valid, t.attempts_ended) == (4, 5)
    assert t.retries_per_job == t.requeues_per_job == 0.25
    assert [(c.code, c.attempts, c.jobs) for c in t.failures] == [
        ("execution_failed", 1, 1),
        ("timeout", 1, 0),
    ]
    assert not report.stable


def test_per_backend_the_requeue_goes_to_the_backend_that_failed_and_the_retry_to_the_one_that_ran_it(
    two_runs, backend, second_backend
):
    rows = {row.key: row.figures for row in stability_report(StabilityScope()).per_backend}
    assert set(rows) == {backend.name, second_backend.name}
    preview, gpu = rows[backend.name], rows[second_backend.name]
    assert (preview.jobs, preview.attempts, preview.retries, preview.requeues) == (4, 4, 0, 1)
    assert (preview.jobs_failed, preview.attempts_failed) == (1, 2)
    assert (preview.telemetry_valid, preview.attempts_ended) == (3, 4)
    assert (gpu.jobs, gpu.attempts, gpu.retries, gpu.requeues, gpu.jobs_failed) == (1, 1, 1, 0, 0)
    assert gpu.contract_completeness == 1.0


def test_per_template_and_the_filters_narrow_what_is_counted(two_runs, template, second_backend, brief):
    report = stability_report(StabilityScope())
    (row,) = report.per_template
    assert row.key == template.slug and row.figures == report.totals

    on_gpu = stability_report(StabilityScope(backend=second_backend))
    assert [r.batch for r in on_gpu.runs] == [str(two_runs[0].uuid)]
    assert (on_gpu.totals.jobs, on_gpu.totals.attempts, on_gpu.totals.requeues) == (1, 1, 0)
    assert "on backend gpu-02 <b>" in on_gpu.scope

    last_one = stability_report(StabilityScope(last_runs=1, brief=brief))
    assert [r.batch for r in last_one.runs] == [str(two_runs[1].uuid)]
    assert last_one.totals.jobs == 2

    given = stability_report(StabilityScope(batches=(str(two_runs[0].uuid),)))
    assert given.totals.retries == 1 and given.scope == "1 given run(s)"


def test_a_job_that_never_reached_a_backend_is_counted_as_never_placed(staff_user, template, backend, brief):
    batch, (a, _) = services.render_brief_submit(brief=brief, user=staff_user)
    move(a, JobState.FAILED, error_code="missing_model", error_message="no such checkpoint")
    report = stability_report(StabilityScope(batches=(str(batch.uuid),)))
    (row,) = report.per_backend
    assert row.label == "(never placed)" and row.figures.jobs == 2 and row.figures.jobs_failed == 1
    assert [(c.code, c.attempts, c.jobs) for c in report.totals.failures] == [("missing_model", 0, 1)]
    assert report.totals.contract_completeness is None  # no attempt ended: nothing to hold to the contract
    assert report.runs[0].verdict == "not validated"


@pytest.mark.parametrize(
    ("scope", "message"),
    [
        (StabilityScope(last_runs=0), "1 to 1000"),
        (StabilityScope(batches=("nope",)), "not a batch UUID"),
        (StabilityScope(batches=("00000000-0000-0000-0000-000000000000",)), "no batch 00000000"),
        (StabilityScope(since=at(10), until=at(0)), "before its end"),
    ],
)
def test_a_bad_scope_is_refused_with_a_reason(db, scope, message):
    with pytest.raises(StabilityScopeError, match=message):
        stability_report(scope)


def test_the_text_has_totals_runs_and_groups(two_runs, second_backend):
    text = stability_text(stability_report(StabilityScope()))
    assert "Runs: 2 (1 passed validation, 1 failed, 0 not validated; pass rate 50.0%)" in text
    assert "Retries: 1 (0.25 per job)" in text and "Requeues: 1 (0.25 per job)" in text
    assert "Contract completeness: 80.0% (4 of 5 ended attempts pass the attempt rules)" in text
    assert "execution_failed 1/1, timeout 1/0" in text
    assert "validation failed" in text and second_backend.name in text
    assert text.rstrip().endswith("UNSTABLE: 1 run(s) failed validation, 0 not validated, 1 job(s) failed")


# -- the admin page --------------------------------------------------------------------------
STABILITY = "/admin/telemetry/stability/"


@pytest.fixture
def operator(client, django_user_model):
    user = django_user_model.objects.create_superuser("ops", password="a-long-password-5")
    client.force_login(user)
    return user


def test_the_admin_page_shows_the_figures(client, operator, two_runs, second_backend):
    page = client.get(STABILITY)
    assert page.status_code == 200
    html = page.content.decode()
    totals = html.split('id="stability-totals"', 1)[1].split("</table>", 1)[0]
    for cell in (
        "<td>2</td>",
        "<td>1 (0.25)</td>",
        "<td>80.0% (4/5)</td>",
        "execution_failed 1/1, timeout 1/0",
    ):
        assert cell in totals, cell
    backends = html.split('id="stability-backends"', 1)[1].split("</table>", 1)[0]
    assert "gpu-02 &lt;b&gt;" in backends and "<b>" not in backends
    assert f"/admin/telemetry/charts/backends/{second_backend.uuid}/" in backends
    assert str(two_runs[0].uuid) in html

    narrowed = client.get(STABILITY, {"backend": second_backend.name, "runs": 5}).content.decode()
    assert str(two_runs[1].uuid) not in narrowed and str(two_runs[0].uuid) in narrowed


def test_the_admin_page_refuses_bad_filters_with_a_message(client, operator, two_runs):
    assert client.get(STABILITY, {"runs": 0}).status_code == 400
    page = client.get(STABILITY, {"backend": "no-such-backend"})
    assert page.status_code == 400 and "Select a valid choice" in page.content.decode()


def test_the_admin_index_and_the_validation_list_link_to_it(client, operator):
    assert STABILITY in client.get("/admin/").content.decode()
    assert STABILITY in client.get("/admin/telemetry/validationreport/").content.decode()
    assert STABILITY in client.get("/admin/telemetry/").content.decode()
    assert STABILITY not in client.get("/admin/generation/").content.decode()


def test_only_staff_with_the_telemetry_view_permissions_see_it(client, staff_user, writer):
    client.force_login(writer)
    response = client.get(STABILITY)
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    client.force_login(staff_user)
    assert client.get(STABILITY).status_code == 403
    assert STABILITY not in client.get("/admin/").content.decode()
    staff_user.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_runreport", "view_validationreport"])
    )
    assert client.get(STABILITY).status_code == 200

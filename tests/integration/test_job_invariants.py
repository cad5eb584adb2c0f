"""A stateful property test: random sequences of submits, cancels, dispatcher crashes,
a backend that forgets everything, duplicate and out-of-order events, checked against
the job invariants after every step. The backend is a real preview server process."""

import os
import sys
import time

import httpx
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from briefs.models import Brief
from briefs.services import brief_create
from generation import attempts, services
from generation.dispatch import dispatch_round
from generation.models import (
    TERMINAL_STATES,
    Artifact,
    Attempt,
    AttemptState,
    Backend,
    JobState,
    RenderJob,
)
from generation.providers.base import ErrorCode, ProviderError
from generation.reconciler import reconcile
from tests.stack import free_port, running

pytestmark = pytest.mark.integration

ERRORS = [ErrorCode.UNAVAILABLE, ErrorCode.EXECUTION_FAILED, ErrorCode.LOST, ErrorCode.RATE_LIMITED]


@pytest.fixture(scope="module")
def quick_preview(tmp_path_factory):
    port = free_port()
    data = tmp_path_factory.mktemp("invariants")
    argv = [sys.executable, "manage.py", "preview_server", "--port", str(port), "--render-seconds", "0.05"]
    with running(
        "preview-invariants", [*argv, "--data-dir", str(data)], env=None, log_dir=data / "logs", port=port
    ):
        yield f"http://127.0.0.1:{port}"


def check_invariants() -> None:
    for job in RenderJob.objects.all():
        attempts_out = job.attempts.filter(state__in=[AttemptState.SUBMITTING, AttemptState.RUNNING]).count()
        assert attempts_out <= 1, f"job {job.pk} has {attempts_out} attempts out at once"
        # A backend that was unreachable or forgot the render is the backend's state: those attempts
        # are bounded by the policy's max wait, not by the retry budget.
        spent = job.attempts.exclude(error_code__in=attempts.BACKEND_STATE_ERRORS).count()
        assert spent <= 1 + job.policy["retry_budget"], f"job {job.pk} spent {spent} attempts of its budget"
        if job.state in TERMINAL_STATES:
            assert job.finished_at is not None
        if job.state == JobState.SUCCEEDED:
            assert Artifact.objects.filter(job=job).exists(), f"job {job.pk} succeeded without an artifact"
        if job.state in (JobState.FAILED, JobState.LOST):
            assert job.error_code
        if job.state in (JobState.DISPATCHED, JobState.RUNNING, JobState.FETCHING):
            assert job.backend_id is not None


class JobMachine(RuleBasedStateMachine):
    url = ""
    user = None

    @initialize()
    def clean_world(self) -> None:
        RenderJob.objects.all().delete()
        Brief.objects.all().delete()
        Backend.objects.all().delete()
        self.backend = Backend.objects.create(name="preview", base_url=self.url, capacity=1, queue_depth=1)
        self.brief = brief_create(user=self.user, title="Invariants", scenes=[{"title": "S", "prompt": "p"}])

    @rule(budget=st.sampled_from([0, 1]))
    def submit(self, budget: int) -> None:
        # again: histories hold several renders of the one scene at once, as "Render again" makes.
        services.render_job_submit(
            scene=self.brief.scenes.get(),
            user=self.user,
            policy_overrides={"retry_budget": budget},
            again=True,
        )

    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        jobs = list(RenderJob.objects.values_list("pk", flat=True))
        if jobs:
            services.render_job_cancel(job=RenderJob.objects.get(pk=data.draw(st.sampled_from(jobs))))

    @rule()
    def dispatch(self) -> None:
        dispatch_round()

    @rule()
    def dispatcher_crashes_after_claiming(self) -> None:
        # Claim and record an attempt, then die before sending it; the lease is already over.
        crashed = []
        dispatch_round(limit=1, submit=crashed.append)
        for attempt in crashed:
            RenderJob.objects.filter(pk=attempt.job_id).update(lease_expires_at=time_in_past())

    @rule()
    def check_renders(self) -> None:
        for attempt_id in Attempt.objects.filter(state=AttemptState.RUNNING).values_list("pk", flat=True):
            attempts.attempt_check(attempt_id)

    @rule()
    def backend_forgets_everything(self) -> None:
        # What a ComfyUI restart does: queue and history come back empty.
        httpx.post(f"{self.url}/queue", json={"clear": True})
        httpx.post(f"{self.url}/interrupt")
        httpx.post(f"{self.url}/history", json={"clear": True})

    @rule(data=st.data())
    def duplicate_or_late_event(self, data: st.DataObject) -> None:
        ids = list(Attempt.objects.values_list("pk", flat=True))
        if not ids:
            return
        attempt_id = data.draw(st.sampled_from(ids))
        kind = data.draw(st.sampled_from(["started", "progress", "finished", "failed"]))
        if kind == "started":
            attempts.attempt_started(attempt_id)
        elif kind == "progress":
            attempts.attempt_progress(attempt_id, value=1, maximum=2)
        elif kind == "finished":
            attempts.attempt_finalize(attempt_id)
        else:
            code = data.draw(st.sampled_from(ERRORS))
            attempts.attempt_failed(Attempt.objects.get(pk=attempt_id), ProviderError(code, "injected"))

    @rule()
    def reconcile(self) -> None:
        reconcile()

    @invariant()
    def jobs_hold_their_invariants(self) -> None:
        check_invariants()

    def teardown(self) -> None:
        # Left alone, every job ends.
        deadline = time.monotonic() + 30
        while RenderJob.objects.exclude(state__in=TERMINAL_STATES).exists():
            assert time.monotonic() < deadline, list(RenderJob.objects.values_list("state", flat=True))
            RenderJob.objects.filter(state__in=[JobState.DISPATCHED, JobState.FETCHING]).update(
                lease_expires_at=time_in_past()
            )
            Backend.objects.update(health_state="healthy")
            reconcile()
            time.sleep(0.1)
        check_invariants()


def time_in_past():
    from datetime import timedelta

    from django.utils import timezone

    return timezone.now() - timedelta(seconds=1)


@pytest.mark.django_db(transaction=True)
def test_random_histories_keep_every_job_invariant(quick_preview, staff_user, template, settings_override):
    JobMachine.url = quick_preview
    JobMachine.user = staff_user
    run_state_machine_as_test(
        JobMachine,
        settings=settings(
            max_examples=int(os.environ.get("INVARIANT_EXAMPLES", "20")),
            stateful_step_count=15,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )


@pytest.fixture
def settings_override(settings):
    settings.RENDER_POLL_INTERVAL = 0.1
    settings.RENDER_POST_EXECUTION_TIMEOUT = 2
    return settings

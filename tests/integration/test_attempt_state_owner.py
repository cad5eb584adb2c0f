"""An attempt's end and its job's move share one transaction: a process killed between the two
writes leaves neither, and the job still reaches a final state, once. Rows left in flight with no
live attempt (written before that rule, or edited by hand) are swept by the reconciler."""

import os
import subprocess
import sys
import textwrap
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from generation import attempts, services
from generation.dispatch import _claim
from generation.models import Attempt, AttemptState, JobEvent, JobState, RenderJob
from generation.providers.base import ErrorCode, ProviderError
from generation.reconciler import reconcile
from tests.stack import BASE_DIR, database_url_of

pytestmark = pytest.mark.integration

TERMINAL = ["succeeded", "failed", "cancelled", "lost"]


@pytest.fixture
def running_job(transactional_db, brief, template, backend, staff_user):
    job = services.render_job_submit(
        scene=brief.scenes.first(), user=staff_user, template=template, policy_overrides={"retry_budget": 0}
    )
    attempt = _claim(job, backend)
    assert attempt is not None
    attempts.attempt_started(attempt.pk)
    assert RenderJob.objects.get(pk=job.pk).state == JobState.RUNNING
    return job, attempt


def _terminal_events(job: RenderJob) -> int:
    return JobEvent.objects.filter(job=job, to_state__in=TERMINAL).count()


def test_a_process_killed_between_an_attempts_end_and_its_jobs_leaves_both_as_they_were(running_job):
    job, attempt = running_job
    # Another process ends the attempt and is killed (SIGKILL) at the moment its job would move.
    script = textwrap.dedent(
        f"""
        import os, signal, django
        django.setup()
        from generation import attempts
        from generation.models import Attempt
        from generation.providers.base import ErrorCode, ProviderError

        def killed_here(*args, **kwargs):
            assert Attempt.objects.get(pk={attempt.pk}).state == "failed"  # the attempt's end is written
            os.kill(os.getpid(), signal.SIGKILL)

        attempts.job_after_attempt = killed_here
        attempts.attempt_failed(
            Attempt.objects.get(pk={attempt.pk}), ProviderError(ErrorCode.EXECUTION_FAILED, "KSampler raised")
        )
        """
    )
    env = {"DATABASE_URL": database_url_of(django_settings.DATABASES["default"])}
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=BASE_DIR,
        env=os.environ | env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == -9, done.stderr
    # Neither write survived: the attempt is still out, the job still running.
    assert Attempt.objects.get(pk=attempt.pk).state == AttemptState.RUNNING
    assert RenderJob.objects.get(pk=job.pk).state == JobState.RUNNING
    assert _terminal_events(job) == 0

    # The next check hears the same failure from the backend and ends both, once.
    attempts.attempt_failed(
        Attempt.objects.get(pk=attempt.pk), ProviderError(ErrorCode.EXECUTION_FAILED, "KSampler raised")
    )
    attempts.attempt_failed(
        Attempt.objects.get(pk=attempt.pk), ProviderError(ErrorCode.EXECUTION_FAILED, "KSampler raised")
    )
    job.refresh_from_db()
    assert (job.state, job.error_code) == (JobState.FAILED, "execution_failed")
    assert Attempt.objects.get(pk=attempt.pk).state == AttemptState.FAILED
    assert _terminal_events(job) == 1


def test_a_job_left_in_flight_with_an_ended_attempt_is_swept_to_its_final_state_once(running_job):
    job, attempt = running_job
    # What a crash between two separate writes used to leave behind.
    Attempt.objects.filter(pk=attempt.pk).update(
        state=AttemptState.FAILED, error_code="execution_failed", error_message="KSampler raised"
    )
    RenderJob.objects.filter(pk=job.pk).update(updated_at=timezone.now() - timedelta(minutes=5))

    assert reconcile()["swept"] == 1
    assert reconcile()["swept"] == 0
    job.refresh_from_db()
    assert (job.state, job.error_code) == (JobState.FAILED, "execution_failed")
    assert _terminal_events(job) == 1


def test_a_job_that_just_moved_is_not_swept_before_dispatch_gives_it_an_attempt(running_job):
    job, attempt = running_job
    Attempt.objects.filter(pk=attempt.pk).update(state=AttemptState.FAILED, error_code="execution_failed")
    assert reconcile()["swept"] == 0
    assert RenderJob.objects.get(pk=job.pk).state == JobState.RUNNING

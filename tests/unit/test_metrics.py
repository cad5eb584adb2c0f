"""The Prometheus endpoint: who may read it, and what it counts."""

from datetime import timedelta

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.authtoken.models import Token

from generation import services
from generation.models import Attempt, AttemptState, JobState, RenderJob
from tests.unit.test_telemetry_attempt_rules import success_record


def _families(response) -> dict:
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return {family.name: family for family in text_string_to_metric_families(response.content.decode())}


def _value(family, _sample: str | None = None, **labels) -> float:
    for sample in family.samples:
        if sample.name == (_sample or family.name) and all(
            sample.labels.get(k) == v for k, v in labels.items()
        ):
            return sample.value
    raise AssertionError(f"no sample {labels} in {family.samples}")


@pytest.mark.django_db
def test_metrics_refuse_anonymous_writers_and_wrong_tokens(client, writer, settings):
    settings.METRICS_TOKEN = "scrape-secret-42"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    writer_token = Token.objects.create(user=writer)
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Token {writer_token.key}").status_code == 401
    client.force_login(writer)
    response = client.get("/metrics")
    assert response.status_code == 401
    assert "Staff only" in response.content.decode()


@pytest.mark.django_db
def test_no_bearer_token_is_accepted_when_none_is_configured(client, settings):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 401


@pytest.mark.django_db
def test_metrics_count_jobs_backends_and_durations(client, staff_user, template, backend, brief, settings):
    settings.METRICS_TOKEN = "scrape-secret-42"
    _, jobs = services.render_brief_submit(brief=brief, user=staff_user)
    done, running = jobs[0], jobs[1]
    now = timezone.now()
    for job, state, seconds in ((done, AttemptState.SUCCEEDED, 3.0), (running, AttemptState.RUNNING, None)):
        attempt = Attempt.objects.create(job=job, number=1, backend=backend, state=state)
        Attempt.objects.filter(pk=attempt.pk).update(
            created_at=now - timedelta(seconds=10),
            submitted_at=now - timedelta(seconds=10) + timedelta(milliseconds=20),
            finished_at=(now - timedelta(seconds=10) + timedelta(milliseconds=20, seconds=seconds))
            if seconds
            else None,
        )
    Attempt.objects.filter(job=done).update(telemetry=success_record())  # VRAM 9800 MiB in use after
    RenderJob.objects.filter(pk=done.pk).update(state=JobState.SUCCEEDED, backend=backend)
    RenderJob.objects.filter(pk=running.pk).update(state=JobState.RUNNING, backend=backend)

    families = _families(client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret-42"))

    jobs_family = families["storycore_jobs"]
    assert _value(jobs_family, state="succeeded") == 1
    assert _value(jobs_family, state="running") == 1
    assert _value(jobs_family, state="queued") == len(jobs) - 2
    assert _value(families["storycore_jobs_waiting"]) == len(jobs) - 2
    assert _value(families["storycore_backend_jobs_in_flight"], backend=backend.name) == 1
    assert _value(families["storycore_backend_slots"], backend=backend.name) == backend.slots
    assert _value(families["storycore_backend_state"], backend=backend.name, state="unknown") == 1
    assert _value(families["storycore_backend_state"], backend=backend.name, state="healthy") == 0

    used = families["storycore_backend_vram_used_bytes"]
    assert _value(used, backend=backend.name) == 9800 * 1024 * 1024

    render = families["storycore_render_duration_seconds"]
    assert (
        _value(render, backend=backend.name, le="2.5", _sample="storycore_render_duration_seconds_bucket")
        == 0
    )
    assert (
        _value(render, backend=backend.name, le="5.0", _sample="storycore_render_duration_seconds_bucket")
        == 1
    )
    assert _value(render, backend=backend.name, _sample="storycore_render_duration_seconds_count") == 1
    assert _value(
        render, backend=backend.name, _sample="storycore_render_duration_seconds_sum"
    ) == pytest.approx(3.0)
    overhead = families["storycore_submit_overhead_seconds"]
    assert _value(overhead, backend=backend.name, _sample="storycore_submit_overhead_seconds_count") == 2
    assert (
        _value(overhead, backend=backend.name, le="0.025", _sample="storycore_submit_overhead_seconds_bucket")
        == 2
    )
    assert (
        _value(overhead, backend=backend.name, le="0.01", _sample="storycore_submit_overhead_seconds_bucket")
        == 0
    )


@pytest.mark.django_db
def test_staff_read_metrics_with_their_session_or_api_token(client, staff_user):
    token = Token.objects.create(user=staff_user)
    assert "storycore_jobs" in _families(client.get("/metrics", HTTP_AUTHORIZATION=f"Token {token.key}"))
    client.force_login(staff_user)
    assert "storycore_jobs" in _families(client.get("/metrics"))

"""`manage.py stability_sweep` against the real stack: the watcher, a Celery worker and the
preview server render each batch; the sweep waits for each, then prints the report."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from briefs.services import brief_create
from generation.models import Attempt, RenderBatch
from telemetry.models import ValidationReport

pytestmark = pytest.mark.integration


def test_a_sweep_renders_the_brief_run_after_run_and_reports_them_stable(studio):
    brief = brief_create(
        user=studio["user"],
        title="Sweep",
        scenes=[{"title": "One", "prompt": "a quiet harbour"}, {"title": "Two", "prompt": "a ferry at dawn"}],
    )
    out = io.StringIO()
    call_command(
        "stability_sweep", "--brief", str(brief.uuid), "--runs", "2", "--poll-interval", "0.2", stdout=out
    )  # exit status 0: returns normally
    text = out.getvalue()
    batches = list(RenderBatch.objects.filter(brief=brief).order_by("created_at"))
    assert len(batches) == 2
    # One after another: the second batch was submitted only once the first had ended.
    first_done = max(job.finished_at for job in batches[0].jobs.all())
    assert batches[1].created_at >= first_done
    assert Attempt.objects.filter(job__batch__in=batches).count() == 4
    assert all(ValidationReport.objects.filter(batch=b, passed=True).exists() for b in batches), text
    assert "2" in text and "runs" in text.lower()

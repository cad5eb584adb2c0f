"""Nothing rendered twice: a preview server restarted (empty queue and history) after a render
wrote its files. The render is fetched from what the server still serves, not run again, whether
the files are found under the attempt's prefix or named by the `executed` messages heard."""

import time

import httpx
import pytest

from generation import attempts, services
from generation.dispatch import _claim
from generation.models import Artifact, Attempt, Backend, JobEvent, JobState, RenderJob
from generation.providers.base import RemoteOutput
from generation.providers.checks import CheckOutcome
from tests.stack import free_port, start_preview_server

pytestmark = pytest.mark.integration


@pytest.fixture
def restartable(tmp_path, transactional_db):
    port = free_port()
    log = (tmp_path / "preview.log").open("ab")
    state = {"process": start_preview_server(port, tmp_path / "data", log, render_seconds=0.3)}

    def restart() -> None:
        state["process"].kill()
        state["process"].wait()
        state["process"] = start_preview_server(port, tmp_path / "data", log, render_seconds=0.3)

    yield f"http://127.0.0.1:{port}", restart
    state["process"].kill()
    state["process"].wait()
    log.close()


def _rendered_and_forgotten(url: str, restart, brief, template, staff_user) -> tuple[RenderJob, Attempt]:
    backend = Backend.objects.create(name="Restarting", base_url=url, capacity=1)
    job = services.render_job_submit(scene=brief.scenes.first(), user=staff_user, template=template)
    attempt = _claim(job, backend)
    attempts.attempt_submit(Attempt.objects.select_related("backend").get(pk=attempt.pk))
    deadline = time.monotonic() + 30
    while str(attempt.uuid) not in (history := httpx.get(f"{url}/history", timeout=5).json()):
        assert time.monotonic() < deadline, "the render never finished"
        time.sleep(0.1)
    assert list(history) == [str(attempt.uuid)]
    restart()
    assert httpx.get(f"{url}/history", timeout=5).json() == {}
    return job, Attempt.objects.select_related("backend").get(pk=attempt.pk)


def _assert_fetched_not_rerun(url: str, job: RenderJob, attempt: Attempt) -> None:
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED
    assert JobEvent.objects.filter(job=job, to_state="succeeded").count() == 1
    assert Attempt.objects.filter(job=job).count() == 1
    artifact = Artifact.objects.get(job=job)
    assert artifact.attempt_id == attempt.pk and artifact.width == 512
    # Counted at the backend: the restarted server ran no prompt, and nothing was queued there.
    assert httpx.get(f"{url}/history", timeout=5).json() == {}
    assert httpx.get(f"{url}/queue", timeout=5).json() == {"queue_running": [], "queue_pending": []}


def test_files_under_the_attempts_prefix_are_fetched_after_a_restart(
    restartable, brief, template, staff_user
):
    url, restart = restartable
    job, attempt = _rendered_and_forgotten(url, restart, brief, template, staff_user)
    assert attempts.attempt_check(attempt.pk) == CheckOutcome.UNKNOWN  # once could be a blink
    assert attempts.attempt_check(attempt.pk) == CheckOutcome.DONE
    _assert_fetched_not_rerun(url, job, attempt)


def test_outputs_named_by_executed_messages_are_fetched_after_a_restart(
    restartable, brief, template, staff_user, tmp_path
):
    url, restart = restartable
    job, attempt = _rendered_and_forgotten(url, restart, brief, template, staff_user)
    # The file the `executed` message named, moved where no prefix search would look.
    written = next((tmp_path / "data").rglob(f"{attempt.uuid}_00001_.png"))
    moved = written.with_name("kept_00001_.png")
    written.rename(moved)
    attempts.attempt_outputs_reported(
        attempt.pk,
        (
            RemoteOutput(
                node_id="9", filename=moved.name, subfolder="storycore", folder_type="output", kind="image"
            ),
        ),
    )
    attempts.attempt_check(attempt.pk)
    assert attempts.attempt_check(attempt.pk) == CheckOutcome.DONE
    _assert_fetched_not_rerun(url, job, attempt)


def test_a_render_whose_files_are_gone_too_is_lost_and_runs_again(
    restartable, brief, template, staff_user, tmp_path
):
    url, restart = restartable
    job, attempt = _rendered_and_forgotten(url, restart, brief, template, staff_user)
    for path in (tmp_path / "data").rglob(f"{attempt.uuid}_*"):
        path.unlink()
    attempts.attempt_check(attempt.pk)
    assert attempts.attempt_check(attempt.pk) == CheckOutcome.LOST
    job.refresh_from_db()
    assert job.state == JobState.QUEUED  # a restart is the backend's state: queued again, budget kept

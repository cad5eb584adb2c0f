"""The ComfyUI adapter and the render runner when things go wrong: a dropped
socket, a backend that dies, cancels, a redelivered task. Real preview server
process, real sockets; the proxy in between breaks them on purpose."""

import sys
import threading
import time
import uuid

import pytest

from generation import services
from generation.models import Artifact, Attempt, JobState, RenderJob
from generation.providers.base import ErrorCode, EventKind, RemoteHandle, RenderRequest, RetryClass
from generation.providers.comfyui import ComfyUIProvider, Timeouts
from generation.runner import render_job_execute
from tests.proxy import FlakyProxy
from tests.stack import free_port, running

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def slow_preview(tmp_path_factory):
    """A preview server whose renders take long enough to break them halfway."""
    port = free_port()
    data = tmp_path_factory.mktemp("slow-preview")
    argv = [sys.executable, "manage.py", "preview_server", "--port", str(port), "--render-seconds", "2.5"]
    argv += ["--data-dir", str(data)]
    with running("slow-preview", argv, env=None, log_dir=data / "logs", port=port):
        yield port


@pytest.fixture
def proxy(slow_preview):
    proxy = FlakyProxy(target_port=slow_preview)
    yield proxy
    proxy.close()


def _provider(url: str) -> ComfyUIProvider:
    return ComfyUIProvider(
        url, timeouts=Timeouts(connect=2, poll_interval=0.3, max_wait=30, post_execution=5)
    )


def _workflow(template, text: str) -> dict:
    from generation.workflow_binding import bind_workflow, targets_from_json

    values = {"prompt": text, "seed": 7, "filename_prefix": f"storycore/{uuid.uuid4()}"}
    return bind_workflow(template.graph, targets_from_json(template.bindings), values)


def _wait_for(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


@pytest.mark.django_db(transaction=True)
def test_a_job_whose_websocket_is_killed_mid_render_still_finishes_by_polling(
    proxy, template, staff_user, brief
):
    backend = services.backend_register_preview(url=proxy.url)
    job = services.render_job_submit(scene=brief.scenes.first(), user=staff_user, backend=backend)
    worker = threading.Thread(target=render_job_execute, kwargs={"job_id": job.pk})
    worker.start()
    _wait_for(lambda: RenderJob.objects.filter(pk=job.pk, progress_value__gt=0).exists())
    proxy.refuse_websockets = True
    proxy.kill_websockets()
    worker.join(60)
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED, job.error_message
    assert Artifact.objects.filter(job=job).count() == 1
    attempt = Attempt.objects.get(job=job)
    assert any("websocket closed mid-render" in note for note in attempt.telemetry["fallback_notes"])
    assert proxy.count(b"POST /prompt") == 1


@pytest.mark.django_db
def test_a_backend_that_goes_down_mid_render_fails_the_render_as_unavailable(proxy, template):
    with _provider(proxy.url) as provider:
        handle = provider.submit(
            RenderRequest(attempt_id=str(uuid.uuid4()), workflow=_workflow(template, "a storm"))
        )
        events = provider.events(handle)
        for event in events:
            if event.kind == EventKind.PROGRESS:
                break
        proxy.go_down()
        last = list(events)[-1]
    assert last.kind == EventKind.FAILED
    assert last.error.code == ErrorCode.UNAVAILABLE
    assert last.error.retry == RetryClass.ANOTHER_BACKEND
    assert "cannot be reached" in last.error.message


@pytest.mark.django_db
def test_cancel_deletes_a_queued_prompt_and_interrupts_a_running_one(slow_preview, template):
    url = f"http://127.0.0.1:{slow_preview}"
    with _provider(url) as provider:
        first = provider.submit(
            RenderRequest(attempt_id=str(uuid.uuid4()), workflow=_workflow(template, "first"))
        )
        second = provider.submit(
            RenderRequest(attempt_id=str(uuid.uuid4()), workflow=_workflow(template, "second"))
        )
        _wait_for(lambda: provider.locate(first) == "running")
        assert provider.locate(second) == "pending"
        provider.cancel(second)
        assert provider.locate(second) == "unknown"
        provider.cancel(first)
        final = list(provider.events(first))[-1]
    assert final.kind == EventKind.FAILED
    assert final.error.code == ErrorCode.CANCELLED


@pytest.mark.django_db(transaction=True)
def test_a_redelivered_task_reattaches_instead_of_submitting_again(proxy, template, staff_user, brief):
    backend = services.backend_register_preview(url=proxy.url)
    job = services.render_job_submit(scene=brief.scenes.first(), user=staff_user, backend=backend)
    # The first worker submitted, recorded the handle, then died.
    services.job_transition(
        job.pk, from_states={JobState.QUEUED}, to_state=JobState.DISPATCHED, backend=backend
    )
    attempt = Attempt.objects.create(job=job, number=1, backend=backend, state="running")
    Attempt.objects.filter(pk=attempt.pk).update(remote_handle=str(attempt.uuid))
    with _provider(proxy.url) as provider:
        workflow = _workflow(template, "already running")
        provider.submit(RenderRequest(attempt_id=str(attempt.uuid), workflow=workflow))
    assert proxy.count(b"POST /prompt") == 1
    render_job_execute(job_id=job.pk)
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED, job.error_message
    assert proxy.count(b"POST /prompt") == 1
    assert Artifact.objects.filter(job=job).count() == 1


@pytest.mark.django_db(transaction=True)
def test_an_attempt_the_backend_never_saw_is_submitted_on_redelivery(proxy, template, staff_user, brief):
    backend = services.backend_register_preview(url=proxy.url)
    job = services.render_job_submit(scene=brief.scenes.first(), user=staff_user, backend=backend)
    services.job_transition(
        job.pk, from_states={JobState.QUEUED}, to_state=JobState.DISPATCHED, backend=backend
    )
    attempt = Attempt.objects.create(job=job, number=1, backend=backend)
    Attempt.objects.filter(pk=attempt.pk).update(remote_handle=str(attempt.uuid))
    render_job_execute(job_id=job.pk)
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED, job.error_message
    assert proxy.count(b"POST /prompt") == 1
    assert RemoteHandle("comfyui", str(attempt.uuid)).remote_id == Attempt.objects.get(job=job).remote_handle

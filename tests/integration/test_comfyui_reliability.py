"""The ComfyUI adapter, the render watcher and the reconciler when things go
wrong: a dropped socket, a backend that dies, cancels, a worker that died
mid-submit. Real preview server process, real sockets; the proxy in between
breaks them on purpose. Renders are followed by the watcher itself, or by its
socket loop and checks without the database (tests/following.py)."""

import asyncio
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.utils import timezone

from generation import services
from generation.attempts import attempt_check
from generation.models import Artifact, Attempt, JobState, RenderJob
from generation.providers.base import ErrorCode, EventKind, RemoteHandle, RenderRequest, RetryClass
from generation.providers.comfyui import ComfyUIProvider, Timeouts
from generation.reconciler import reconcile
from generation.watcher import Watcher
from tests.following import SocketFollowing
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


MAX_WAIT = 30.0


def _provider(url: str) -> ComfyUIProvider:
    return ComfyUIProvider(url, timeouts=Timeouts(connect=2, poll_interval=0.3, post_execution=5))


@contextmanager
def _followed(url: str):
    """A provider, and the render watcher's socket loop on its client id (tests/following.py)."""
    with _provider(url) as provider:
        following = SocketFollowing(provider).start()
        try:
            yield provider, following
        finally:
            following.stop()


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


@contextmanager
def watcher_running():
    """The render watcher on its own event loop in a thread, as `manage.py render_watcher` runs it."""
    loop = asyncio.new_event_loop()
    watcher = Watcher(workers=4)
    thread = threading.Thread(target=loop.run_until_complete, args=(watcher.run(),), daemon=True)
    thread.start()
    try:
        yield watcher
    finally:
        loop.call_soon_threadsafe(watcher.stopping.set)
        thread.join(30)


@pytest.fixture
def quick(settings):
    settings.RENDER_POLL_INTERVAL = 0.3
    settings.DISPATCH_INTERVAL = 0.3
    settings.RECONCILE_INTERVAL = 60
    return settings


@pytest.mark.django_db(transaction=True)
def test_a_job_whose_websocket_is_killed_mid_render_still_finishes_by_polling(
    proxy, template, staff_user, brief, quick
):
    backend = services.backend_register_preview(url=proxy.url)
    with watcher_running():
        _wait_for(lambda: type(backend).objects.filter(pk=backend.pk, socket_connected=True).exists())
        job = services.render_job_submit(scene=brief.scenes.first(), user=staff_user)
        _wait_for(lambda: RenderJob.objects.filter(pk=job.pk, progress_value__gt=0).exists())
        proxy.refuse_websockets = True
        proxy.kill_websockets()
        _wait_for(lambda: RenderJob.objects.get(pk=job.pk).is_terminal, timeout=30)
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED, job.error_message
    assert Artifact.objects.filter(job=job).count() == 1
    assert proxy.count(b"POST /prompt") == 1
    attempt = Attempt.objects.get(job=job)
    assert attempt.telemetry["history_exit_reason"] == "success"


@pytest.mark.django_db
def test_a_backend_that_goes_down_mid_render_fails_the_render_as_unavailable(proxy, template):
    with _followed(proxy.url) as (provider, following):
        handle = provider.submit(
            RenderRequest(attempt_id=str(uuid.uuid4()), workflow=_workflow(template, "a storm"))
        )
        following.follow(handle, lambda event: event.kind == EventKind.PROGRESS, max_wait=MAX_WAIT)
        proxy.go_down()
        # The socket drops and cannot come back; three checks in a row find nobody (attempt_check's rule).
        last = following.follow(handle, max_wait=MAX_WAIT)[-1]
    assert last.kind == EventKind.FAILED
    assert last.error.code == ErrorCode.UNAVAILABLE
    assert last.error.retry == RetryClass.ANOTHER_BACKEND
    assert "cannot be reached" in last.error.message
    assert following.socket_changes == [True, False]


@pytest.mark.django_db
def test_cancel_deletes_a_queued_prompt_and_interrupts_a_running_one(slow_preview, template):
    url = f"http://127.0.0.1:{slow_preview}"
    with _followed(url) as (provider, following):
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
        final = following.follow(first, max_wait=MAX_WAIT)[-1]
    assert final.kind == EventKind.FAILED
    assert final.error.code == ErrorCode.CANCELLED


def _settle(job, timeout: float = 30.0) -> RenderJob:
    """Reconcile until the job ends, as beat would, without a watcher."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.is_terminal:
            return job
        reconcile()
        time.sleep(0.2)
    raise AssertionError(f"job still {job.state}")


@pytest.mark.django_db(transaction=True)
def test_a_render_submitted_before_a_crash_is_followed_not_submitted_again(
    proxy, template, staff_user, brief, quick
):
    backend = services.backend_register_preview(url=proxy.url)
    job = services.render_job_submit(scene=brief.scenes.first(), user=staff_user)
    # A worker dispatched it, submitted it, and died before recording anything more.
    services.job_transition(
        job.pk, from_states={JobState.QUEUED}, to_state=JobState.DISPATCHED, backend=backend
    )
    attempt = Attempt.objects.create(
        job=job, number=1, backend=backend, state="running", submitted_at=timezone.now()
    )
    Attempt.objects.filter(pk=attempt.pk).update(remote_handle=str(attempt.uuid))
    with _provider(proxy.url) as provider:
        provider.submit(
            RenderRequest(attempt_id=str(attempt.uuid), workflow=_workflow(template, "already out"))
        )
    assert attempt_check(attempt.pk) in ("pending", "running")
    job = _settle(job)
    assert job.state == JobState.SUCCEEDED, job.error_message
    assert proxy.count(b"POST /prompt") == 1
    assert Artifact.objects.filter(job=job).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_submit_that_never_reached_the_backend_is_sent_once_without_spending_the_budget(
    proxy, template, staff_user, brief, quick
):
    backend = services.backend_register_preview(url=proxy.url)
    job = services.render_job_submit(
        scene=brief.scenes.first(), user=staff_user, policy_overrides={"retry_budget": 0}
    )
    # Claimed, then the worker died before sending anything; its lease has run out.
    services.job_transition(
        job.pk,
        from_states={JobState.QUEUED},
        to_state=JobState.DISPATCHED,
        backend=backend,
        lease_expires_at=timezone.now() - timedelta(seconds=1),
    )
    first = Attempt.objects.create(job=job, number=1, backend=backend)
    Attempt.objects.filter(pk=first.pk).update(remote_handle=str(first.uuid))
    job = _settle(job)
    assert job.state == JobState.SUCCEEDED, job.error_message
    assert proxy.count(b"POST /prompt") == 1
    assert list(Attempt.objects.filter(job=job).values_list("state", flat=True)) == ["lost", "succeeded"]


@pytest.mark.django_db(transaction=True)
def test_a_prompt_sent_after_its_attempt_was_given_up_is_withdrawn(proxy, template, staff_user, brief, quick):
    from generation.attempts import attempt_create, attempt_submit

    backend = services.backend_register_preview(url=proxy.url)
    job = services.render_job_submit(scene=brief.scenes.first(), user=staff_user)
    services.job_transition(
        job.pk, from_states={JobState.QUEUED}, to_state=JobState.DISPATCHED, backend=backend
    )
    attempt = attempt_create(RenderJob.objects.get(pk=job.pk), backend)
    # The reconciler decided the submit never arrived, just before it did.
    Attempt.objects.filter(pk=attempt.pk).update(state="lost", error_code="lost")
    attempt_submit(Attempt.objects.select_related("backend").get(pk=attempt.pk))
    assert proxy.count(b"POST /prompt") == 1
    with _provider(proxy.url) as provider:
        handle = RemoteHandle("comfyui", str(attempt.uuid))
        place = provider.locate(handle)
        if place == "done":  # it had started: interrupted, not rendered
            assert provider.outcome(handle).error.code == ErrorCode.CANCELLED
        else:
            assert place == "unknown"  # deleted from the queue before it ran

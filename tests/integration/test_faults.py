"""Fault tests: batches of 50 keep going through dropped sockets, a dead backend, a
wiped or frozen broker, lost submit answers and killed workers. Real processes on
loopback (Valkey, two preview servers behind breakable proxies and a slow third one,
the render watcher, a Celery worker); each test prints what it counted."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import redis
from django.conf import settings as django_settings

from briefs.services import brief_create
from generation import services
from generation.models import TERMINAL_STATES, Artifact, Attempt, Backend, RenderJob
from storycore.valkey import valkey_server_argv
from tests.proxy import FlakyProxy
from tests.stack import (
    BIN,
    database_url_of,
    free_port,
    running_together,
    settle_runs,
    stack_env,
    wait_for_port,
)

pytestmark = pytest.mark.integration

BATCH = 50
SLOW_RENDER_SECONDS = 5.0
VISIBILITY_TIMEOUT_SECONDS = 2


class FaultStack:
    def __init__(self, root: Path, database_url: str) -> None:
        self.root = root
        self.database_url = database_url
        self.valkey_port = free_port()
        self.env = stack_env(
            database_url=database_url,
            redis_url=f"redis://127.0.0.1:{self.valkey_port}/0",
            var_dir=root,
            media_root=Path(django_settings.MEDIA_ROOT),
        )
        # Short leases: a fetch whose watcher was killed is taken over in seconds, not minutes.
        self.env.update(
            DISPATCH_INTERVAL="0.5",
            RECONCILE_INTERVAL="2",
            BACKEND_HEALTH_INTERVAL="2",
            RENDER_LEASE_SECONDS="5",
            # Far below the slow backend's render time: a task that waited on a render
            # would be delivered again, and its prompt submitted twice.
            CELERY_VISIBILITY_TIMEOUT=str(VISIBILITY_TIMEOUT_SECONDS),
        )
        self.valkey: subprocess.Popen | None = None
        self.worker: subprocess.Popen | None = None

    def start_valkey(self) -> None:
        # valkey-server itself, as ./studio run runs it: a SIGSTOP must freeze the server, not a wrapper.
        argv = valkey_server_argv(port=self.valkey_port, data_dir=self.root / "valkey")
        log = (self.root / "valkey.log").open("ab")
        self.valkey = subprocess.Popen(argv, env=self.env, stdout=log, stderr=log, start_new_session=True)
        wait_for_port(self.valkey_port, self.valkey, "valkey")

    def stop_valkey(self) -> None:
        assert self.valkey is not None
        os.killpg(self.valkey.pid, signal.SIGKILL)
        self.valkey.wait()

    def start_watcher(self) -> None:
        log = (self.root / "watcher.log").open("ab")
        self.watcher = subprocess.Popen(
            [sys.executable, "manage.py", "render_watcher"],
            env=self.env,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )

    def kill_watcher(self) -> None:
        os.killpg(self.watcher.pid, signal.SIGKILL)
        self.watcher.wait()

    def start_worker(self) -> None:
        log = (self.root / "worker.log").open("ab")
        argv = [str(BIN / "celery"), "-A", "storycore", "worker", "--concurrency", "2", "--without-gossip"]
        self.worker = subprocess.Popen(argv, env=self.env, stdout=log, stderr=log, start_new_session=True)

    def kill_worker(self) -> None:
        """kill -9 the whole worker, parent and pool children, mid-task."""
        assert self.worker is not None
        os.killpg(self.worker.pid, signal.SIGKILL)
        self.worker.wait()


@pytest.fixture(scope="module")
def faults(django_db_setup, django_db_blocker, tmp_path_factory):
    database_url = database_url_of(django_settings.DATABASES["default"])
    root = Path(tmp_path_factory.mktemp("faults"))
    stack = FaultStack(root, database_url)
    stack.start_valkey()
    programs: dict[str, tuple[list[str], int | None]] = {}
    for name, seconds in (("one", 0.3), ("two", 0.3), ("slow", SLOW_RENDER_SECONDS)):
        port = free_port()
        argv = [sys.executable, "manage.py", "preview_server", "--port", str(port)]
        argv += ["--render-seconds", str(seconds), "--data-dir", str(root / name)]
        programs[f"preview-{name}"] = (argv, port)
    try:
        # The three preview servers start at once; the watcher and worker once they listen.
        with running_together(programs, stack.env, root / "logs"):
            ports = [port for _, port in programs.values()]
            stack.proxies = [FlakyProxy(target_port=port) for port in ports[:2]]
            stack.slow_url = f"http://127.0.0.1:{ports[2]}"
            stack.start_watcher()
            stack.start_worker()
            try:
                yield stack
            finally:
                stack.kill_watcher()
                stack.kill_worker()
            for proxy in stack.proxies:
                proxy.close()
    finally:
        if stack.valkey is not None and stack.valkey.poll() is None:
            stack.stop_valkey()


@pytest.fixture
def studio_backends(faults, transactional_db, staff_user):
    services.workflow_templates_sync()
    backends = [
        Backend.objects.create(name=f"preview {i}", base_url=proxy.url, capacity=1, queue_depth=1)
        for i, proxy in enumerate(faults.proxies, start=1)
    ]
    for proxy in faults.proxies:
        proxy.refuse_websockets = False
        proxy.lose_prompt_answers = 0.0
        proxy.requests.clear()
    deadline = time.monotonic() + 20
    while Backend.objects.filter(socket_connected=True).count() < len(backends):
        assert time.monotonic() < deadline, "the render watcher never connected to both backends"
        time.sleep(0.05)
    yield backends
    settle_runs()


def _batch(user, size: int = BATCH) -> list[RenderJob]:
    brief = brief_create(
        user=user,
        title="Fault batch",
        scenes=[{"title": f"S{i}", "prompt": f"frame {i}"} for i in range(size)],
    )
    _, jobs = services.render_brief_submit(brief=brief, user=user, policy_overrides={"retry_budget": 2})
    return jobs


def _wait_all(jobs: list[RenderJob], faults: FaultStack, timeout: float = 90) -> dict[str, int]:
    ids = [job.pk for job in jobs]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = list(RenderJob.objects.filter(pk__in=ids).values_list("state", flat=True))
        if all(state in ("succeeded", "failed", "cancelled", "lost") for state in states):
            return {state: states.count(state) for state in set(states)}
        time.sleep(0.2)
    log = (faults.root / "watcher.log").read_text(errors="replace")[-3000:]
    counts = {s: states.count(s) for s in set(states)}
    raise AssertionError(f"batch not finished: {counts}\n{log}")


def _wait_in_flight(jobs: list[RenderJob], timeout: float = 30) -> None:
    """Wait until one of the jobs is rendering on a backend, and check the batch is not over:
    a fault injected now lands while work is in flight."""
    deadline = time.monotonic() + timeout
    while not Attempt.objects.filter(job__in=jobs, state="running").exists():
        assert time.monotonic() < deadline, "no render of the batch started"
        time.sleep(0.02)
    _assert_unfinished(jobs)


def _assert_unfinished(jobs: list[RenderJob]) -> None:
    unfinished = RenderJob.objects.filter(pk__in=[job.pk for job in jobs]).exclude(state__in=TERMINAL_STATES)
    assert unfinished.exists(), "the batch was already over: the fault would have landed on nothing"


def _runs_per_job(faults: FaultStack, jobs: list[RenderJob]) -> list[int]:
    """How many of each job's attempts the backends actually ran, from their /history."""
    ran: set[str] = set()
    for proxy in faults.proxies:
        history = httpx.get(f"http://127.0.0.1:{proxy.target_port}/history", timeout=10).json()
        ran.update(history)
    return [
        sum(1 for uid in Attempt.objects.filter(job=job).values_list("uuid", flat=True) if str(uid) in ran)
        for job in jobs
    ]


def _submissions(faults: FaultStack) -> int:
    return sum(proxy.count(b"POST /prompt") for proxy in faults.proxies)


def test_dropping_every_socket_mid_batch_finishes_every_job_by_polling(faults, studio_backends, staff_user):
    jobs = _batch(staff_user)
    _wait_in_flight(jobs)
    for proxy in faults.proxies:
        proxy.refuse_websockets = True
        proxy.kill_websockets()
    counts = _wait_all(jobs, faults)
    print(f"sockets dropped: {counts}, submissions {_submissions(faults)}")
    assert counts == {"succeeded": BATCH}
    assert _submissions(faults) == BATCH
    assert Artifact.objects.filter(job__in=jobs).count() == BATCH


def test_a_backend_killed_mid_batch_hands_its_jobs_to_the_other(faults, studio_backends, staff_user):
    jobs = _batch(staff_user)
    dead, alive = studio_backends
    deadline = time.monotonic() + 20
    while not Attempt.objects.filter(backend=dead, state="running").exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    _assert_unfinished(jobs)
    faults.proxies[0].go_down()
    try:
        counts = _wait_all(jobs, faults)
        moved = Attempt.objects.filter(job__in=jobs, backend=dead, error_code="unavailable").count()
        print(f"backend killed: {counts}, attempts moved off the dead backend {moved}")
        assert counts == {"succeeded": BATCH}
        assert moved >= 1
        assert all(job.attempts.filter(state="succeeded", backend=alive).exists() for job in jobs)
        dead.refresh_from_db()
        assert dead.health_state == "down"
    finally:
        faults.proxies[0] = FlakyProxy(target_port=faults.proxies[0].target_port)


def test_a_broker_wiped_mid_batch_loses_nothing(faults, studio_backends, staff_user):
    jobs = _batch(staff_user)
    _wait_in_flight(jobs)
    faults.stop_valkey()
    shutil.rmtree(faults.root / "valkey", ignore_errors=True)
    more = _batch(staff_user, 4)  # accepted while the broker is gone
    faults.start_valkey()
    counts = _wait_all(jobs + more, faults)
    print(f"broker wiped: {counts}, submissions {_submissions(faults)}")
    assert counts == {"succeeded": BATCH + 4}
    assert _submissions(faults) == BATCH + 4


def test_lost_submit_answers_never_run_a_prompt_twice(faults, studio_backends, staff_user):
    for proxy in faults.proxies:
        proxy.lose_prompt_answers = 0.2
    jobs = _batch(staff_user)
    counts = _wait_all(jobs, faults)
    lost = sum(proxy.lost_answers for proxy in faults.proxies)
    print(f"lost submit answers: {lost}; {counts}; submissions {_submissions(faults)}")
    assert counts == {"succeeded": BATCH}
    assert _submissions(faults) == BATCH  # each prompt reached a backend exactly once
    assert lost >= 1


def test_a_frozen_broker_delays_renders_but_loses_and_duplicates_nothing(
    faults, studio_backends, staff_user, settings
):
    from storycore.celery import app as celery_app

    # Submits from this process go through the real broker and channel layer, as the web process's do.
    redis_url = faults.env["REDIS_URL"]
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [{"address": redis_url, "socket_connect_timeout": 2, "socket_timeout": 2}]},
        }
    }
    memory = celery_app.conf.broker_url
    celery_app.conf.broker_url = celery_app.conf.CELERY_BROKER_URL = redis_url
    assert faults.valkey is not None
    jobs: list[RenderJob] = []
    slowest = 0.0
    os.kill(faults.valkey.pid, signal.SIGSTOP)
    frozen_at = time.monotonic()
    try:
        with pytest.raises(redis.TimeoutError):  # the broker itself is frozen, not a wrapper around it
            redis.Redis.from_url(redis_url, socket_timeout=1).ping()
        # A script keeps submitting 5-scene briefs for the 30 s the broker hangs.
        while time.monotonic() - frozen_at < 30:
            started = time.monotonic()
            jobs += _batch(staff_user, 5)
            slowest = max(slowest, time.monotonic() - started)
            time.sleep(1.0)
    finally:
        os.kill(faults.valkey.pid, signal.SIGCONT)
        frozen_for = time.monotonic() - frozen_at
        celery_app.conf.broker_url = celery_app.conf.CELERY_BROKER_URL = memory
    counts = _wait_all(jobs, faults)
    runs = _runs_per_job(faults, jobs)
    print(
        f"broker frozen {frozen_for:.0f} s: {len(jobs)} jobs submitted meanwhile, slowest submit "
        f"{slowest:.2f} s; {counts}; submissions {_submissions(faults)}; runs per job {set(runs)}"
    )
    assert frozen_for >= 30
    assert counts == {"succeeded": len(jobs)}
    assert _submissions(faults) == len(jobs)
    assert runs == [1] * len(jobs)
    # Each submit's live events wait at most the channel layer's 2 s socket timeout; the
    # dispatch nudge never holds the submit.
    assert slowest < 5 * 2.5


def test_killing_the_celery_worker_mid_batch_submits_nothing_twice(faults, studio_backends, staff_user):
    jobs = _batch(staff_user)
    kills = 0
    _wait_in_flight(jobs)
    for _ in range(4):
        time.sleep(1.0)
        _assert_unfinished(jobs)
        faults.kill_worker()  # kill -9 of the parent and its pool: tasks in hand are lost unacked
        kills += 1
        faults.start_worker()
    counts = _wait_all(jobs, faults)
    runs = _runs_per_job(faults, jobs)
    print(
        f"Celery worker killed {kills} times: {counts}; POSTs seen {_submissions(faults)}; "
        f"runs per job {set(runs)}"
    )
    assert counts == {"succeeded": BATCH}
    assert runs == [1] * BATCH
    assert Artifact.objects.filter(job__in=jobs).count() == BATCH


def test_a_render_longer_than_the_visibility_timeout_runs_once(faults, studio_backends, staff_user):
    slow = Backend.objects.create(name="slow preview", base_url=faults.slow_url, capacity=1, queue_depth=1)
    deadline = time.monotonic() + 20
    while not Backend.objects.filter(pk=slow.pk, socket_connected=True).exists():
        assert time.monotonic() < deadline, "the render watcher never connected to the slow backend"
        time.sleep(0.05)
    brief = brief_create(
        user=staff_user, title="Long render", scenes=[{"title": "Long", "prompt": "a long take"}]
    )
    job = services.render_job_submit(scene=brief.scenes.get(), user=staff_user, backend=slow)
    counts = _wait_all([job], faults, timeout=60)
    history = httpx.get(f"{faults.slow_url}/history", timeout=10).json()
    attempts = list(Attempt.objects.filter(job=job).values_list("uuid", "backend_id"))
    took = (RenderJob.objects.get(pk=job.pk).finished_at - job.created_at).total_seconds()
    print(
        f"render of {SLOW_RENDER_SECONDS:.0f} s with a {VISIBILITY_TIMEOUT_SECONDS} s visibility timeout: "
        f"{counts} in {took:.1f} s; attempts {len(attempts)}; prompts the backend ran {len(history)}"
    )
    assert counts == {"succeeded": 1}
    assert attempts == [(attempts[0][0], slow.pk)]
    assert list(history) == [str(attempts[0][0])]
    assert took >= SLOW_RENDER_SECONDS


def test_killing_the_watcher_mid_batch_submits_nothing_twice(faults, studio_backends, staff_user):
    jobs = _batch(staff_user)
    kills = 0
    _wait_in_flight(jobs)
    for _ in range(3):
        time.sleep(1.2)
        _assert_unfinished(jobs)
        faults.kill_watcher()  # kill -9: no chance to tidy up
        kills += 1
        faults.start_watcher()
    counts = _wait_all(jobs, faults)
    runs = _runs_per_job(faults, jobs)
    print(
        f"watcher killed {kills} times: {counts}; POSTs seen {_submissions(faults)}; runs per job {set(runs)}"
    )
    assert counts == {"succeeded": BATCH}
    # A watcher killed halfway through sending a POST leaves a request the server never took, so
    # count what the backends ran: each job's prompt ran exactly once.
    assert runs == [1] * BATCH
    assert Artifact.objects.filter(job__in=jobs).count() == BATCH

"""Real processes on loopback for integration and browser tests: Valkey, the
storyboard preview server, a Celery worker and the ASGI server. No project code
is mocked; each process is started the way `./studio run` starts it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from storycore.valkey import valkey_server_argv

BASE_DIR = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, name: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with status {process.returncode} before listening on {port}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{name} did not listen on port {port} within {timeout:.0f} s")


def _spawn(name: str, argv: list[str], env: dict[str, str] | None, log_dir: Path) -> subprocess.Popen:
    log_dir.mkdir(parents=True, exist_ok=True)
    with (log_dir / f"{name}.log").open("wb") as log:
        return subprocess.Popen(
            argv, cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )


def _wait_listening(name: str, process: subprocess.Popen, port: int, log_dir: Path) -> None:
    try:
        wait_for_port(port, process, name)
    except RuntimeError as exc:
        log = (log_dir / f"{name}.log").read_text(errors="replace")[-4000:]
        raise RuntimeError(f"{exc}\n--- {name} log ---\n{log}") from None


def stop_all(processes: list[subprocess.Popen], grace: float = 15.0) -> None:
    """SIGTERM every process group at once, then wait for them together: each gets `grace`
    seconds to shut down cleanly, at the same time, before SIGKILL."""
    live = [process for process in processes if process.poll() is None]
    for process in live:
        os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for process in live:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextmanager
def running(
    name: str, argv: list[str], env: dict[str, str] | None, log_dir: Path, port: int | None = None
) -> Iterator[subprocess.Popen]:
    process = _spawn(name, argv, env, log_dir)
    try:
        if port is not None:
            _wait_listening(name, process, port, log_dir)
        yield process
    finally:
        stop_all([process])


@contextmanager
def running_together(
    programs: dict[str, tuple[list[str], int | None]], env: dict[str, str] | None, log_dir: Path
) -> Iterator[dict[str, subprocess.Popen]]:
    """Start every program at once (name: argv and the port it listens on, if any), wait
    until each of those with a port listens, and stop them all together at the end."""
    processes: dict[str, subprocess.Popen] = {}
    try:
        for name, (argv, _) in programs.items():
            processes[name] = _spawn(name, argv, env, log_dir)
        for name, (_, port) in programs.items():
            if port is not None:
                _wait_listening(name, processes[name], port, log_dir)
        yield processes
    finally:
        stop_all(list(processes.values()))


def start_preview_server(
    port: int, data_dir: Path, log: IO[bytes], *, render_seconds: float
) -> subprocess.Popen:
    """A preview server the test may kill and start again on the same port and files."""
    argv = [sys.executable, "manage.py", "preview_server", "--port", str(port)]
    argv += ["--render-seconds", str(render_seconds), "--data-dir", str(data_dir)]
    process = subprocess.Popen(
        argv, cwd=BASE_DIR, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    wait_for_port(port, process, "preview server")
    return process


@dataclass(frozen=True)
class Stack:
    web_url: str
    preview_url: str
    redis_url: str
    log_dir: Path
    # The environment every process got, and the processes by name (a test may restart one).
    env: dict[str, str] = field(default_factory=dict, repr=False)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict, repr=False)

    def log(self, name: str) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""


def database_url_of(database: dict) -> str:
    """The URL other processes use to open the database this test process uses."""
    if database["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{database['NAME']}"
    return (
        f"postgres://{database['USER']}:{database['PASSWORD']}@{database['HOST'] or 'localhost'}:"
        f"{database['PORT'] or 5432}/{database['NAME']}"
    )


def stack_env(*, database_url: str, redis_url: str, var_dir: Path, media_root: Path) -> dict[str, str]:
    return dict(
        os.environ,
        MEDIA_ROOT=str(media_root),
        PYTHONUNBUFFERED="1",
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        STORYCORE_VAR_DIR=str(var_dir),
        # Short waits keep failure tests quick; real defaults are minutes.
        RENDER_POLL_INTERVAL="0.5",
        RENDER_CONNECT_TIMEOUT="2",
        RENDER_MAX_WAIT="60",
        RENDER_POST_EXECUTION_TIMEOUT="10",
        DISPATCH_INTERVAL="1",
        RECONCILE_INTERVAL="5",
    )


@contextmanager
def start_stack(
    *,
    database_url: str,
    var_dir: Path,
    media_root: Path,
    render_seconds: float = 0.6,
    preview_method: str = "latent2rgb",
    extra_env: dict[str, str] | None = None,
) -> Iterator[Stack]:
    log_dir = var_dir / "logs"
    valkey_port, preview_port, web_port = free_port(), free_port(), free_port()
    redis_url = f"redis://127.0.0.1:{valkey_port}/0"
    env = stack_env(database_url=database_url, redis_url=redis_url, var_dir=var_dir, media_root=media_root)
    env.update(extra_env or {})
    python = sys.executable
    celery_worker = [str(BIN / "celery"), "-A", "storycore", "worker", "--loglevel", "INFO"]
    celery_worker += ["--concurrency", "2", "--without-gossip", "--without-mingle", "--without-heartbeat"]
    programs: dict[str, tuple[list[str], int | None]] = {
        "preview": (
            [
                *(python, "manage.py", "preview_server", "--port", str(preview_port)),
                *("--render-seconds", str(render_seconds), "--data-dir", str(var_dir / "preview")),
                # As ./studio run starts it, renders send preview frames (a module may turn them off).
                *("--preview-method", preview_method),
            ],
            preview_port,
        ),
        "watcher": ([python, "manage.py", "render_watcher"], None),
        "worker": (celery_worker, None),
        "asgi": (
            [
                str(BIN / "uvicorn"),
                "storycore.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(web_port),
            ],
            web_port,
        ),
    }
    # Valkey first (the worker and the watcher connect to it as they start), then the rest at
    # once: each is a Python process that spends seconds importing, and they need not wait on
    # each other. Valkey stops last, after every process that talks to it.
    with (
        running(
            "valkey",
            valkey_server_argv(port=valkey_port, data_dir=var_dir / "valkey"),
            env,
            log_dir,
            valkey_port,
        ),
        running_together(programs, env, log_dir) as processes,
    ):
        yield Stack(
            web_url=f"http://127.0.0.1:{web_port}",
            preview_url=f"http://127.0.0.1:{preview_port}",
            redis_url=redis_url,
            log_dir=log_dir,
            env=env,
            processes=processes,
        )


def settle_runs(timeout: float = 10.0) -> None:
    """Wait until every finished batch has its run report, before a test's tables are emptied.

    The stack writes a batch's run report just after its last job ends; emptying the tables
    under that transaction deadlocks on PostgreSQL. A report still missing after `timeout`
    (its nudge lost to a broker the test broke) is written here, as beat's sweep would.
    """
    from telemetry import runs

    deadline = time.monotonic() + timeout
    while runs.due_batches():
        if time.monotonic() > deadline:
            runs.finish_due_runs()
            break
        time.sleep(0.1)
    time.sleep(0.3)  # the writer's transaction ends a moment after its report is visible

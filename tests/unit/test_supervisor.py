"""The embedded studio's supervisor, on small real child processes: restarts with backoff,
start failures with the process's last lines, the status file /health/ reads, and what
reaches the terminal."""

import io
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from storycore import supervisor as supervision
from storycore.supervisor import ProcessSpec, ProcessState, StartFailure, Supervisor, Terminal, read_status

PYTHON = sys.executable


def _supervisor(tmp_path: Path, terminal: Terminal | None = None) -> Supervisor:
    return Supervisor(
        cwd=tmp_path,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
        log_dir=tmp_path / "log",
        status_path=tmp_path / "run" / "processes.json",
        terminal=terminal or Terminal(verbose=False, out=io.StringIO()),
    )


def _sleeper(name: str = "sleeper", ready: str = "up and running") -> ProcessSpec:
    code = f"import time; print({ready!r}, flush=True); time.sleep(600)"
    return ProcessSpec(name, [PYTHON, "-c", code], ready_line=ready)


def _tend_until(sup: Supervisor, condition, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, [(c.spec.name, c.state, c.restarts) for c in sup.children]
        sup.tend()
        time.sleep(0.05)


def test_a_process_killed_after_start_up_is_restarted_and_reported(tmp_path):
    out = io.StringIO()
    sup = _supervisor(tmp_path, Terminal(verbose=False, out=out))
    try:
        sup.start_all([_sleeper()])
        sup.terminal.release()
        child = sup.child("sleeper")
        first_pid = child.process.pid
        os.kill(first_pid, signal.SIGKILL)
        _tend_until(sup, lambda: child.state == ProcessState.RESTARTING)
        status = read_status(sup.status_path)
        assert status["processes"][0]["state"] == "restarting"
        assert status["processes"][0]["last_exit_status"] == -signal.SIGKILL
        _tend_until(sup, lambda: child.state == ProcessState.RUNNING and child.restarts == 1)
        assert child.process.pid != first_pid
        status = read_status(sup.status_path)
        assert status["processes"][0] | {"started_at": None} == {
            "name": "sleeper",
            "state": "running",
            "pid": child.process.pid,
            "restarts": 1,
            "started_at": None,
            "last_exit_status": -signal.SIGKILL,
            "last_exit_at": status["processes"][0]["last_exit_at"],
            "log": "sleeper.log",
        }
        assert "sleeper was killed by SIGKILL; restarting it in 1 s" in out.getvalue()
        assert "sleeper is running again." in out.getvalue()
    finally:
        sup.stop()
    assert not sup.status_path.exists()


def test_restarts_back_off_while_a_process_keeps_dying(tmp_path, monkeypatch):
    # It starts fine once, then every restart dies at once.
    marker = tmp_path / "started-once"
    code = (
        "import os, sys, time\n"
        f"p = {str(marker)!r}\n"
        "if os.path.exists(p): sys.exit(3)\n"
        "open(p, 'w').close(); print('ready', flush=True); time.sleep(0.3); sys.exit(3)\n"
    )
    now = [0.0]
    sup = _supervisor(tmp_path)
    sup.clock = lambda: now[0]
    try:
        sup.start_all([ProcessSpec("flaky", [PYTHON, "-c", code], ready_line="ready")])
        child = sup.child("flaky")
        delays = []
        for _ in range(6):
            _tend_until(sup, lambda: child.state == ProcessState.RESTARTING)
            delays.append(child.next_start_at - now[0])
            now[0] = child.next_start_at
            restarts = child.restarts
            _tend_until(sup, lambda r=restarts: child.restarts == r + 1)
        assert delays == [1, 2, 4, 8, 16, 30]
        assert child.last_exit_status == 3
    finally:
        sup.stop()


def test_a_process_that_cannot_start_fails_with_its_last_lines(tmp_path):
    code = "import sys; print('loading settings', flush=True); sys.exit('No module named packaging')"
    sup = _supervisor(tmp_path)
    try:
        with pytest.raises(StartFailure) as failure:
            sup.start_all([_sleeper("fine"), ProcessSpec("broken", [PYTHON, "-c", code], ready_line="never")])
    finally:
        sup.stop()
    assert failure.value.name == "broken"
    assert failure.value.reason == "exited with status 1 while starting"
    assert failure.value.tail == ["loading settings", "No module named packaging"]
    assert (tmp_path / "log" / "broken.log").read_text() == "loading settings\nNo module named packaging\n"


def test_a_process_that_never_gets_ready_fails_after_the_timeout(tmp_path, monkeypatch):
    monkeypatch.setattr(supervision, "START_TIMEOUT_SECONDS", 0.5)
    sup = _supervisor(tmp_path)
    try:
        with pytest.raises(StartFailure, match="was not ready after 0 s"):
            sup.start_all(
                [ProcessSpec("mute", [PYTHON, "-c", "import time; time.sleep(60)"], ready_line="x")]
            )
    finally:
        sup.stop()


def test_a_port_process_is_ready_when_its_port_answers(tmp_path):
    from tests.stack import free_port

    port = free_port()
    code = (
        "import socket, time\n"
        "time.sleep(0.3)\n"
        f"s = socket.socket(); s.bind(('127.0.0.1', {port})); s.listen(); time.sleep(600)\n"
    )
    sup = _supervisor(tmp_path)
    try:
        sup.start_all([ProcessSpec("server", [PYTHON, "-c", code], port=port)])
        assert sup.child("server").state == ProcessState.RUNNING
    finally:
        sup.stop()


def test_the_terminal_gets_warnings_errors_and_tracebacks_and_the_log_gets_everything(tmp_path):
    code = (
        "print('2026-12-07 21:24:09,783 INFO generation.watcher: dispatched 3 jobs')\n"
        "print('2026-12-07 21:24:10,000 WARNING generation.watcher: backend slow')\n"
        "print('[2026-12-07 21:24:11: ERROR/MainProcess] consumer: cannot connect')\n"
        "print('Traceback (most recent call last):')\n"
        "print('  File \"x.py\", line 1, in <module>')\n"
        "print('ValueError: bad')\n"
        "print('INFO:     127.0.0.1:5000 - \"GET / HTTP/1.1\" 200 OK')\n"
        "print('ready', flush=True)\n"
        "import time; time.sleep(600)\n"
    )
    out = io.StringIO()
    sup = _supervisor(tmp_path, Terminal(verbose=False, out=out))
    try:
        sup.start_all([ProcessSpec("chatty", [PYTHON, "-c", code], ready_line="^ready")])
        # Held back until the banner is out.
        assert "backend slow" not in out.getvalue()
        sup.terminal.release()
    finally:
        sup.stop()
    shown = [line for line in out.getvalue().splitlines() if line.startswith("[chatty]")]
    assert shown == [
        "[chatty] 2026-12-07 21:24:10,000 WARNING generation.watcher: backend slow",
        "[chatty] [2026-12-07 21:24:11: ERROR/MainProcess] consumer: cannot connect",
        "[chatty] Traceback (most recent call last):",
        '[chatty]   File "x.py", line 1, in <module>',
        "[chatty] ValueError: bad",
    ]
    logged = (tmp_path / "log" / "chatty.log").read_text()
    assert "dispatched 3 jobs" in logged and "200 OK" in logged


def test_verbose_shows_everything(tmp_path):
    out = io.StringIO()
    sup = _supervisor(tmp_path, Terminal(verbose=True, out=out))
    try:
        sup.start_all([_sleeper("chatty", ready="INFO all is well")])
        sup.terminal.release()
    finally:
        sup.stop()
    assert "[chatty] INFO all is well" in out.getvalue()


def test_shutdown_is_quiet_and_stops_the_whole_process_group(tmp_path):
    # A parent that ignores nothing and a grandchild that would outlive it.
    code = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        "print(child.pid, flush=True); print('ready', flush=True)\n"
        "import signal\n"
        "signal.signal(signal.SIGTERM, lambda *a: (print('Traceback (most recent call last):', flush=True), sys.exit(1)))\n"
        "time.sleep(600)\n"
    )
    out = io.StringIO()
    sup = _supervisor(tmp_path, Terminal(verbose=False, out=out))
    sup.start_all([ProcessSpec("parent", [PYTHON, "-c", code], ready_line="^ready")])
    sup.terminal.release()
    grandchild = int(sup.child("parent").tail[0])
    sup.stop()
    assert "Traceback" not in out.getvalue()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(grandchild, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the grandchild outlived the studio")


def test_logs_of_the_previous_run_are_kept_once(tmp_path):
    for run in ("first", "second", "third"):
        sup = _supervisor(tmp_path)
        try:
            sup.start_all([_sleeper("p", ready=f"{run} run")])
        finally:
            sup.stop()
    assert (tmp_path / "log" / "p.log").read_text() == "third run\n"
    assert (tmp_path / "log" / "p.log.1").read_text() == "second run\n"


def test_a_status_file_whose_supervisor_is_gone_is_ignored(tmp_path):
    path = tmp_path / "processes.json"
    path.write_text(json.dumps({"supervisor_pid": 2**22 + 12345, "processes": []}))
    assert read_status(path) is None
    path.write_text(json.dumps({"supervisor_pid": os.getpid(), "processes": []}))
    assert read_status(path) == {"supervisor_pid": os.getpid(), "processes": []}
    path.write_text("{not json")
    assert read_status(path) is None


def test_watch_returns_when_told_to_stop(tmp_path):
    sup = _supervisor(tmp_path)
    stop = threading.Event()
    try:
        sup.start_all([_sleeper()])
        timer = threading.Timer(0.3, stop.set)
        timer.start()
        started = time.monotonic()
        sup.watch(stop)
        assert time.monotonic() - started < 5
    finally:
        sup.stop()


def test_known_harmless_warnings_stay_in_the_log_only(tmp_path):
    code = "print('# WARNING Memory overcommit must be enabled!'); print('# WARNING disk full', flush=True)"
    code += "; print('ready', flush=True); import time; time.sleep(600)"
    out = io.StringIO()
    sup = _supervisor(tmp_path, Terminal(verbose=False, out=out))
    try:
        spec = ProcessSpec(
            "valkey", [PYTHON, "-c", code], ready_line="^ready", quiet=("Memory overcommit must be enabled",)
        )
        sup.start_all([spec])
        sup.terminal.release()
    finally:
        sup.stop()
    assert [line for line in out.getvalue().splitlines() if line.startswith("[")] == [
        "[valkey] # WARNING disk full"
    ]
    assert "Memory overcommit" in (tmp_path / "log" / "valkey.log").read_text()

"""`./studio run`'s supervisor: every process comes up, the demo is seeded, and
Ctrl-C stops them all."""

import os
import re
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest

from tests.stack import BASE_DIR, free_port

# `./studio run` keeps its own SQLite database: the PostgreSQL pass would only run it twice.
pytestmark = [pytest.mark.integration, pytest.mark.own_database]


class _Output:
    """Collects a process's output on a thread, so waiting for a line never blocks the test."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.text = ""
        self._thread = threading.Thread(target=self._pump, args=(process,), daemon=True)
        self._thread.start()

    def _pump(self, process: subprocess.Popen) -> None:
        for line in process.stdout:
            self.text += line

    def wait_for(self, marker: str, process: subprocess.Popen, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if marker in self.text:
                return self.text
            if process.poll() is not None:
                self._thread.join(5)
                break
            time.sleep(0.1)
        raise AssertionError(f"{marker!r} never appeared; output so far:\n{self.text[-4000:]}")

    def rest(self) -> str:
        self._thread.join(30)
        return self.text


def start_studio(var_dir, **extra: str) -> tuple[subprocess.Popen, dict[str, int]]:
    """`python -m storycore.studio` on free ports in its own folder, as `./studio run` starts it."""
    ports = {"web": free_port(), "preview": free_port(), "valkey": free_port()}
    env = (
        {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "DATABASE_URL", "PREVIEW_SERVER_URL"}}
        | {
            "STORYCORE_VAR_DIR": str(var_dir),
            "STUDIO_PORT": str(ports["web"]),
            "PREVIEW_SERVER_PORT": str(ports["preview"]),
            "EMBEDDED_VALKEY_PORT": str(ports["valkey"]),
            "CELERY_CONCURRENCY": "1",
            "PYTHONUNBUFFERED": "1",
        }
        | extra
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "storycore.studio"],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return process, ports


def stop_studio(process: subprocess.Popen) -> None:
    """Whatever a test left running: SIGTERM lets the supervisor stop its children (SIGKILL would
    orphan them), then SIGKILL if it does not stop in time."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _port_closed(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_the_studio_starts_everything_prints_the_login_and_stops_cleanly(tmp_path):
    process, ports = start_studio(tmp_path / "var")
    web, preview, valkey = ports["web"], ports["preview"], ports["valkey"]
    try:
        out = _Output(process)
        output = out.wait_for("Press Ctrl-C to stop every process.", process, timeout=120)
        login = re.search(r"Staff login\s+(\S+) / (\S+)", output)
        assert login, output
        assert re.search(r"API token\s+[0-9a-f]{40}", output)
        brief_url = re.search(r"Demo brief\s+(http://\S+)", output).group(1)
        with httpx.Client(timeout=10) as client:
            health = client.get(f"http://127.0.0.1:{web}/health/").json()
            assert health["database"]["ok"] and health["broker"]["ok"]
            assert [b["name"] for b in health["backends"]] == ["Storyboard preview"]
            assert client.get(f"http://127.0.0.1:{preview}/system_stats").status_code == 200
            assert client.get(brief_url).status_code == 302  # the editor asks for a login
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
        rest = out.rest()
        assert process.returncode == 0, rest
        assert "Every studio process has stopped." in rest
        assert _port_closed(web) and _port_closed(preview) and _port_closed(valkey)
    finally:
        stop_studio(process)


def test_the_studio_runs_the_local_runpod_endpoint_as_a_second_backend(tmp_path):
    runpod = free_port()
    process, ports = start_studio(tmp_path / "var", LOCAL_RUNPOD="1", LOCAL_RUNPOD_PORT=str(runpod))
    web = ports["web"]
    try:
        out = _Output(process)
        output = out.wait_for("Press Ctrl-C to stop every process.", process, timeout=120)
        assert f"Local RunPod endpoint  http://127.0.0.1:{runpod}/v2" in output
        token = re.search(r"API token\s+([0-9a-f]{40})", output).group(1)
        brief = re.search(r"Demo brief\s+http://\S+/briefs/([0-9a-f-]+)/", output).group(1)
        headers = {"Authorization": f"Token {token}"}
        with httpx.Client(base_url=f"http://127.0.0.1:{web}", headers=headers, timeout=10) as api:
            backends = {b["name"]: b for b in api.get("/api/v1/backends/").json()["results"]}
            assert backends["Local RunPod endpoint"]["kind"] == "runpod"
            scene = api.get(f"/api/v1/briefs/{brief}/").json()["scenes"][0]
            job = api.post(
                f"/api/v1/scenes/{scene['uuid']}/renders/", json={"backend": "Local RunPod endpoint"}
            )
            assert job.status_code == 202, job.text
            deadline = time.monotonic() + 60
            while (state := api.get(f"/api/v1/jobs/{job.json()['uuid']}/").json())["state"] not in (
                "succeeded",
                "failed",
            ):
                assert time.monotonic() < deadline, state
                time.sleep(0.3)
        assert state["state"] == "succeeded", state
        assert (tmp_path / "var" / "local-runpod-key").stat().st_mode & 0o077 == 0
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
        assert process.returncode == 0, out.rest()
        assert _port_closed(runpod) and _port_closed(web)
    finally:
        stop_studio(process)


def _check(env_extra: dict[str, str], tmp_path) -> subprocess.CompletedProcess:
    env = (
        {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "DATABASE_URL", "PREVIEW_SERVER_URL"}}
        | {"TMPDIR": str(tmp_path), "PYTHONUNBUFFERED": "1"}
        | env_extra
    )
    return subprocess.run(
        [sys.executable, "-m", "storycore.studio", "--check"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_check_renders_the_demo_brief_verifies_each_image_and_cleans_up(tmp_path):
    done = _check({}, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("  ok: 512x512 image/png") == 3, done.stdout
    assert "3 of 3 scenes finished" in done.stdout
    assert done.stdout.rstrip().endswith("Every studio process has stopped."), done.stdout
    assert "The check passed." in done.stdout
    assert list(tmp_path.glob("storycore-check-*")) == []


def test_the_check_fails_with_the_last_lines_of_a_process_that_cannot_start(tmp_path):
    done = _check({"CELERY_CONCURRENCY": "lots"}, tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Celery worker exited with status 2 while starting." in done.stdout, done.stdout
    assert "  | " in done.stdout and "'lots' is not a valid integer" in done.stdout, done.stdout
    assert "The studio could not start." in done.stdout
    # The processes that did start were stopped, and the logs are kept for reading.
    kept = list(tmp_path.glob("storycore-check-*"))
    assert len(kept) == 1 and (kept[0] / "log" / "celery-worker.log").exists()
    assert f"The check's files and logs are kept in {kept[0]}." in done.stdout

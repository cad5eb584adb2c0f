"""`./studio run` keeps the studio up through its own crashes: the Celery worker, the render
watcher and the preview server killed mid-batch, and the embedded Valkey paused for 30 s.
Each is restarted (or waited for), /health/ reports it, and every job of the batch ends once."""

import json
import os
import signal
import sqlite3
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.test_studio_command import _Output, start_studio, stop_studio

# `./studio run` keeps its own SQLite database: the PostgreSQL pass would only run it twice.
pytestmark = [pytest.mark.integration, pytest.mark.own_database]

SCENES = 30
TERMINAL = {"succeeded", "failed", "cancelled", "lost"}


def _status(var_dir: Path) -> dict[str, dict]:
    body = json.loads((var_dir / "run" / "processes.json").read_text())
    return {p["name"]: p for p in body["processes"]}


def _wait(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _jobs(api: httpx.Client, uuids: list[str]) -> list[dict]:
    return [api.get(f"/api/v1/jobs/{uuid}/").json() for uuid in uuids]


def _assert_in_flight(api: httpx.Client, uuids: list[str], fault: str, *, on_a_backend: bool = True) -> None:
    """Renders are out when the fault lands. Just after the render watcher came back, the queue may
    not be dispatched yet: wait for a render to be on a backend again (never for the batch to end)."""
    deadline = time.monotonic() + 20
    while True:
        states = [job["state"] for job in _jobs(api, uuids)]
        out = any(state in ("dispatched", "running", "fetching") for state in states)
        if out or not on_a_backend or time.monotonic() > deadline:
            break
        if all(state in TERMINAL for state in states):
            break
        time.sleep(0.2)
    if on_a_backend:
        assert out, (fault, states)
    assert any(state not in TERMINAL for state in states), (fault, states)


def _kill_and_wait_for_restart(var_dir: Path, name: str) -> None:
    before = _status(var_dir)[name]
    assert before["state"] == "running", before
    os.kill(before["pid"], signal.SIGKILL)
    _wait(
        lambda: (now := _status(var_dir)[name])["restarts"] == before["restarts"] + 1
        and now["state"] == "running",
        60,
        f"{name} to be restarted",
    )


def test_the_studio_restarts_what_dies_waits_for_a_paused_valkey_and_ends_every_job_once(tmp_path):
    var_dir = tmp_path / "var"
    # Renders long enough that every fault lands while some are in flight: the three restarts
    # take about 12 s, and the 30 s pause that follows ends with some of the batch's 45 s left.
    process, ports = start_studio(var_dir, PREVIEW_RENDER_SECONDS="1.5")
    web = ports["web"]
    try:
        out = _Output(process)
        output = out.wait_for("Press Ctrl-C to stop every process.", process, timeout=120)
        token = output.split("API token", 1)[1].split()[0]
        headers = {"Authorization": f"Token {token}"}
        with httpx.Client(base_url=f"http://127.0.0.1:{web}", headers=headers, timeout=60) as api:
            brief = api.post(
                "/api/v1/briefs/",
                json={
                    "title": "Supervision",
                    "scenes": [
                        {"title": f"Shot {n}", "prompt": f"a lighthouse, shot {n}"} for n in range(SCENES)
                    ],
                },
            )
            assert brief.status_code == 201, brief.text
            batch = api.post(f"/api/v1/briefs/{brief.json()['uuid']}/renders/", json={})
            assert batch.status_code == 202, batch.text
            uuids = [job["uuid"] for job in batch.json()["jobs"]]
            _wait(lambda: any(j["state"] == "running" for j in _jobs(api, uuids)), 60, "a first render")

            for name in ("Celery worker", "render watcher", "preview server"):
                _assert_in_flight(api, uuids, name)
                _kill_and_wait_for_restart(var_dir, name)
                health = api.get("/health/").json()
                assert {p["name"]: p["restarts"] for p in health["processes"]}[name] == 1, health

            # Right after the preview server's restart its jobs may still wait for dispatch: pending is enough.
            _assert_in_flight(api, uuids, "Valkey paused", on_a_backend=False)
            valkey_pid = _status(var_dir)["embedded Valkey"]["pid"]
            os.kill(valkey_pid, signal.SIGSTOP)
            try:
                time.sleep(30)
                assert process.poll() is None, out.text[-3000:]
            finally:
                os.kill(valkey_pid, signal.SIGCONT)

            _wait(lambda: all(j["state"] in TERMINAL for j in _jobs(api, uuids)), 240, "every job to end")
            jobs = _jobs(api, uuids)
            assert [j["state"] for j in jobs] == ["succeeded"] * SCENES, [
                (j["state"], j["error_code"], j["error_message"]) for j in jobs
            ]
            status = _status(var_dir)
            assert status["embedded Valkey"]["restarts"] == 0
            assert all(p["state"] == "running" for p in status.values()), status
            assert api.get("/health/").json()["status"] == "ok"

        with sqlite3.connect(f"file:{var_dir / 'storycore.sqlite3'}?mode=ro", uri=True) as db:
            ends = db.execute(
                "SELECT j.uuid, COUNT(e.id) FROM generation_renderjob j "
                "LEFT JOIN generation_jobevent e ON e.job_id = j.id AND e.to_state IN "
                "('succeeded', 'failed', 'cancelled', 'lost') GROUP BY j.uuid"
            ).fetchall()
        assert len(ends) == SCENES and {count for _, count in ends} == {1}, ends

        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
        rest = out.rest()
        assert process.returncode == 0, rest
        tail = rest.split("Stopping the studio …", 1)[1]
        assert tail.strip() == "Every studio process has stopped.", tail
    finally:
        stop_studio(process)

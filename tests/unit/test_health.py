import pytest


@pytest.mark.django_db
def test_health_reports_a_missing_broker_as_down(client, backend, settings):
    settings.REDIS_URL = "redis://127.0.0.1:9/0"
    response = client.get("/health/")
    assert response.status_code == 503
    body = response.json()
    assert body["database"] == {"ok": True}
    assert body["broker"]["ok"] is False
    assert body["status"] == "down"
    assert body["backends"] == [
        {"name": "Storyboard preview", "kind": "comfyui", "state": "unknown", "checked_at": None}
    ]
    assert "base_url" not in response.content.decode()


@pytest.mark.django_db
def test_health_lists_the_supervised_processes_and_is_degraded_while_one_restarts(
    client, backend, settings, tmp_path, monkeypatch
):
    import json
    import os

    from storycore import health

    monkeypatch.setattr(health, "_broker", lambda: {"ok": True})
    backend.health_state = "healthy"
    backend.save()
    settings.VAR_DIR = tmp_path
    (tmp_path / "run").mkdir()
    process = {
        "name": "Celery worker",
        "state": "restarting",
        "pid": 4321,
        "restarts": 2,
        "started_at": None,
        "last_exit_status": -9,
        "last_exit_at": "2026-12-07T21:30:00+00:00",
        "log": "celery-worker.log",
    }
    status_file = tmp_path / "run" / "processes.json"
    status_file.write_text(json.dumps({"supervisor_pid": os.getpid(), "processes": [process]}))
    body = client.get("/health/").json()
    assert body["processes"] == [
        {
            "name": "Celery worker",
            "state": "restarting",
            "restarts": 2,
            "last_exit_status": -9,
            "last_exit_at": "2026-12-07T21:30:00+00:00",
        }
    ]
    assert body["status"] == "degraded"
    status_file.write_text(
        json.dumps({"supervisor_pid": os.getpid(), "processes": [process | {"state": "running"}]})
    )
    assert client.get("/health/").json()["status"] == "ok"
    status_file.write_text(json.dumps({"supervisor_pid": 2**22 + 777, "processes": [process]}))
    assert "processes" not in client.get("/health/").json()

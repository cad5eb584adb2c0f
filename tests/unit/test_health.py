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

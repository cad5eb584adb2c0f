"""A RunPod backend's API key: stored encrypted, write-only in the admin, never in the API,
an error message or a log line."""

from __future__ import annotations

import logging

import pytest

from generation import services
from generation.api_keys import api_key_of, decrypt_api_key
from generation.bundled_backends.runpod_endpoint import EndpointSettings, create_app
from generation.models import Backend, BackendKind
from generation.providers.base import ErrorCode, ProviderError
from tests.app_thread import AppThread

KEY = "rp-secret-9d8c7b6a5f4e3d2c1b0a"
WRONG = "rp-not-the-key-11223344556677"


@pytest.fixture
def endpoint():
    settings = EndpointSettings(comfyui_url="http://127.0.0.1:9", api_key=KEY, endpoint_id="ep-secret")
    server = AppThread(lambda: create_app(settings)).start()
    yield f"http://127.0.0.1:{server.port}/v2"
    server.stop()


@pytest.fixture
def ops(client, django_user_model):
    admin = django_user_model.objects.create_superuser("ops", password="a-long-password-9")
    client.force_login(admin)
    return client


def _add_runpod_backend(ops, url: str, key: str) -> Backend:
    response = ops.post(
        "/admin/generation/backend/add/",
        {
            "name": "RunPod A",
            "kind": BackendKind.RUNPOD,
            "base_url": url,
            "endpoint_id": "ep-secret",
            "api_key": key,
            "api_key_env": "",
            "description": "",
            "enabled": "on",
            "capacity": 2,
            "queue_depth": 1,
            "price_per_second": "0.00031",
        },
    )
    assert response.status_code == 302, response.content.decode()[-3000:]
    return Backend.objects.get(name="RunPod A")


@pytest.mark.django_db(transaction=True)
def test_the_key_is_stored_encrypted_and_never_shown_or_returned(ops, api_client, endpoint, caplog):
    caplog.set_level(logging.DEBUG)
    backend = _add_runpod_backend(ops, endpoint, KEY)
    assert backend.api_key_encrypted and KEY not in backend.api_key_encrypted
    assert decrypt_api_key(backend.api_key_encrypted) == KEY
    assert str(backend.price_per_second) == "0.00031000"
    pages = [
        ops.get(f"/admin/generation/backend/{backend.pk}/change/"),
        ops.get("/admin/generation/backend/"),
        ops.get(f"/admin/generation/backend/{backend.pk}/history/"),
        api_client.get("/api/v1/backends/"),
    ]
    change_page = pages[0].content.decode()
    assert "a key is set (stored encrypted)" in change_page
    # Saving again with the field left empty keeps the key.
    kept = ops.post(
        f"/admin/generation/backend/{backend.pk}/change/",
        {
            "name": "RunPod A",
            "kind": BackendKind.RUNPOD,
            "base_url": endpoint,
            "endpoint_id": "ep-secret",
            "api_key": "",
            "enabled": "on",
            "capacity": 3,
            "queue_depth": 1,
        },
    )
    assert kept.status_code == 302
    backend.refresh_from_db()
    assert api_key_of(backend) == KEY and backend.capacity == 3
    # The key works, and a health check says so without saying the key.
    health = services.backend_check_health(backend=backend)
    assert health.reachable, health.message
    # A wrong key: the failure names the backend, not the key.
    services.backend_set_api_key(backend=backend, api_key=WRONG)
    backend.refresh_from_db()
    refused = services.backend_check_health(backend=backend)
    assert not refused.reachable and "refused the API key" in refused.message
    texts = [page.content.decode() for page in pages]
    texts += [refused.message, health.message, caplog.text, repr(backend)]
    for text in texts:
        assert KEY not in text
        assert WRONG not in text
    assert backend.api_key_encrypted not in "".join(page.content.decode() for page in pages[1:])


@pytest.mark.django_db
def test_the_key_may_be_cleared_or_read_from_a_named_variable(ops, monkeypatch):
    backend = _add_runpod_backend(ops, "http://127.0.0.1:9/v2", KEY)
    services.backend_set_api_key(backend=backend, clear=True)
    backend.refresh_from_db()
    with pytest.raises(ProviderError) as missing:
        api_key_of(backend)
    assert missing.value.code == ErrorCode.AUTH_FAILED
    Backend.objects.filter(pk=backend.pk).update(api_key_env="RUNPOD_TEST_RP_KEY")
    backend.refresh_from_db()
    with pytest.raises(ProviderError) as unset:
        api_key_of(backend)
    assert "RUNPOD_TEST_RP_KEY" in unset.value.message
    monkeypatch.setenv("RUNPOD_TEST_RP_KEY", KEY)
    assert api_key_of(backend) == KEY
    page = ops.get(f"/admin/generation/backend/{backend.pk}/change/").content.decode()
    assert "environment variable RUNPOD_TEST_RP_KEY (set)" in page and KEY not in page


@pytest.mark.django_db
def test_a_runpod_backend_without_endpoint_or_key_is_refused_by_the_form(ops):
    response = ops.post(
        "/admin/generation/backend/add/",
        {
            "name": "RunPod B",
            "kind": BackendKind.RUNPOD,
            "base_url": "https://api.runpod.ai/v2",
            "capacity": 1,
            "queue_depth": 1,
        },
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert "A RunPod backend needs its endpoint id." in body
    assert "Enter the API key, or name the environment variable" in body


@pytest.mark.django_db
def test_a_changed_secrets_key_asks_for_the_key_again(ops, settings):
    backend = _add_runpod_backend(ops, "http://127.0.0.1:9/v2", KEY)
    settings.STORYCORE_SECRETS_KEY = "another-secrets-key"
    with pytest.raises(ProviderError) as unreadable:
        api_key_of(backend)
    assert "enter it again" in unreadable.value.message
    assert KEY not in unreadable.value.message

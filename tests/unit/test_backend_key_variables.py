"""A backend reads its API key only from a variable BACKEND_KEY_VARIABLES allows (RUNPOD_* by
default), and never from one of the studio's own secrets, whatever that setting says: refused when
saved (admin form, services, the command) and again when the key is read, so a row saved before
the rule cannot send SECRET_KEY, the secrets key or the database URL to a backend."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError

from generation import services
from generation.api_keys import api_key_of
from generation.backend_config import key_variable_problem
from generation.models import Backend, BackendKind
from generation.providers.base import ErrorCode, ProviderError

STUDIO_SECRETS = [
    "SECRET_KEY",
    "STORYCORE_SECRETS_KEY",
    "DATABASE_URL",
    "REDIS_URL",
    "METRICS_TOKEN",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "BUCKET_SECRET_ACCESS_KEY",
    "BUCKET_ACCESS_KEY_ID",
    "OUTLINE_API_KEY",
]


@pytest.fixture
def ops(client, django_user_model):
    admin = django_user_model.objects.create_superuser("ops", password="a-long-password-9")
    client.force_login(admin)
    return client


@pytest.mark.parametrize("name", STUDIO_SECRETS)
def test_the_studios_own_secrets_are_never_key_variables(name: str, settings) -> None:
    assert "studio's own secrets" in (key_variable_problem(name) or "")
    # Not even when the allowlist names them.
    settings.BACKEND_KEY_VARIABLES = [name, "AWS_*", "S*", "D*", "R*", "M*", "B*"]
    assert "studio's own secrets" in (key_variable_problem(name) or "")


def test_only_variables_the_allowlist_names_are_key_variables(settings) -> None:
    assert key_variable_problem("RUNPOD_API_KEY") is None
    assert key_variable_problem("RUNPOD_LOCAL_API_KEY") is None
    refused = key_variable_problem("HOME") or ""
    assert "not a variable backends may read their key from" in refused and "RUNPOD_*" in refused
    assert "not an environment variable name" in (key_variable_problem("runpod_key; echo") or "")
    settings.BACKEND_KEY_VARIABLES = ["GPU_FARM_KEY", "RENDER_*"]
    assert key_variable_problem("GPU_FARM_KEY") is None
    assert key_variable_problem("RENDER_NODE_7") is None
    assert key_variable_problem("RUNPOD_API_KEY") is not None


def test_every_secret_the_settings_read_is_refused() -> None:
    source = Path(django_settings.BASE_DIR, "storycore", "settings.py").read_text()
    read = set(
        re.findall(r"(?:env_\w+|secret_key_from|os\.environ\.get|getenv)\(\s*\"([A-Z0-9_]+)\"", source)
    )
    assert {"SECRET_KEY", "DATABASE_URL", "REDIS_URL", "METRICS_TOKEN"} <= read
    # Names with a key, secret, token or password in them, and the URLs that carry credentials.
    secret_looking = {n for n in read if re.search(r"(?:^|_)(?:KEY|SECRETS?|TOKEN|PASSWORD)(?:_|$)", n)}
    secret_looking |= {"DATABASE_URL", "REDIS_URL"}
    secret_looking -= {"BACKEND_KEY_VARIABLES"}  # the allowlist itself: a list of names
    for name in secret_looking:
        assert "studio's own secrets" in (key_variable_problem(name) or ""), name


def _runpod_form(**fields: Any) -> dict[str, Any]:
    return {
        "name": "RunPod Z",
        "kind": BackendKind.RUNPOD,
        "base_url": "https://api.runpod.ai/v2",
        "endpoint_id": "ep",
        "capacity": 1,
        "queue_depth": 1,
        **fields,
    }


@pytest.mark.django_db
@pytest.mark.parametrize(
    "name", ["SECRET_KEY", "STORYCORE_SECRETS_KEY", "DATABASE_URL", "AWS_SECRET_ACCESS_KEY"]
)
def test_the_admin_form_refuses_a_studio_secret_as_the_key_variable(ops, name: str) -> None:
    response = ops.post("/admin/generation/backend/add/", _runpod_form(api_key_env=name))
    assert response.status_code == 200
    page = html.unescape(response.content.decode())
    assert f"This variable is refused: {name} holds one of the studio's own secrets" in page
    assert not Backend.objects.exists()


@pytest.mark.django_db
def test_the_admin_form_refuses_a_variable_outside_the_allowlist_and_takes_one_inside(ops) -> None:
    response = ops.post("/admin/generation/backend/add/", _runpod_form(api_key_env="GITHUB_TOKEN"))
    page = html.unescape(response.content.decode())
    assert "GITHUB_TOKEN is not a variable backends may read their key from" in page
    assert "(BACKEND_KEY_VARIABLES)" in page
    response = ops.post("/admin/generation/backend/add/", _runpod_form(api_key_env="RUNPOD_PROD_KEY"))
    assert response.status_code == 302, response.content.decode()[-2000:]
    assert Backend.objects.get().api_key_env == "RUNPOD_PROD_KEY"


@pytest.mark.django_db
def test_the_services_and_the_command_refuse_a_studio_secret() -> None:
    with pytest.raises(ValidationError) as refused:
        services.backend_register_local_runpod(
            url="http://127.0.0.1:8191/v2", endpoint_id="ep", api_key_env="SECRET_KEY"
        )
    assert "SECRET_KEY holds one of the studio's own secrets" in refused.value.message_dict["api_key_env"][0]
    with pytest.raises(CommandError, match="METRICS_TOKEN holds one of the studio's own secrets"):
        call_command("register_local_runpod", "--api-key-env", "METRICS_TOKEN")
    assert not Backend.objects.exists()
    call_command("register_local_runpod")
    assert Backend.objects.get().api_key_env == "RUNPOD_LOCAL_API_KEY"


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["SECRET_KEY", "STORYCORE_SECRETS_KEY", "DATABASE_URL"])
def test_a_row_saved_before_the_rule_never_reads_a_studio_secret(ops, monkeypatch, name: str) -> None:
    secret = "studio-secret-value-7f3a91"
    monkeypatch.setenv(name, secret)
    backend = Backend.objects.create(
        name="old", kind=BackendKind.RUNPOD, base_url="http://127.0.0.1:9/v2", endpoint_id="ep"
    )
    Backend.objects.filter(pk=backend.pk).update(api_key_env=name)  # as an old row would hold
    backend.refresh_from_db()
    with pytest.raises(ProviderError) as refused:
        api_key_of(backend)
    assert refused.value.code == ErrorCode.CONFIG_INVALID
    assert f"may not read its API key from that variable: {name} holds one of the studio's own secrets" in (
        refused.value.message
    )
    health = services.backend_check_health(backend=backend)
    backend.refresh_from_db()
    assert not health.reachable and "may not read its API key" in backend.health_message
    page = html.unescape(ops.get(f"/admin/generation/backend/{backend.pk}/change/").content.decode())
    assert "refused: " in page
    for text in (refused.value.message, health.message, backend.health_message, page):
        assert secret not in text

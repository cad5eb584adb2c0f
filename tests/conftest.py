import time
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from rest_framework.authtoken.models import Token

from generation.services import backend_register_preview, workflow_templates_sync
from storycore.celery import app as celery_app
from tests.stack import database_url_of, settle_runs, start_stack

# Tests in this process never run renders themselves; messages they enqueue stay
# in memory. Integration tests start real workers on a real Valkey instead.
# The namespaced Django setting wins over `broker_url`, so both are set.
celery_app.conf.broker_url = celery_app.conf.CELERY_BROKER_URL = "memory://"


@pytest.fixture(autouse=True)
def _in_memory_channel_layer(settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


class QuickPBKDF2PasswordHasher(PBKDF2PasswordHasher):
    """The product's hasher with few rounds: a million rounds cost a quarter second per user
    created or signed in, which no test measures. The hashes it writes still name
    pbkdf2_sha256 and their rounds, so the stack's processes check them with their own hasher."""

    iterations = 1000


@pytest.fixture(autouse=True)
def _quick_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["tests.conftest.QuickPBKDF2PasswordHasher", *settings.PASSWORD_HASHERS]


@pytest.fixture
def staff_user(db):
    return get_user_model().objects.create_user("staff", password="a-long-password-1", is_staff=True)


@pytest.fixture
def writer(db):
    return get_user_model().objects.create_user("writer", password="a-long-password-2")


@pytest.fixture
def api_client(staff_user):
    from rest_framework.test import APIClient

    client = APIClient()
    token = Token.objects.create(user=staff_user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def template(db):
    from generation.services import workflow_templates_sync

    templates, errors = workflow_templates_sync()
    assert not errors
    return next(t for t in templates if t.slug == "storyboard-txt2img")


@pytest.fixture
def backend(db):
    from generation.services import backend_register_preview

    return backend_register_preview(url="http://127.0.0.1:9")


@pytest.fixture
def brief(staff_user):
    from briefs.services import brief_create

    return brief_create(
        user=staff_user,
        title="Night ferry",
        style="ink wash",
        scenes=[
            {"title": "Harbour", "prompt": "a ferry leaving a foggy harbour"},
            {"title": "Deck", "prompt": "two strangers on the deck at midnight"},
        ],
    )


@pytest.fixture(scope="module")
def stack(request, django_db_setup, django_db_blocker, tmp_path_factory):
    """Real processes for one test module, on the test database.

    Per module, not per session: the render watcher dispatches whatever it finds
    queued, so it must be gone before tests that queue jobs without it run.
    """
    database_url = database_url_of(django_settings.DATABASES["default"])
    var_dir = Path(tmp_path_factory.mktemp("stack"))
    # The stack shares this process's media folder: files either side stores are seen by the other.
    # A module may set STACK_PREVIEW_METHOD = "none": its renders then send no preview frames.
    preview_method = getattr(request.module, "STACK_PREVIEW_METHOD", "latent2rgb")
    with start_stack(
        database_url=database_url,
        var_dir=var_dir,
        media_root=Path(django_settings.MEDIA_ROOT),
        preview_method=preview_method,
    ) as running:
        yield running


@pytest.fixture
def studio(stack, transactional_db):
    """Per test: the template, the preview backend and a token for the API."""
    yield studio_on(stack)
    settle_runs()


def studio_on(stack) -> dict:
    """The templates, the stack's preview server as a backend the watcher follows, a staff user."""
    workflow_templates_sync()
    backend = backend_register_preview(url=stack.preview_url)
    # Renders sent before the watcher's socket is open are followed by polling only.
    deadline = time.monotonic() + 15
    while not type(backend).objects.filter(pk=backend.pk, socket_connected=True).exists():
        assert time.monotonic() < deadline, "the render watcher never connected to the preview server"
        time.sleep(0.05)
    user = get_user_model().objects.create_user("director", password="a-long-password-3", is_staff=True)
    token = Token.objects.create(user=user)
    return {"stack": stack, "token": token.key, "user": user}

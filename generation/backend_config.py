"""What a backend's configuration may say: where it points, and which variable its key comes from.

Both decide what leaves the studio: the key is sent as a bearer token to the URL.
The rules are checked when a backend is saved (model validation, which the admin
form runs, and the services that register backends) and again when it is used
(`generation.api_keys.api_key_of`, and the providers' URL checks at connect).
"""

from __future__ import annotations

import fnmatch
import re

from django.conf import settings
from django.core.exceptions import ValidationError

from generation.providers.url_policy import ANY_BACKEND, BY_KIND, UrlRefused, check_url

# The studio's own secrets, refused as key variables whatever BACKEND_KEY_VARIABLES says:
# every secret-bearing variable storycore/settings.py reads, the local endpoint's S3
# credentials, and the cloud credentials a process on a cloud machine may hold.
STUDIO_SECRETS = (
    "SECRET_KEY",
    "STORYCORE_*",  # STORYCORE_SECRETS_KEY decrypts every stored API key
    "DATABASE_URL",
    "REDIS_URL",
    "METRICS_TOKEN",
    "AWS_*",
    "BUCKET_*",
    "DJANGO_*",
    "OUTLINE_*",  # the outline endpoint's key
    "OPENAI_*",
)
_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")


def key_variable_problem(name: str) -> str | None:
    """Why a backend may not read its API key from the environment variable `name`, or None."""
    if not _NAME.fullmatch(name):
        return f"{name[:100]!r} is not an environment variable name (capital letters, digits and _)"
    if any(fnmatch.fnmatchcase(name, pattern) for pattern in STUDIO_SECRETS):
        return f"{name} holds one of the studio's own secrets; it is never sent to a backend"
    allowed = settings.BACKEND_KEY_VARIABLES
    if not any(fnmatch.fnmatchcase(name, pattern) for pattern in allowed):
        return (
            f"{name} is not a variable backends may read their key from; "
            f"name one matching {', '.join(allowed) or 'nothing'} (BACKEND_KEY_VARIABLES)"
        )
    return None


def url_problem(url: str, *, kind: str | None = None) -> str | None:
    """Why a backend of `kind` (any kind when None) may not point at `url`, or None."""
    try:
        check_url(url, BY_KIND.get(kind or "", ANY_BACKEND))
    except UrlRefused as refused:
        return refused.message
    return None


def backend_config_problems(*, kind: str, base_url: str, api_key_env: str) -> dict[str, str]:
    """Every rule the configuration breaks, by field."""
    problems = {}
    if (url := url_problem(base_url, kind=kind)) is not None:
        problems["base_url"] = f"This URL is refused: {url}."
    if api_key_env and (key := key_variable_problem(api_key_env)) is not None:
        problems["api_key_env"] = f"This variable is refused: {key}."
    return problems


def validate_backend_url(value: str) -> None:
    """A field validator: the URL rules every backend follows, whatever its kind."""
    if (problem := url_problem(value)) is not None:
        raise ValidationError(f"This URL is refused: {problem}.", code="url_refused")


def validate_key_variable(value: str) -> None:
    if value and (problem := key_variable_problem(value)) is not None:
        raise ValidationError(f"This variable is refused: {problem}.", code="key_variable_refused")

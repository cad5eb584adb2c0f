"""API keys of backends: kept encrypted at rest, or read from a named environment variable.

The variable must be one BACKEND_KEY_VARIABLES allows and never one of the studio's
own secrets (generation.backend_config); that is checked again here, on every read,
so a backend saved before the rule existed cannot send such a value anywhere.

The key material is STORYCORE_SECRETS_KEY, or SECRET_KEY when that is not set,
stretched into a Fernet key. Changing it makes stored keys unreadable: they must
be entered again (the error says so). A key is never shown after it is saved.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import os

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings

from generation.backend_config import key_variable_problem
from generation.models import Backend
from generation.providers.base import ErrorCode, ProviderError

# Fixed and public: it only separates this use of the secret from Django's own.
_CONTEXT = b"storycore backend api keys v1"


def _fernet() -> Fernet:
    return _fernet_for(settings.STORYCORE_SECRETS_KEY or settings.SECRET_KEY)


@functools.lru_cache(maxsize=4)
def _fernet_for(secret: str) -> Fernet:
    # Stretching costs tens of milliseconds; every poll of a RunPod render reads the key.
    key = hashlib.pbkdf2_hmac("sha256", secret.encode(), _CONTEXT, 100_000)
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt_api_key(plain: str) -> str:
    return _fernet().encrypt(plain.encode()).decode("ascii")


def decrypt_api_key(token: str) -> str:
    return _fernet().decrypt(token.encode("ascii")).decode()


def api_key_of(backend: Backend) -> str:
    """The backend's API key, from its environment variable or its encrypted copy."""
    if backend.api_key_env:
        problem = key_variable_problem(backend.api_key_env)
        if problem is not None:
            raise ProviderError(
                ErrorCode.CONFIG_INVALID,
                f"backend {backend.name} may not read its API key from that variable: {problem}; "
                "choose another in the admin",
            )
        value = os.environ.get(backend.api_key_env, "")
        if not value:
            raise ProviderError(
                ErrorCode.AUTH_FAILED,
                f"backend {backend.name} reads its API key from the environment variable "
                f"{backend.api_key_env}, which is not set in this process",
            )
        return value
    if not backend.api_key_encrypted:
        raise ProviderError(
            ErrorCode.AUTH_FAILED, f"backend {backend.name} has no API key; set one in the admin"
        )
    try:
        return decrypt_api_key(backend.api_key_encrypted)
    except (InvalidToken, ValueError):
        raise ProviderError(
            ErrorCode.AUTH_FAILED,
            f"the stored API key of backend {backend.name} cannot be decrypted (the secrets key changed); "
            "enter it again in the admin",
        ) from None


def api_key_state(backend: Backend) -> str:
    """What staff may know about the key: where it comes from, never its value."""
    if backend.api_key_env:
        problem = key_variable_problem(backend.api_key_env)
        if problem is not None:
            return f"refused: {problem}"
        found = "set" if os.environ.get(backend.api_key_env) else "NOT set in this process"
        return f"read from the environment variable {backend.api_key_env} ({found})"
    return "a key is set (stored encrypted)" if backend.api_key_encrypted else "no key set"

"""A Backend row and a queue policy, as the provider that speaks to it.

The one place the studio turns its settings, a backend's row and its API key into a
`BackendConfig`; which class speaks to the backend is the registry's business
(`generation.providers.registry`), so nothing here names a backend kind.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from generation.api_keys import api_key_of
from generation.models import Backend
from generation.providers import registry
from generation.providers.base import BackendConfig, Provider


def backend_config(backend: Backend, policy: dict[str, Any] | None = None) -> BackendConfig:
    """The config of `backend` under the queue policy `policy` (the environment's defaults for
    knobs it leaves out). Raises ProviderError when the backend's API key cannot be read."""
    policy = policy or {}
    return BackendConfig(
        kind=backend.kind,
        name=backend.name,
        base_url=backend.base_url,
        endpoint_id=backend.endpoint_id,
        api_key=api_key_of(backend) if registry.uses_api_key(backend.kind) else "",
        client_id=backend.watch_client_id,
        connect_timeout_s=float(settings.RENDER_CONNECT_TIMEOUT),
        poll_interval_s=float(policy.get("poll_interval_s", settings.RENDER_POLL_INTERVAL)),
        post_execution_timeout_s=float(
            policy.get("post_execution_timeout_s", settings.RENDER_POST_EXECUTION_TIMEOUT)
        ),
        max_output_bytes=int(settings.ARTIFACT_MAX_BYTES),
    )


def provider_for(backend: Backend, policy: dict[str, Any] | None = None) -> Provider:
    """The provider for `backend`; a ProviderError (CONFIG_INVALID, AUTH_FAILED) when it cannot be built."""
    return registry.provider_for(backend_config(backend, policy))

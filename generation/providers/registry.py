"""Which provider speaks which backend kind. Pure Python, no Django.

A provider module registers a factory for its kind; `provider_for` builds one from a
`BackendConfig`. The studio's Django side (`generation.backend_providers`) fills the config
in from a Backend row and the queue policy in force, and never names a provider class.
"""

from __future__ import annotations

from collections.abc import Callable

from generation.providers import comfyui, runpod
from generation.providers.base import BackendConfig, ErrorCode, Provider, ProviderError

Factory = Callable[[BackendConfig], Provider]

_FACTORIES: dict[str, Factory] = {}
_KEYED: set[str] = set()


def register(kind: str, factory: Factory, *, api_key: bool = False) -> None:
    """Build providers of backend kind `kind` with `factory` from now on. `api_key`: the kind
    sends an API key, so the config carries the backend's (read only for such kinds)."""
    _FACTORIES[kind] = factory
    if api_key:
        _KEYED.add(kind)
    else:
        _KEYED.discard(kind)


def unregister(kind: str) -> None:
    _FACTORIES.pop(kind, None)
    _KEYED.discard(kind)


def uses_api_key(kind: str) -> bool:
    return kind in _KEYED


def kinds() -> frozenset[str]:
    """The backend kinds a provider can be built for."""
    return frozenset(_FACTORIES)


def provider_for(config: BackendConfig) -> Provider:
    """A provider for the backend `config` describes. CONFIG_INVALID for a kind nobody registered,
    or whatever the kind's factory refuses (a URL the policy forbids, a missing API key)."""
    factory = _FACTORIES.get(config.kind)
    if factory is None:
        raise ProviderError(
            ErrorCode.CONFIG_INVALID,
            f"backend {config.name} is a {config.kind} backend, not yet supported",
        )
    return factory(config)


register(comfyui.KIND, comfyui.from_config)
register(runpod.KIND, runpod.from_config, api_key=True)

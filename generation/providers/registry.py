"""Which provider speaks which backend kind, and how its renders are followed.
Pure Python, no Django.

A provider module registers a factory for its kind (the last lines here); `provider_for`
builds one from a `BackendConfig`. The studio's Django side (`generation.backend_providers`)
fills the config in from a Backend row and the queue policy in force, and the render watcher
asks `follow_of` how to follow a backend, so neither names a provider class.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from generation.providers import comfyui, runpod
from generation.providers.base import BackendConfig, ErrorCode, Provider, ProviderError

Factory = Callable[[BackendConfig], Provider]


class Follow(enum.StrEnum):
    """How the render watcher follows a kind's renders."""

    # Each render is checked on its queue policy's poll interval (the backend pushes nothing).
    POLL = "poll"
    # One ComfyUI socket per backend carries every render on it (comfyui_follow.SocketFollower),
    # with checks behind it.
    COMFYUI_SOCKET = "comfyui_socket"


@dataclass(frozen=True)
class _Kind:
    factory: Factory
    api_key: bool
    follow: Follow


_KINDS: dict[str, _Kind] = {}


def register(kind: str, factory: Factory, *, api_key: bool = False, follow: Follow = Follow.POLL) -> None:
    """Build providers of backend kind `kind` with `factory` from now on. `api_key`: the kind sends
    an API key, so the config carries the backend's (read only for such kinds)."""
    _KINDS[kind] = _Kind(factory, api_key, follow)


def unregister(kind: str) -> None:
    _KINDS.pop(kind, None)


def kinds() -> frozenset[str]:
    """The backend kinds a provider can be built for."""
    return frozenset(_KINDS)


def uses_api_key(kind: str) -> bool:
    found = _KINDS.get(kind)
    return found is not None and found.api_key


def follow_of(kind: str) -> Follow:
    """How renders on a backend of this kind are followed (an unknown kind: polled, and each
    check fails on `provider_for`'s CONFIG_INVALID)."""
    found = _KINDS.get(kind)
    return found.follow if found is not None else Follow.POLL


def provider_for(config: BackendConfig) -> Provider:
    """A provider for the backend `config` describes. CONFIG_INVALID for a kind nobody registered,
    or whatever the kind's factory refuses (a URL the policy forbids, a missing API key)."""
    found = _KINDS.get(config.kind)
    if found is None:
        raise ProviderError(
            ErrorCode.CONFIG_INVALID,
            f"backend {config.name} is a {config.kind} backend, not yet supported",
        )
    return found.factory(config)


register(comfyui.KIND, comfyui.from_config, follow=Follow.COMFYUI_SOCKET)
register(runpod.KIND, runpod.from_config, api_key=True)

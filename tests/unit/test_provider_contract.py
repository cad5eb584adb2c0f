"""One provider contract: every provider is a `Provider`, and which one a backend gets is the
registry's answer, for the studio's rows as for a kind registered by a test."""

from __future__ import annotations

import inspect
from contextlib import AbstractContextManager
from typing import Any

import pytest

from generation import backend_providers, services
from generation.models import BackendKind
from generation.providers import registry
from generation.providers.base import (
    BackendConfig,
    BackendHealth,
    ErrorCode,
    Place,
    ProgressEvent,
    Provider,
    ProviderError,
    RemoteHandle,
    RemoteOutput,
    RenderRequest,
)
from generation.providers.comfyui import ComfyUIProvider
from generation.providers.runpod import RunPodProvider

# The Protocol's members that are methods; the rest are attributes every provider carries.
CONTRACT_METHODS = [
    name
    for name, member in vars(Provider).items()
    if callable(member) and (not name.startswith("_") or name in ("__enter__", "__exit__"))
]
CONTRACT_ATTRIBUTES = sorted(Provider.__annotations__)


def _comfyui() -> ComfyUIProvider:
    return ComfyUIProvider("http://127.0.0.1:9")


def _runpod() -> RunPodProvider:
    return RunPodProvider("http://127.0.0.1:9/v2", "ep", "rp-key")


def test_the_contract_lists_every_method_and_attribute_the_studio_uses() -> None:
    assert set(CONTRACT_METHODS) == {
        "__enter__",
        "__exit__",
        "close",
        "submit",
        "locate",
        "outcome",
        "queue_place",
        "outputs",
        "recover_outputs",
        "fetch",
        "cancel",
        "health",
        "object_info",
    }
    assert CONTRACT_ATTRIBUTES == ["fallback_notes", "kind", "last_answer", "telemetry"]
    # Following a render is the watcher's loop, not a provider's.
    assert not hasattr(Provider, "events")


@pytest.mark.parametrize("make", [_comfyui, _runpod], ids=["comfyui", "runpod"])
def test_each_provider_satisfies_the_contract_method_by_method(make: Any) -> None:
    # mypy checks the same statically where the registry registers each factory
    # (a Callable[[BackendConfig], Provider]); this is the runtime half.
    with make() as provider:
        assert isinstance(provider, Provider)
        for name in CONTRACT_METHODS:
            wanted = inspect.signature(getattr(Provider, name))
            found = inspect.signature(getattr(type(provider), name))
            assert [(p.name, p.kind) for p in found.parameters.values()] == [
                (p.name, p.kind) for p in wanted.parameters.values()
            ], name
        assert isinstance(provider.fallback_notes, list)
        assert isinstance(provider.telemetry, dict)
        assert provider.kind in registry.kinds()


class FakeProvider:
    """A backend kind the studio has never heard of, registered by this test alone."""

    kind = "fake"

    def __init__(self, config: BackendConfig) -> None:
        self.config = config
        self.fallback_notes: list[str] = []
        self.telemetry: dict[str, Any] = {}
        self.last_answer: Any = None
        self.closed = False

    def __enter__(self) -> FakeProvider:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.closed = True

    def submit(self, request: RenderRequest) -> RemoteHandle:
        return RemoteHandle(self.kind, request.attempt_id)

    def locate(self, handle: RemoteHandle) -> Place:
        return "unknown"

    def outcome(self, handle: RemoteHandle) -> ProgressEvent | None:
        return None

    def queue_place(self, handle: RemoteHandle) -> Place:
        return "unknown"

    def outputs(self, handle: RemoteHandle) -> list[RemoteOutput]:
        return []

    def recover_outputs(self, *, prefix: str, reported: list[RemoteOutput]) -> list[RemoteOutput]:
        return []

    def fetch(self, output: RemoteOutput) -> AbstractContextManager[Any]:
        raise ProviderError(ErrorCode.OUTPUT_INVALID, "nothing to fetch")

    def cancel(self, handle: RemoteHandle) -> None:
        pass

    def health(self) -> BackendHealth:
        return BackendHealth(reachable=True, message="fake")

    def object_info(self) -> dict[str, Any]:
        return {}


@pytest.fixture
def fake_kind() -> Any:
    registry.register("fake", FakeProvider)
    yield "fake"
    registry.unregister("fake")


def test_a_kind_registered_by_a_test_is_what_provider_for_builds(fake_kind: str) -> None:
    config = BackendConfig(kind=fake_kind, name="somewhere", base_url="http://fake.test")
    provider = registry.provider_for(config)
    assert isinstance(provider, FakeProvider) and provider.config is config
    assert isinstance(provider, Provider)
    assert fake_kind in registry.kinds() and not registry.uses_api_key(fake_kind)
    # A kind that pushes nothing is polled by the render watcher (its PollWatch).
    assert registry.follow_of(fake_kind) == registry.Follow.POLL
    assert registry.follow_of("comfyui") == registry.Follow.COMFYUI_SOCKET


def test_an_unregistered_kind_is_a_config_error_naming_the_backend(fake_kind: str) -> None:
    registry.unregister(fake_kind)
    with pytest.raises(ProviderError) as refused:
        registry.provider_for(BackendConfig(kind=fake_kind, name="somewhere", base_url="http://fake.test"))
    assert refused.value.code == ErrorCode.CONFIG_INVALID
    assert "backend somewhere is a fake backend, not yet supported" in refused.value.message


@pytest.mark.django_db
def test_the_studio_builds_a_backends_provider_through_the_registry(
    backend: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[BackendConfig] = []

    def fake(config: BackendConfig) -> FakeProvider:
        built.append(config)
        return FakeProvider(config)

    monkeypatch.setattr(registry, "_KINDS", dict(registry._KINDS))
    registry.register(BackendKind.COMFYUI.value, fake, follow=registry.Follow.COMFYUI_SOCKET)
    policy = {"poll_interval_s": 0.5, "post_execution_timeout_s": 7, "max_wait_s": 60}
    with backend_providers.provider_for(backend, policy) as provider:
        assert isinstance(provider, FakeProvider)
    [config] = built
    assert (config.kind, config.name, config.base_url) == (backend.kind, backend.name, backend.base_url)
    assert config.client_id == backend.watch_client_id
    assert (config.poll_interval_s, config.post_execution_timeout_s) == (0.5, 7.0)
    assert config.api_key == ""  # a ComfyUI backend sends none, so none is read
    # The services reach the same registry (health, catalogue).
    assert services.backend_check_health(backend=backend).message == "fake"


@pytest.mark.django_db
def test_a_runpod_backends_config_carries_its_key_and_never_shows_it(db: Any) -> None:
    from generation.models import Backend

    runpod = Backend.objects.create(
        name="rp", kind=BackendKind.RUNPOD, base_url="https://api.runpod.ai/v2", endpoint_id="ep"
    )
    with pytest.raises(ProviderError) as keyless:
        backend_providers.provider_for(runpod)
    assert keyless.value.code == ErrorCode.AUTH_FAILED and "has no API key" in keyless.value.message
    services.backend_set_api_key(backend=runpod, api_key="rp-secret-0a1b2c3d4e5f")
    runpod.refresh_from_db()
    config = backend_providers.backend_config(runpod)
    assert config.api_key == "rp-secret-0a1b2c3d4e5f" and config.endpoint_id == "ep"
    assert "rp-secret" not in repr(config)
    with backend_providers.provider_for(runpod) as provider:
        assert isinstance(provider, RunPodProvider)

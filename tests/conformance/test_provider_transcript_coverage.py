"""Every recorded scenario drives the provider: a new recording cannot be left untested."""

from __future__ import annotations

import pathlib

from .conftest import DATA_DIR

HERE = pathlib.Path(__file__).resolve().parent
# Data the scenarios use, not scenarios: the node catalogue and the default graphs.
NOT_SCENARIOS = ("object_info*.json", "default_workflow*.json")


def _scenarios() -> list[str]:
    data = {path.name for pattern in NOT_SCENARIOS for path in DATA_DIR.glob(pattern)}
    return sorted(path.name for path in DATA_DIR.glob("*.json") if path.name not in data)


def _provider_test_modules() -> dict[str, str]:
    """The text of each module that drives ComfyUIProvider against the servers (this one aside)."""
    return {
        path.name: path.read_text(encoding="utf-8")
        for path in sorted(HERE.glob("test_provider_*.py"))
        if path.name != pathlib.Path(__file__).name
    }


def test_every_recorded_scenario_is_named_by_a_provider_test_module() -> None:
    scenarios = _scenarios()
    assert "get_endpoints.json" in scenarios and "object_info.json" not in scenarios, scenarios
    modules = _provider_test_modules()
    untested = [name for name in scenarios if not any(name in text for text in modules.values())]
    assert untested == [], f"no test_provider_*.py module names {untested}; add a test that replays them"

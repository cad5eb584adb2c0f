"""Each attempt rule of the telemetry contract, with records that pass and records that fail it."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from telemetry.collector import build_attempt_record
from telemetry.contract import REQUIRED_FIELDS
from telemetry.probes import GpuSnapshot
from telemetry.validation import ATTEMPT_CHECKS, validate_attempt, validation_report

T0 = datetime(2026, 11, 25, 19, 0, tzinfo=UTC)
POLICY = {
    "name": "environment defaults",
    "max_wait_s": 600.0,
    "poll_interval_s": 2.0,
    "max_poll_attempts": 0,
    "post_execution_timeout_s": 30.0,
    "retry_budget": 1,
}


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def h100(*, used_mb: int, probe: str = "pynvml", notes: tuple[str, ...] = ()) -> GpuSnapshot:
    return GpuSnapshot(probe, "NVIDIA H100 80GB HBM3", 0, 81559, 81559 - used_mb, used_mb, notes)


def success_record(**changes: Any) -> dict[str, Any]:
    """A ComfyUI render that succeeded, measured by pynvml before and nvidia-smi after."""
    figures: dict[str, Any] = {
        "backend_kind": "comfyui",
        "attempt_number": 1,
        "policy": POLICY,
        "started_at": at(0),
        "finished_at": at(14.5),
        "queue_started_at": at(0.2),
        "queue_ended_at": at(12.9),
        "execution_started_at": at(1.0),
        "success_detected_at": at(12.4),
        "history_attempts": 3,
        "exit_reason": "success",
        "output_complete_detected": True,
        "output_wait_s": 0.5,
        "gpu_before": h100(used_mb=480),
        "gpu_after": h100(used_mb=9800, probe="nvidia_smi", notes=("pynvml failed: NVML did not start",)),
        "failed_polls": 0,
    }
    figures.update(changes)
    return build_attempt_record(**figures)


def max_wait_record() -> dict[str, Any]:
    return success_record(
        policy=dict(POLICY, max_wait_s=10.0),
        queue_ended_at=at(10.3),
        finished_at=at(10.4),
        success_detected_at=None,
        exit_reason="maxWait",
        output_complete_detected=False,
        output_wait_s=None,
        gpu_before=GpuSnapshot(None, None, None, None, None, None, ("no GPU figures: no probe enabled",)),
        gpu_after=None,
    )


def attempt_limit_record() -> dict[str, Any]:
    return success_record(
        policy=dict(POLICY, max_poll_attempts=5),
        history_attempts=5,
        success_detected_at=None,
        exit_reason="attemptLimit",
        output_complete_detected=False,
        output_wait_s=None,
    )


def post_execution_record() -> dict[str, Any]:
    return success_record(
        policy=dict(POLICY, post_execution_timeout_s=1.0),
        exit_reason="postExecution",
        output_complete_detected=False,
        output_wait_s=1.2,
        attempt_number=2,
    )


def unknown_record() -> dict[str, Any]:
    """Refused at submit: never queued, no verdict, no GPU."""
    return success_record(
        queue_started_at=None,
        queue_ended_at=None,
        execution_started_at=None,
        success_detected_at=None,
        history_attempts=0,
        exit_reason="unknown",
        output_complete_detected=False,
        output_wait_s=None,
        gpu_before=None,
        gpu_after=None,
    )


def runpod_record() -> dict[str, Any]:
    return success_record(
        backend_kind="runpod",
        runpod_delay_time_ms=9862,
        runpod_execution_time_ms=4097,
        price_per_gpu_second_usd=0.00076,
        gpu_before=None,
        gpu_after=None,
    )


VALID = {
    "success": success_record,
    "maxWait": max_wait_record,
    "attemptLimit": attempt_limit_record,
    "postExecution": post_execution_record,
    "unknown": unknown_record,
    "runpod": runpod_record,
}


@pytest.mark.parametrize("kind", VALID)
def test_every_rule_passes_a_valid_record(kind: str) -> None:
    results = validate_attempt(VALID[kind]())
    assert [r.check for r in results] == list(ATTEMPT_CHECKS)
    assert [r for r in results if not r.passed] == []


def _set(**values: Any) -> Callable[[dict[str, Any]], None]:
    def change(record: dict[str, Any]) -> None:
        record.update(values)

    return change


def _shift(name: str, by: int) -> Callable[[dict[str, Any]], None]:
    def change(record: dict[str, Any]) -> None:
        record[name] += by

    return change


def _drop(name: str) -> Callable[[dict[str, Any]], None]:
    def change(record: dict[str, Any]) -> None:
        del record[name]

    return change


# (check that must fail, the valid record to start from, the change that breaks it)
BROKEN: list[tuple[str, str, Callable[[dict[str, Any]], None]]] = [
    ("schema", "success", _set(history_exit_reason="failed")),
    ("schema", "success", _set(surprise_field=1)),
    ("schema", "success", _set(vram_total_mb=-1)),
    ("required_fields", "success", _drop("gpu_seconds")),
    ("timestamps", "success", _set(queue_started_at="2026-11-25 19:00:00")),
    ("timestamps", "success", _set(queue_ended_at="yesterday")),
    ("gpu_fields_consistent", "success", _set(gpu_probe_after=None)),
    ("gpu_fields_consistent", "maxWait", _set(vram_total_mb=81559)),
    ("gpu_fields_consistent", "success", _set(gpu_name=None)),
    ("vram_delta", "success", _shift("vram_delta_mb", 1)),
    ("vram_delta", "maxWait", _set(vram_delta_mb=0)),
    ("vram_within_total", "success", _set(vram_free_before_mb=81560)),
    ("vram_within_total", "success", _set(vram_after_mb=90000, vram_delta_mb=90000 - 480)),
    ("vram_used_plus_free_is_total", "success", _shift("vram_total_mb", 1)),
    ("vram_used_plus_free_is_total", "success", _shift("vram_free_after_mb", -7)),
    ("exit_reason_matches_success", "success", _set(execution_success_detected=False)),
    ("exit_reason_matches_success", "postExecution", _set(execution_success_detected=False)),
    ("exit_reason_matches_success", "maxWait", _set(execution_success_detected=True)),
    ("success_detection_time", "success", _set(execution_success_detected_at=None)),
    ("success_detection_time", "success", _set(execution_success_detected_at=at(13).isoformat())),
    ("success_detection_time", "success", _set(execution_success_detected_at=at(0.5).isoformat())),
    ("history_attempts_within_limit", "attemptLimit", _set(history_attempts=6)),
    ("history_attempts_within_limit", "attemptLimit", _set(history_attempts=4)),
    ("history_attempts_within_limit", "success", _set(history_exit_reason="attemptLimit")),
    ("post_execution_consistent", "success", _set(post_execution_timeout_reached=True)),
    ("post_execution_consistent", "postExecution", _set(post_execution_timeout_reached=False)),
    ("fallback_notes_warned", "success", _set(warnings=[])),
    ("fallback_notes_warned", "success", _set(fallback_notes=["GPU after: something else"])),
    ("queue_window", "success", _set(queue_ended_at=at(0.1).isoformat())),
    ("queue_window", "success", _set(queue_started_at=None)),
    ("queue_window", "success", _set(duration_s=5.0)),
    ("queue_window", "success", _set(execution_started_at=at(13).isoformat())),
    ("max_wait_reached", "maxWait", _set(max_wait_s=600.0)),
    ("max_wait_reached", "maxWait", _set(queue_ended_at=None)),
    ("retry_budget", "postExecution", _set(retry_budget=0)),
    ("retry_budget", "success", _set(attempt_number=3)),
    ("gpu_seconds", "runpod", _set(gpu_seconds=4.2)),
    ("gpu_seconds", "unknown", _set(gpu_seconds=3.0)),
    ("gpu_seconds", "success", _set(gpu_seconds=60.0)),
    ("estimated_cost", "runpod", _set(estimated_cost_usd=1.0)),
    ("estimated_cost", "runpod", _set(estimated_cost_usd=None)),
    ("estimated_cost", "success", _set(estimated_cost_usd=0.01)),
    ("runpod_fields", "success", _set(runpod_delay_time_ms=120)),
    ("artifact_stability", "success", _set(output_complete_detected=False)),
    ("artifact_stability", "postExecution", _set(output_wait_s=0.5)),
    ("artifact_stability", "postExecution", _set(output_complete_detected=True)),
    ("artifact_stability", "success", _set(output_wait_s=31.0)),
]


def test_every_rule_has_a_failing_case() -> None:
    assert {check for check, _, _ in BROKEN} == set(ATTEMPT_CHECKS)


@pytest.mark.parametrize(
    ("check", "start", "change"), BROKEN, ids=[f"{c}-{i}" for i, (c, _, _) in enumerate(BROKEN)]
)
def test_a_broken_record_fails_its_rule(
    check: str, start: str, change: Callable[[dict[str, Any]], None]
) -> None:
    record = copy.deepcopy(VALID[start]())
    change(record)
    result = next(r for r in validate_attempt(record) if r.check == check)
    assert not result.passed, result
    assert result.message


def test_a_failed_rule_names_the_offending_values() -> None:
    record = success_record()
    record["vram_delta_mb"] += 3
    result = next(r for r in validate_attempt(record) if r.check == "vram_delta")
    assert result.offending == {"vram_before_mb": 480, "vram_after_mb": 9800, "vram_delta_mb": 9323}
    assert result.message == "vram_delta_mb is 9323, after - before is 9320"


def test_a_rule_whose_inputs_are_missing_fails_as_unchecked() -> None:
    record = success_record()
    del record["vram_after_mb"]
    result = next(r for r in validate_attempt(record) if r.check == "vram_delta")
    assert (result.passed, result.message) == (False, "cannot be checked: vram_after_mb is missing")


def test_a_record_that_is_not_an_object_fails_every_rule() -> None:
    assert all(not r.passed for r in validate_attempt([1, 2]))  # type: ignore[arg-type]


def test_the_report_is_storable_and_names_failed_checks() -> None:
    record = success_record()
    del record["warnings"]
    report = validation_report(validate_attempt(record), subject="attempt 42")
    assert report["subject"] == "attempt 42"
    assert report["passed"] is False
    assert report["failed"] == ["schema", "required_fields", "fallback_notes_warned"]
    assert report["checks"][0]["offending"]["errors"][0] == {
        "path": "$",
        "message": "'warnings' is a required property",
    }
    assert validation_report(validate_attempt(success_record()), subject="x")["passed"] is True


def test_required_fields_are_what_the_schema_requires() -> None:
    record = success_record()
    assert set(REQUIRED_FIELDS) <= set(record)
    assert set(record) - set(REQUIRED_FIELDS) == {"failed_polls"}

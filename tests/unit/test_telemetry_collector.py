"""The collector: what it computes, and that what it builds always passes the contract (property-based)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from telemetry.collector import TelemetryInputError, build_attempt_record
from telemetry.contract import EXIT_REASONS, PROBES, REQUIRED_FIELDS, VRAM_FIELDS
from telemetry.probes import GpuSnapshot
from telemetry.validation import validate_attempt
from tests.unit.test_telemetry_attempt_rules import POLICY, at, h100, success_record


def _failed(record: dict[str, Any]) -> list[str]:
    return [r.check for r in validate_attempt(record) if not r.passed]


def test_it_computes_duration_delta_and_gpu_seconds() -> None:
    record = success_record()
    assert record["duration_s"] == 14.5
    assert (record["vram_before_mb"], record["vram_after_mb"], record["vram_delta_mb"]) == (480, 9800, 9320)
    assert (record["vram_free_before_mb"], record["vram_free_after_mb"]) == (81079, 71759)
    assert (record["gpu_probe_before"], record["gpu_probe_after"]) == ("pynvml", "nvidia_smi")
    # From execution start (1.0 s) to the success message (12.4 s).
    assert record["gpu_seconds"] == 11.4
    assert record["estimated_cost_usd"] is None
    assert record["schema_version"] == "1.0"


def test_it_takes_the_policy_snapshot() -> None:
    record = success_record(policy=dict(POLICY, max_poll_attempts=9, retry_budget=2))
    assert (record["history_limit"], record["retry_budget"]) == (9, 2)
    assert (record["max_wait_s"], record["poll_interval_s"], record["post_execution_timeout_s"]) == (
        600.0,
        2.0,
        30.0,
    )


def test_it_warns_for_each_fallback_note() -> None:
    record = success_record(notes=["websocket unavailable (ConnectionRefusedError); following /history"])
    assert record["fallback_notes"] == [
        "GPU after: pynvml failed: NVML did not start",
        "websocket unavailable (ConnectionRefusedError); following /history",
    ]
    assert record["warnings"] == [f"fallback: {note}" for note in record["fallback_notes"]]


def test_runpod_gpu_seconds_and_cost_come_from_execution_time() -> None:
    record = success_record(
        backend_kind="runpod",
        runpod_delay_time_ms=9862,
        runpod_execution_time_ms=4097,
        price_per_gpu_second_usd=0.00076,
    )
    assert record["gpu_seconds"] == 4.097
    assert record["estimated_cost_usd"] == pytest.approx(4.097 * 0.00076)
    assert (record["runpod_delay_time_ms"], record["runpod_execution_time_ms"]) == (9862, 4097)


def test_no_gpu_is_recorded_as_nulls_with_its_notes() -> None:
    none = GpuSnapshot(None, None, None, None, None, None, ("no GPU figures: nvidia_smi gave none",))
    record = success_record(gpu_before=none, gpu_after=none)
    assert all(record[name] is None for name in VRAM_FIELDS)
    assert record["gpu_name"] is None and record["gpu_probe_before"] is None
    assert len(record["warnings"]) == 2
    assert _failed(record) == []


def test_a_different_gpu_after_is_left_out_with_a_warning() -> None:
    other = GpuSnapshot("nvidia_smi", "NVIDIA L4", 1, 22491, 20000, 2491)
    record = success_record(gpu_after=other)
    assert record["vram_after_mb"] is None and record["vram_delta_mb"] is None
    assert record["gpu_name"] == "NVIDIA H100 80GB HBM3"
    assert "is not the one before" in record["warnings"][0]


def test_contradictory_figures_raise_naming_the_rule() -> None:
    with pytest.raises(TelemetryInputError) as caught:
        success_record(success_detected_at=None)
    assert "exit_reason_matches_success" in {f.check for f in caught.value.failures}
    assert "exit_reason_matches_success: exit reason success needs" in str(caught.value)


# -- properties -------------------------------------------------------------------------------

PROBE_OR_NONE = st.sampled_from([*PROBES, None])
SECONDS = st.floats(min_value=0, max_value=900, allow_nan=False, allow_infinity=False)


@st.composite
def snapshots(draw: st.DrawFn, total_mb: int) -> GpuSnapshot:
    notes = tuple(draw(st.lists(st.text(min_size=1, max_size=30), max_size=2)))
    probe = draw(PROBE_OR_NONE)
    if probe is None:
        return GpuSnapshot(None, None, None, None, None, None, notes)
    free = draw(st.integers(min_value=0, max_value=total_mb))
    return GpuSnapshot(probe, "NVIDIA H100 80GB HBM3", 0, total_mb, free, total_mb - free, notes)


@st.composite
def attempt_figures(draw: st.DrawFn) -> dict[str, Any]:
    """Figures a real attempt could produce, for every exit reason and backend kind."""
    reason = draw(st.sampled_from(EXIT_REASONS))
    budget = draw(st.integers(min_value=0, max_value=3))
    policy = {
        "name": "drawn",
        "max_wait_s": draw(st.floats(min_value=0.5, max_value=3600)),
        "poll_interval_s": draw(st.floats(min_value=0.1, max_value=10)),
        "max_poll_attempts": draw(st.integers(min_value=1 if reason == "attemptLimit" else 0, max_value=50)),
        "post_execution_timeout_s": draw(st.floats(min_value=0, max_value=120)),
        "retry_budget": budget,
    }
    limit = policy["max_poll_attempts"]
    if reason == "attemptLimit":
        history_attempts = limit
    else:
        history_attempts = draw(st.integers(min_value=0, max_value=limit or 500))

    queued = reason != "unknown" or draw(st.booleans())
    started_at = T0 = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=draw(SECONDS))
    queue_started = queue_ended = execution_started = success_at = None
    if queued:
        queue_started = T0 + timedelta(seconds=draw(SECONDS))
        wait = draw(SECONDS)
        if reason == "maxWait":
            wait += policy["max_wait_s"]
        queue_ended = queue_started + timedelta(seconds=wait)
        if draw(st.booleans()) or reason in ("success", "postExecution"):
            execution_started = queue_started + timedelta(seconds=wait * draw(st.floats(0, 1)))
        detect = reason in ("success", "postExecution") or (reason == "unknown" and draw(st.booleans()))
        if detect:
            since = execution_started or queue_started
            success_at = since + (queue_ended - since) * draw(st.floats(0, 1))
            success_at = min(max(success_at, since), queue_ended)
    last = queue_ended or T0
    finished_at = last + timedelta(seconds=draw(SECONDS)) if draw(st.booleans()) or queued else None
    if finished_at is None:
        started_at = draw(st.sampled_from([started_at, None]))  # type: ignore[arg-type]

    timeout = policy["post_execution_timeout_s"]
    if reason == "success":
        complete, output_wait = True, draw(st.floats(0, timeout))
    elif reason == "postExecution":
        complete, output_wait = False, timeout + draw(SECONDS)
    else:
        complete = draw(st.booleans())
        output_wait = draw(st.floats(0, timeout)) if complete else draw(st.none() | SECONDS)

    kind = draw(st.sampled_from(["comfyui", "runpod"]))
    delay_ms = execution_ms = None
    if kind == "runpod":
        delay_ms = draw(st.none() | st.integers(0, 10**7))
        duration_ms = (
            int((finished_at - started_at).total_seconds() * 1000) if finished_at and started_at else 10**7
        )
        execution_ms = draw(st.none() | st.integers(0, duration_ms))
    total = draw(st.integers(min_value=1, max_value=200_000))
    return {
        "backend_kind": kind,
        "attempt_number": draw(st.integers(min_value=1, max_value=budget + 1)),
        "policy": policy,
        "started_at": started_at,
        "finished_at": finished_at,
        "queue_started_at": queue_started,
        "queue_ended_at": queue_ended,
        "execution_started_at": execution_started,
        "success_detected_at": success_at,
        "history_attempts": history_attempts,
        "exit_reason": reason,
        "output_complete_detected": complete,
        "output_wait_s": output_wait,
        "gpu_before": draw(st.none() | snapshots(total)),
        "gpu_after": draw(st.none() | snapshots(total)),
        "runpod_delay_time_ms": delay_ms,
        "runpod_execution_time_ms": execution_ms,
        "price_per_gpu_second_usd": draw(st.none() | st.floats(0, 0.01)),
        "notes": draw(st.lists(st.text(min_size=1, max_size=40), max_size=3)),
        "failed_polls": draw(st.none() | st.integers(0, 3)),
    }


PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(attempt_figures())
def test_every_record_the_collector_builds_passes(figures: dict[str, Any]) -> None:
    record = build_attempt_record(**figures)
    assert _failed(record) == []


@PROPERTY
@given(attempt_figures(), st.sampled_from(REQUIRED_FIELDS))
def test_a_record_missing_a_required_field_fails(figures: dict[str, Any], name: str) -> None:
    record = build_attempt_record(**figures)
    del record[name]
    failed = _failed(record)
    assert "required_fields" in failed and "schema" in failed


@PROPERTY
@given(attempt_figures(), st.sampled_from(VRAM_FIELDS), st.integers(1, 5000), st.booleans())
def test_a_record_with_a_vram_figure_altered_fails(
    figures: dict[str, Any], name: str, by: int, down: bool
) -> None:
    record = build_attempt_record(**figures)
    altered = copy.deepcopy(record)
    altered[name] = by if record[name] is None else record[name] + (-by if down else by)
    assert _failed(altered) != []


def test_the_strategy_reaches_every_exit_reason_and_gpu_state() -> None:
    seen: set[tuple[str, bool]] = set()

    @settings(max_examples=300, deadline=None)
    @given(attempt_figures())
    def collect(figures: dict[str, Any]) -> None:
        record = build_attempt_record(**figures)
        seen.add((record["history_exit_reason"], record["vram_delta_mb"] is not None))

    collect()
    assert {reason for reason, _ in seen} == set(EXIT_REASONS)
    assert {has_delta for _, has_delta in seen} == {True, False}


def test_an_attempt_with_no_vram_change_has_a_zero_delta() -> None:
    record = success_record(execution_started_at=at(0.3), gpu_after=h100(used_mb=480))
    assert record["vram_delta_mb"] == 0
    assert _failed(success_record(execution_started_at=at(0.3), gpu_after=h100(used_mb=480))) == []

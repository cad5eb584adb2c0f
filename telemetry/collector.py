"""Builds one attempt's telemetry record from plain figures.

Pure Python (no Django). Public API:

    build_attempt_record(*, backend_kind, attempt_number, policy, started_at, finished_at,
                         queue_started_at, queue_ended_at, history_attempts, exit_reason,
                         output_complete_detected, output_wait_s, execution_started_at=None,
                         success_detected_at=None, gpu_before=None, gpu_after=None,
                         runpod_delay_time_ms=None, runpod_execution_time_ms=None,
                         price_per_gpu_second_usd=None, notes=(), failed_polls=None,
                         unknown_checks=None) -> dict
    TelemetryInputError   raised when the figures contradict each other

What it computes: duration (finished - started), VRAM delta (after - before),
GPU-seconds (RunPod's executionTime, else execution start to success or to
the end of the wait), the cost estimate (GPU-seconds x price), and a warning
for each fallback note. Every record it returns passes ``validate_attempt``;
figures that cannot make a valid record raise, naming the failed checks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from telemetry.contract import SCHEMA_VERSION
from telemetry.probes import GpuSnapshot
from telemetry.validation import CheckResult, validate_attempt

NO_GPU = GpuSnapshot(None, None, None, None, None, None)


class TelemetryInputError(ValueError):
    def __init__(self, failures: list[CheckResult]) -> None:
        self.failures = failures
        super().__init__("; ".join(f"{f.check}: {f.message}" for f in failures))


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds(), 3)


def build_attempt_record(
    *,
    backend_kind: str,
    attempt_number: int,
    policy: Mapping[str, Any],
    started_at: datetime | None,
    finished_at: datetime | None,
    queue_started_at: datetime | None,
    queue_ended_at: datetime | None,
    history_attempts: int,
    exit_reason: str,
    output_complete_detected: bool,
    output_wait_s: float | None,
    execution_started_at: datetime | None = None,
    success_detected_at: datetime | None = None,
    gpu_before: GpuSnapshot | None = None,
    gpu_after: GpuSnapshot | None = None,
    runpod_delay_time_ms: int | None = None,
    runpod_execution_time_ms: int | None = None,
    price_per_gpu_second_usd: float | None = None,
    notes: Sequence[str] = (),
    failed_polls: int | None = None,
    unknown_checks: int | None = None,
    check: bool = True,
) -> dict[str, Any]:
    """The contract record for one attempt.

    ``policy`` is the queue policy snapshot (max_wait_s, poll_interval_s,
    max_poll_attempts, post_execution_timeout_s, retry_budget). ``started_at``
    and ``finished_at`` bound the whole attempt; the queue timestamps bound the
    wait on the backend (accepted to verdict). ``notes`` are fallbacks other
    than the GPU probes' (a provider's, e.g. "websocket unavailable").
    With ``check=False`` an inconsistent record is returned rather than raised,
    for callers that must keep whatever was measured.
    """
    before = gpu_before or NO_GPU
    after = gpu_after or NO_GPU
    warnings: list[str] = []
    if before.has_gpu and after.has_gpu and _gpu_identity(before) != _gpu_identity(after):
        # A delta between two different GPUs means nothing; keep the first look.
        warnings.append(
            f"the GPU after the render ({after.gpu_name} #{after.gpu_index}, {after.vram_total_mb} MB) "
            f"is not the one before ({before.gpu_name} #{before.gpu_index}, {before.vram_total_mb} MB); "
            "VRAM after left out"
        )
        after = GpuSnapshot(None, None, None, None, None, None, notes=after.notes, taken_at=after.taken_at)
    seen = before if before.has_gpu else after

    fallback_notes = [f"GPU before: {n}" for n in before.notes]
    fallback_notes += [f"GPU after: {n}" for n in after.notes]
    fallback_notes += [str(n) for n in notes]
    warnings += [f"fallback: {note}" for note in fallback_notes]

    if runpod_execution_time_ms is not None:
        gpu_seconds = runpod_execution_time_ms / 1000
    else:
        end = success_detected_at or queue_ended_at or finished_at
        gpu_seconds = max(0.0, _seconds(execution_started_at, end) or 0.0)

    vram_delta = (
        after.vram_used_mb - before.vram_used_mb
        if before.vram_used_mb is not None and after.vram_used_mb is not None
        else None
    )
    record: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "backend_kind": backend_kind,
        "attempt_number": attempt_number,
        "duration_s": _seconds(started_at, finished_at),
        "queue_started_at": _iso(queue_started_at),
        "queue_ended_at": _iso(queue_ended_at),
        "execution_started_at": _iso(execution_started_at),
        "history_attempts": history_attempts,
        "history_limit": int(policy.get("max_poll_attempts") or 0),
        "history_exit_reason": exit_reason,
        "poll_interval_s": policy.get("poll_interval_s"),
        "max_wait_s": policy.get("max_wait_s"),
        "execution_success_detected": success_detected_at is not None,
        "execution_success_detected_at": _iso(success_detected_at),
        "post_execution_timeout_s": policy.get("post_execution_timeout_s"),
        "post_execution_timeout_reached": exit_reason == "postExecution",
        "retry_budget": policy.get("retry_budget"),
        "gpu_probe_before": before.probe,
        "gpu_probe_after": after.probe,
        "gpu_name": seen.gpu_name,
        "gpu_index": seen.gpu_index,
        "vram_total_mb": seen.vram_total_mb,
        "vram_before_mb": before.vram_used_mb,
        "vram_after_mb": after.vram_used_mb,
        "vram_delta_mb": vram_delta,
        "vram_free_before_mb": before.vram_free_mb,
        "vram_free_after_mb": after.vram_free_mb,
        "gpu_seconds": gpu_seconds,
        "price_per_gpu_second_usd": price_per_gpu_second_usd,
        "estimated_cost_usd": gpu_seconds * price_per_gpu_second_usd
        if price_per_gpu_second_usd is not None
        else None,
        "runpod_delay_time_ms": runpod_delay_time_ms,
        "runpod_execution_time_ms": runpod_execution_time_ms,
        "output_complete_detected": output_complete_detected,
        "output_wait_s": output_wait_s,
        "fallback_notes": fallback_notes,
        "warnings": warnings,
    }
    if failed_polls is not None:
        record["failed_polls"] = failed_polls
    if unknown_checks is not None:
        record["unknown_checks"] = unknown_checks
    failures = [result for result in validate_attempt(record) if not result.passed] if check else []
    if failures:
        raise TelemetryInputError(failures)
    return record


def _gpu_identity(snapshot: GpuSnapshot) -> tuple[str | None, int | None, int | None]:
    return snapshot.gpu_name, snapshot.gpu_index, snapshot.vram_total_mb

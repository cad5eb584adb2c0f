"""Checks of one attempt's telemetry record against the contract.

Pure Python (no Django). Public API:

    CheckResult(check, passed, message, offending)      one rule's verdict; .as_dict()
    validate_attempt(record) -> list[CheckResult]      every attempt rule, in ATTEMPT_CHECKS order
    validation_report(results, *, subject) -> dict     {"subject", "passed", "failed", "checks"}

Every rule runs on every record, even a broken one: a rule whose inputs are
missing or of the wrong type fails with "cannot be checked", so one report
shows every problem at once. The run rules live in telemetry/run_validation.py.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from telemetry.contract import REQUIRED_FIELDS, schema_errors

# Rounding slack: durations are stored to the millisecond.
TIME_SLACK_S = 0.001
# gpu_seconds comes from the backend's clock (RunPod) or ours; a second apart is noise.
CLOCK_SLACK_S = 1.0


@dataclass(frozen=True)
class CheckResult:
    check: str
    passed: bool
    message: str
    offending: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "passed": self.passed,
            "message": self.message,
            "offending": self.offending,
        }


class Unchecked(Exception):
    """A rule's inputs are missing or ill-typed; the schema check names the cause."""


def field_value(
    record: Mapping[str, Any], name: str, kinds: tuple[type, ...], *, nullable: bool = True
) -> Any:
    if name not in record:
        raise Unchecked(f"{name} is missing")
    value = record[name]
    if value is None and nullable:
        return None
    # bool is an int in Python; the contract never means one as the other.
    if isinstance(value, bool) and bool not in kinds:
        raise Unchecked(f"{name} is {value!r}, not {' or '.join(k.__name__ for k in kinds)}")
    if not isinstance(value, kinds):
        raise Unchecked(f"{name} is {value!r}, not {' or '.join(k.__name__ for k in kinds)}")
    return value


def _num(record: Mapping[str, Any], name: str, *, nullable: bool = True) -> Any:
    return field_value(record, name, (int, float), nullable=nullable)


def _int(record: Mapping[str, Any], name: str, *, nullable: bool = True) -> Any:
    return field_value(record, name, (int,), nullable=nullable)


def _bool(record: Mapping[str, Any], name: str) -> bool:
    return bool(field_value(record, name, (bool,), nullable=False))


def _str(record: Mapping[str, Any], name: str, *, nullable: bool = True) -> Any:
    return field_value(record, name, (str,), nullable=nullable)


def timestamp(record: Mapping[str, Any], name: str) -> datetime | None:
    raw = _str(record, name)
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise Unchecked(f"{name} is not an ISO 8601 timestamp: {raw!r}") from exc
    if value.tzinfo is None:
        raise Unchecked(f"{name} has no UTC offset: {raw!r}")
    return value


Rule = Callable[[Mapping[str, Any]], CheckResult]
_RULES: list[tuple[str, Rule]] = []


def rule(check: str) -> Callable[[Callable[[Mapping[str, Any]], tuple[bool, str, dict[str, Any]]]], Rule]:
    def register(body: Callable[[Mapping[str, Any]], tuple[bool, str, dict[str, Any]]]) -> Rule:
        def run(record: Mapping[str, Any]) -> CheckResult:
            try:
                passed, message, offending = body(record)
            except Unchecked as exc:
                return CheckResult(check, False, f"cannot be checked: {exc}", {})
            return CheckResult(check, passed, message, offending if not passed else {})

        _RULES.append((check, run))
        return run

    return register


def _ok(message: str) -> tuple[bool, str, dict[str, Any]]:
    return True, message, {}


def _bad(message: str, **offending: Any) -> tuple[bool, str, dict[str, Any]]:
    return False, message, offending


# -- the rules ---------------------------------------------------------------------------------


@rule("schema")
def _schema(record: Mapping[str, Any]) -> tuple[bool, str, dict[str, Any]]:
    errors = schema_errors(record)
    if errors:
        return _bad(
            f"{len(errors)} schema violation(s)", errors=[{"path": p, "message": m} for p, m in errors]
        )
    return _ok("the record matches the JSON Schema")


@rule("required_fields")
def _required(record: Mapping[str, Any]) -> tuple[bool, str, dict[str, Any]]:
    if not isinstance(record, Mapping):
        return _bad("the record is not an object")
    missing = [name for name in REQUIRED_FIELDS if name not in record]
    if missing:
        return _bad(f"missing: {', '.join(missing)}", missing=missing)
    return _ok("every required field is present")


@rule("timestamps")
def _timestamps(record: Mapping[str, Any]) -> tuple[bool, str, dict[str, Any]]:
    bad = {}
    for name in (
        "queue_started_at",
        "queue_ended_at",
        "execution_started_at",
        "execution_success_detected_at",
    ):
        try:
            timestamp(record, name)
        except Unchecked as exc:
            bad[name] = str(exc)
    if bad:
        return _bad("; ".join(bad.values()), **bad)
    return _ok("timestamps are ISO 8601 with an offset")


@rule("gpu_fields_consistent")
def _gpu_nulls(record: Mapping[str, Any]) -> tuple[bool, str, dict[str, Any]]:
    probe_before, probe_after = _str(record, "gpu_probe_before"), _str(record, "gpu_probe_after")
    before, free_before = _int(record, "vram_before_mb"), _int(record, "vram_free_before_mb")
    after, free_after = _int(record, "vram_after_mb"), _int(record, "vram_free_after_mb")
    total, name = _int(record, "vram_total_mb"), _str(record, "gpu_name")
    problems = []
    if (probe_before is None) != (before is None) or (before is None) != (free_before is None):
        problems.append(
            "gpu_probe_before, vram_before_mb and vram_free_before_mb must be all set or all null"
        )
    if (probe_after is None) != (after is None) or (after is None) != (free_after is None):
        problems.append("gpu_probe_after, vram_after_mb and vram_free_after_mb must be all set or all null")
    any_probe = probe_before is not None or probe_after is not None
    if any_probe != (total is not None) or any_probe != (name is not None):
        problems.append("vram_total_mb and gpu_name are set exactly when a probe answered")
    if problems:
        return _bad(
            "; ".join(problems),
            gpu_probe_before=probe_before,
            gpu_probe_after=probe_after,
            vram_before_mb=before,
            vram_free_before_mb=free_before,
            vram_after_mb=after,
            vram_free_after_mb=free_after,
            vram_total_mb=total,
            gpu_name=name,
        )
    return _ok("GPU figures are present exactly where a probe answered")


@rule("vram_delta")
def _vram_delta(record: Mapping[str, Any]) -> tuple[bool, str, dict[str, Any]]:
    before, after, delta = (_int(record, n) for n in ("vram_before_mb", "vram_after_mb", "vram_delta_mb"))
    expected = None if before is None or after is None else after - before
    if delta != expected:
        return _bad(
            f"vram_delta_mb is {delta}, after - before is {expected}",
            vram_before_mb=before,
            vram_after_mb=after,
            vram_delta_mb=delta,
        )
    return _ok("vram_delta_mb = vram_after_mb - vram_before_mb")


@rule("vram_within_total")
def _vram_within_total(record: Mapping[str, Any]) -> tuple[bool, str, dict[str, Any]]:
    total = _int(record, "vram_total_mb")
    names = ("vram_before_mb", "vram_after_mb", "vram_free_before_mb", "vram_free_after_mb")
    over = {n: v for n in names if (v := _int(record, n)) is not None and (total is None or v > total)}
    if over:
        return _bad(f"{', '.join(over)} exceed vram_total_mb {total}", vram_total_mb=total, **over)
    return _ok("used and free figures are within the total")


@rule("vram_used_plus_free_is_total")
def _used_plus_free(record: Mapping[str, Any]) -> tuple[bool, str, dict[str, Any]]:
    total = _int(record, "vram_total_mb")
    wrong = {}
    for used_name, free_name in (
        ("vram_before_mb", "vram_free_before_mb"),
        ("vram_after_mb", "vram_free_after_mb"),
    ):
        used, free = _int(record, used_name), _int(record, free_name)
        if used is not None and free is not None and used + free != total:
            wrong[used_name], wrong[free_name] = used, free
    if wrong:
        return _bad(f"used + free differs from vram_total_mb {total}", vram_total_mb=total, **wrong)
    return _ok("used + free = total at both snapshots")


@rule("exit_reason_matches_success")
def _exit_vs_success(record: Mapping[str, Any]) -> tuple[bool, str, dict[str, Any]]:
    reason, detected = (
        _str(record, "history_exit_reason", nullable=False),
        _bool(record, "execution_success_detected"),
    )
    if reason in ("success", "postExecution") and not detected:
        return _bad(f"exit reason {reason} needs execution success detected", history_exit_reason=reason)
    if reason in ("maxWait", "attemptLimit") and detected:
        return _bad(
            f"exit reason {reason} after execution success was detected (the post-execution wait governs then)",
            history_exit_reason=reason,
        )
    return _ok(f"exit reason {reason} agrees with execution_success_detected={detected}")


@rule("success_detection_time")
def _success_time(record: Mapping[str, Any]) -> tuple[bool, str, dict[str, Any]]:
    detected = _bool(record, "execution_success_detected")
    at = timestamp(record, "execution_success_detected_at")
    if detected != (at is not None):
        return _bad(
            "execution_success_detected_at is set exactly when success was detected",
            detected=detected,
            at=at and at.isoformat(),
        )
    if at is not None:
        start, end = timestamp(record, "queue_started_at"), timestamp(record, "queue_ended_at")
        ran = timestamp(record, "execution_started_at")
        for label, bound, ok in (
            ("queue_started_at", start, start is None or start <= at),
            ("execution_started_at", ran, ran is None or ran <= at),
            ("queue_ended_at", end, end is None or at <= end),
        ):
            if not ok:
                return _bad(
                    f"success was detected outside the wait ({label})",
                    at=at.isoformat(),
                    **{label: bound and bound.isoformat()},
                )
    return _ok("success detection time is consistent")


@rule("history_attempts_within_limit")
def _attempts_limit(record: Mapping[str, Any]) -> tuple[bool, str, dict[str, Any]]:
    attempts, limit = (
        _int(record, "history_attempts", nullable=False),
        _int(record, "history_limit", nullable=False),
    )
    reason = _str(record, "history_exit_reason", nullable=False)
    if limit and attempts > limit:
        return _bad(
            f"{attempts} history attempts exceed the limit {limit}",
            history_attempts=attempts,
            history_limit=limit,
        )
    if reason == "attemptLimit" and (not limit or attempts != limit):
        return _bad(
            f"exit reason attemptLimit with {attempts} attempts and limit {limit or 'none'}",
            history_attempts=attempts,
            history_limit=limit,
        )
    return _ok("history attempts are within the limit")


@rule("post_execution_consistent")
def _post_execution(record: Mapping[str, Any]) -> tuple[bool, str, dict[str, Any]]:
    reached, reason = (
        _bool(record, "post_execution_timeout_reached"),
        _str(record, "history_exit_reason", nullable=False),
    )
    if reached != (reason == "postExecution"):
        return _bad(
            f"post_execution_timeout_reached={reached} with exit reason {reason}",
            post_execution_timeout_reached=reached,
            history_exit_reason=reason,
        )
    return _ok("post-execution timeout agrees with the exit reason")


@rule("fallback_notes_warned")
def _notes_warned(record: Mapping[str, Any]) -> tuple[bool, str, dict[str, Any]]:
    notes, warnings = (
        field_value(record, "fallback_notes", (list,), nullable=False),
        field_value(record, "warnings", (list,), nullable=False),
    )
    unwarned = [
        n for n in notes if not any(isinstance(w, str) and isinstance(n, str) and n in w for w in warnings)
    ]
    if unwarned:
        return _bad(f"{len(unwarned)} fallback note(s) without a warning", notes=unwarned)
    return _ok("every fallback note has a warning")


@rule("queue_window")
def _queue_window(record: Mapping[str, Any]) -> tuple[bool, str, dict[str, Any]]:
    start, end = timestamp(record, "queue_started_at"), timestamp(record, "queue_ended_at")
    ran = timestamp(record, "execution_started_at")
    reason = _str(record, "history_exit_reason", nullable=False)
    duration = _num(record, "duration_s")
    shown = {"queue_started_at": start and start.isoformat(), "queue_ended_at": end and end.isoformat()}
    if reason != "unknown" and (start is None or end is None):
        return _bad(f"exit reason {reason} needs both ends of the wait", **shown)
    if end is not None and start is None:
        return _bad("the wait ended without a start", **shown)
    if start is not None and end is not None:
        if end < start:
            return _bad("the wait ended before it started", **shown)
        if duration is not None and duration + TIME_SLACK_S < (end - start).total_seconds():
            return _bad(f"duration_s {duration} is shorter than the wait", duration_s=duration, **shown)
    if ran is not None and ((start is not None and ran < start) or (end is not None and ran > end)):
        return _bad("execution started outside the wait", execution_started_at=ran.isoformat(), **shown)
    return _ok("the wait's timestamps are in order")


@rule("max_wait_reached")
def _max_wait(record: Mapping[str, Any]) -> tuple[bool, str, dict[str, Any]]:
    if _str(record, "history_exit_reason", nullable=False) != "maxWait":
        return _ok("exit reason is not maxWait")
    start, end = timestamp(record, "queue_started_at"), timestamp(record, "queue_ended_at")
    max_wait = _num(record, "max_wait_s", nullable=False)
    if start is None or end is None:
        return _bad("exit reason maxWait without both ends of the wait", max_wait_s=max_wait)
    waited = (end - start).total_seconds()
    if waited + TIME_SLACK_S < max_wait:
        return _bad(
            f"exit reason maxWait after {waited:g} s, less than max_wait_s {max_wait:g}",
            waited_s=waited,
            max_wait_s=max_wait,
        )
    return _ok("the max wait was reached")


@rule("retry_budget")
def _retry_budget(record: Mapping[str, Any]) -> tuple[bool, str, dict[str, Any]]:
    number, budget = (
        _int(record, "attempt_number", nullable=False),
        _int(record, "retry_budget", nullable=False),
    )
    if number > budget + 1:
        return _bad(
            f"attempt {number} exceeds a retry budget of {budget}", attempt_number=number, retry_budget=budget
        )
    return _ok("the attempt is within the retry budget")


@rule("gpu_seconds")
def _gpu_seconds(record: Mapping[str, Any]) -> tuple[bool, str, dict[str, Any]]:
    seconds = _num(record, "gpu_seconds", nullable=False)
    kind = _str(record, "backend_kind", nullable=False)
    execution_ms = _int(record, "runpod_execution_time_ms")
    duration = _num(record, "duration_s")
    if kind == "runpod" and execution_ms is not None:
        if not math.isclose(seconds, execution_ms / 1000, abs_tol=1e-6):
            return _bad(
                "gpu_seconds differs from RunPod's executionTime",
                gpu_seconds=seconds,
                runpod_execution_time_ms=execution_ms,
            )
    elif kind == "comfyui" and timestamp(record, "execution_started_at") is None and seconds != 0:
        return _bad("gpu_seconds without an execution start", gpu_seconds=seconds)
    if duration is not None and seconds > duration + CLOCK_SLACK_S:
        return _bad("gpu_seconds exceed the attempt's duration", gpu_seconds=seconds, duration_s=duration)
    return _ok("gpu_seconds agree with the execution time")


@rule("estimated_cost")
def _cost(record: Mapping[str, Any]) -> tuple[bool, str, dict[str, Any]]:
    price, cost = _num(record, "price_per_gpu_second_usd"), _num(record, "estimated_cost_usd")
    seconds = _num(record, "gpu_seconds", nullable=False)
    if (price is None) != (cost is None):
        return _bad(
            "estimated_cost_usd is set exactly when a price is",
            price_per_gpu_second_usd=price,
            estimated_cost_usd=cost,
        )
    if price is not None and not math.isclose(cost, seconds * price, rel_tol=1e-9, abs_tol=1e-12):
        return _bad(
            "estimated_cost_usd is not gpu_seconds x price",
            gpu_seconds=seconds,
            price_per_gpu_second_usd=price,
            estimated_cost_usd=cost,
        )
    return _ok("the cost estimate agrees with gpu_seconds and the price")


@rule("runpod_fields")
def _runpod_fields(record: Mapping[str, Any]) -> tuple[bool, str, dict[str, Any]]:
    kind = _str(record, "backend_kind", nullable=False)
    delay, execution = _int(record, "runpod_delay_time_ms"), _int(record, "runpod_execution_time_ms")
    if kind != "runpod" and (delay is not None or execution is not None):
        return _bad(
            f"RunPod timings on a {kind} attempt",
            runpod_delay_time_ms=delay,
            runpod_execution_time_ms=execution,
        )
    return _ok("RunPod timings only on RunPod attempts")


@rule("artifact_stability")
def _artifact_stability(record: Mapping[str, Any]) -> tuple[bool, str, dict[str, Any]]:
    reason = _str(record, "history_exit_reason", nullable=False)
    complete, wait = _bool(record, "output_complete_detected"), _num(record, "output_wait_s")
    timeout = _num(record, "post_execution_timeout_s", nullable=False)
    shown = {"history_exit_reason": reason, "output_complete_detected": complete, "output_wait_s": wait}
    if reason == "success" and not complete:
        return _bad("exit reason success without complete outputs", **shown)
    if reason == "postExecution" and (complete or wait is None or wait + TIME_SLACK_S < timeout):
        return _bad(
            f"exit reason postExecution needs incomplete outputs after waiting {timeout:g} s", **shown
        )
    if complete and (wait is None or wait > timeout + TIME_SLACK_S):
        return _bad(f"outputs complete needs a wait within post_execution_timeout_s {timeout:g}", **shown)
    return _ok("output stability agrees with the exit reason")


ATTEMPT_CHECKS: tuple[str, ...] = tuple(check for check, _ in _RULES)


def validate_attempt(record: Mapping[str, Any]) -> list[CheckResult]:
    """Every attempt rule on ``record``; each result says passed or why not."""
    if not isinstance(record, Mapping):
        return [CheckResult(check, False, "the record is not an object", {}) for check in ATTEMPT_CHECKS]
    return [run(record) for _, run in _RULES]


def validation_report(results: Iterable[CheckResult], *, subject: str) -> dict[str, Any]:
    """A storable report: overall verdict, the failed check ids, every result."""
    checks = [result.as_dict() for result in results]
    failed = [c["check"] for c in checks if not c["passed"]]
    return {"subject": subject, "passed": not failed, "failed": failed, "checks": checks}

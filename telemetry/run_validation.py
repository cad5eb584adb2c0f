"""Cross-checks of a batch's run summary against its artifact-metadata document.

Pure Python (no Django). Public API:

    validate_run(summary, metadata) -> list[CheckResult]   every run rule, in RUN_CHECKS order

Shapes of both documents: telemetry/run_documents.py. Results are
``telemetry.validation.CheckResult``; ``validation_report`` makes them storable.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from telemetry.run_documents import (
    DOCUMENT_VERSION,
    METADATA_DOCUMENT,
    POLICY_KEYS,
    SUMMARY_DOCUMENT,
    run_figures,
)
from telemetry.validation import CheckResult, validate_attempt

SHA256 = re.compile(r"^[0-9a-f]{64}$")
# Attempt figures the run's queue policy fixes: telemetry field -> policy key.
POLICY_IN_TELEMETRY = {
    "max_wait_s": "max_wait_s",
    "poll_interval_s": "poll_interval_s",
    "history_limit": "max_poll_attempts",
    "post_execution_timeout_s": "post_execution_timeout_s",
    "retry_budget": "retry_budget",
}

Verdict = tuple[bool, str, dict[str, Any]]
RunRule = Callable[[Mapping[str, Any], Mapping[str, Any]], Verdict]


def _scenes(metadata: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    scenes = metadata.get("scenes")
    return [s for s in scenes if isinstance(s, Mapping)] if isinstance(scenes, list) else []


def _header(summary: Mapping[str, Any]) -> Mapping[str, Any]:
    header = summary.get("header")
    return header if isinstance(header, Mapping) else {}


def _shape(summary: Mapping[str, Any], metadata: Mapping[str, Any]) -> Verdict:
    problems = []
    if (metadata.get("document"), metadata.get("version")) != (METADATA_DOCUMENT, DOCUMENT_VERSION):
        problems.append(f"metadata is not a {METADATA_DOCUMENT} {DOCUMENT_VERSION} document")
    if (summary.get("document"), summary.get("version")) != (SUMMARY_DOCUMENT, DOCUMENT_VERSION):
        problems.append(f"summary is not a {SUMMARY_DOCUMENT} {DOCUMENT_VERSION} document")
    if not isinstance(metadata.get("scenes"), list):
        problems.append("metadata has no scene list")
    header = summary.get("header")
    if not isinstance(header, Mapping) or not all(k in header for k in ("counts", "queue_policy", "totals")):
        problems.append("summary header lacks counts, queue_policy or totals")
    if not isinstance(summary.get("text"), str) or not summary["text"].strip():
        problems.append("summary has no text")
    if problems:
        return False, "; ".join(problems), {"problems": problems}
    return True, "both documents have their shape", {}


def _same_run(summary: Mapping[str, Any], metadata: Mapping[str, Any]) -> Verdict:
    header = _header(summary)
    ours = {k: header.get(k) for k in ("batch", "brief")}
    theirs = {k: metadata.get(k) for k in ("batch", "brief")}
    if ours != theirs:
        return (
            False,
            "the summary and the metadata describe different runs",
            {"summary": ours, "metadata": theirs},
        )
    return True, "both documents describe the same batch", {}


def _telemetry_present(summary: Mapping[str, Any], metadata: Mapping[str, Any]) -> Verdict:
    missing = []
    for scene in _scenes(metadata):
        attempts = scene.get("attempts") or []
        if not attempts and scene.get("state") != "cancelled":
            # A job cancelled before dispatch never had an attempt to measure.
            missing.append({"scene": scene.get("scene"), "attempt": None})
        missing += [
            {"scene": scene.get("scene"), "attempt": a.get("attempt")}
            for a in attempts
            if not isinstance(a.get("telemetry"), Mapping) or not a.get("telemetry")
        ]
    if missing:
        return False, f"{len(missing)} scene attempt(s) without telemetry", {"missing": missing}
    return True, "every scene has telemetry for each attempt", {}


def _attempts_valid(summary: Mapping[str, Any], metadata: Mapping[str, Any]) -> Verdict:
    invalid = []
    for scene in _scenes(metadata):
        for attempt in scene.get("attempts") or []:
            record = attempt.get("telemetry")
            if isinstance(record, Mapping) and record:
                failed = [r.check for r in validate_attempt(record) if not r.passed]
                if failed:
                    invalid.append(
                        {"scene": scene.get("scene"), "attempt": attempt.get("attempt"), "failed": failed}
                    )
    if invalid:
        return False, f"{len(invalid)} attempt record(s) break the contract", {"attempts": invalid}
    return True, "every attempt record passes the contract", {}


def _summary_policy(summary: Mapping[str, Any], metadata: Mapping[str, Any]) -> Verdict:
    stated = _header(summary).get("queue_policy") or {}
    recorded = metadata.get("queue_policy") or {}
    differ = {
        key: {"summary": stated.get(key), "metadata": recorded.get(key)}
        for key in POLICY_KEYS
        if stated.get(key) != recorded.get(key) or key not in stated or key not in recorded
    }
    if differ:
        return False, f"queue policy differs: {', '.join(differ)}", differ
    return True, "the summary states the metadata's queue policy", {}


def _attempt_policy(summary: Mapping[str, Any], metadata: Mapping[str, Any]) -> Verdict:
    policy = metadata.get("queue_policy") or {}
    differ = []
    for scene in _scenes(metadata):
        for attempt in scene.get("attempts") or []:
            record = attempt.get("telemetry") or {}
            for field, key in POLICY_IN_TELEMETRY.items():
                if field in record and record[field] != policy.get(key):
                    differ.append(
                        {
                            "attempt": attempt.get("attempt"),
                            "field": field,
                            "attempt_value": record[field],
                            "run_value": policy.get(key),
                        }
                    )
    if differ:
        return (
            False,
            f"{len(differ)} attempt figure(s) differ from the run's queue policy",
            {"differences": differ},
        )
    return True, "every attempt ran under the run's queue policy", {}


def _artifact_sha256(summary: Mapping[str, Any], metadata: Mapping[str, Any]) -> Verdict:
    bad = [
        {"scene": s.get("scene"), "artifact": f.get("artifact"), "sha256": f.get("sha256")}
        for s in _scenes(metadata)
        for f in s.get("artifacts") or []
        if not isinstance(f.get("sha256"), str) or not SHA256.match(f["sha256"])
    ]
    if bad:
        return False, f"{len(bad)} artifact(s) without a sha256", {"artifacts": bad}
    return True, "every artifact has a sha256", {}


def _artifact_attempts(summary: Mapping[str, Any], metadata: Mapping[str, Any]) -> Verdict:
    orphans = []
    for scene in _scenes(metadata):
        known = {a.get("attempt") for a in scene.get("attempts") or []}
        orphans += [
            {"scene": scene.get("scene"), "artifact": f.get("artifact"), "attempt": f.get("attempt")}
            for f in scene.get("artifacts") or []
            if f.get("attempt") not in known
        ]
    if orphans:
        return (
            False,
            f"{len(orphans)} artifact(s) name an attempt the scene does not have",
            {"artifacts": orphans},
        )
    return True, "every artifact comes from one of its scene's attempts", {}


def _counts(summary: Mapping[str, Any], metadata: Mapping[str, Any]) -> Verdict:
    stated = _header(summary).get("counts")
    expected, _ = run_figures(metadata)
    if stated != expected:
        return (
            False,
            "the summary's counts differ from the metadata",
            {"summary": stated, "metadata": expected},
        )
    return True, "counts agree", {}


def _totals(summary: Mapping[str, Any], metadata: Mapping[str, Any]) -> Verdict:
    stated = _header(summary).get("totals") or {}
    _, expected = run_figures(metadata)
    differ = {}
    for key, value in expected.items():
        given = stated.get(key)
        same = (
            given is None
            if value is None
            else isinstance(given, int | float) and math.isclose(given, value, rel_tol=1e-9, abs_tol=1e-6)
        )
        if not same:
            differ[key] = {"summary": given, "metadata": value}
    if differ:
        return False, f"totals differ: {', '.join(differ)}", differ
    return True, "totals agree", {}


RUN_RULES: dict[str, RunRule] = {
    "documents_shape": _shape,
    "same_run": _same_run,
    "telemetry_present": _telemetry_present,
    "attempt_telemetry_valid": _attempts_valid,
    "summary_policy_matches_metadata": _summary_policy,
    "attempt_policy_matches_run": _attempt_policy,
    "artifact_sha256": _artifact_sha256,
    "artifacts_belong_to_attempts": _artifact_attempts,
    "counts_agree": _counts,
    "totals_agree": _totals,
}
RUN_CHECKS = tuple(RUN_RULES)


def validate_run(summary: Mapping[str, Any], metadata: Mapping[str, Any]) -> list[CheckResult]:
    if not isinstance(summary, Mapping) or not isinstance(metadata, Mapping):
        return [CheckResult(check, False, "a document is not an object", {}) for check in RUN_CHECKS]
    results = []
    for check, body in RUN_RULES.items():
        try:
            passed, message, offending = body(summary, metadata)
        except (AttributeError, TypeError, ValueError) as exc:
            # A malformed nested value (a list where an object belongs): report, don't crash.
            passed, message, offending = False, f"cannot be checked: {type(exc).__name__}: {exc}", {}
        results.append(CheckResult(check, passed, message, offending if not passed else {}))
    return results

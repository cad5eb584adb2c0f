"""The two documents a render batch exports: artifact metadata and the run summary.

Pure Python (no Django): the studio gathers rows into plain dicts; these
functions shape them. Public API:

    build_run_metadata(*, batch, brief, created_at, queue_policy, scenes) -> dict
    build_run_summary(metadata, *, generated_at) -> dict   (header + human-readable text)
    POLICY_KEYS

Artifact metadata ("storycore.run-metadata" 1.0):
    {"document": "storycore.run-metadata", "version": "1.0",
     "batch": uuid, "brief": uuid, "created_at": iso,
     "queue_policy": {"name", "max_wait_s", "poll_interval_s", "max_poll_attempts",
                      "post_execution_timeout_s", "retry_budget"},
     "scenes": [{"scene": uuid, "position": int, "title": str, "job": uuid, "state": str,
                 "attempts": [{"attempt": uuid, "number": int, "backend": str, "state": str,
                               "error_code": str, "policy": {...}, "telemetry": {contract record}}],
                 "artifacts": [{"artifact": uuid, "attempt": uuid, "name": str,
                                "content_type": str, "size_bytes": int, "sha256": hex64,
                                "width": int | null, "height": int | null}]}]}

Run summary ("storycore.run-summary" 1.0):
    {"document": "storycore.run-summary", "version": "1.0",
     "header": {"batch", "brief", "generated_at",
                "counts": {"scenes", "attempts", "artifacts", "warnings", "jobs_by_state": {state: n}},
                "queue_policy": {same keys as above},
                "totals": {"duration_s", "gpu_seconds", "estimated_cost_usd" (null: nothing priced),
                           "vram_delta_max_mb" (null: no GPU figures)}},
     "text": str}
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

METADATA_DOCUMENT = "storycore.run-metadata"
SUMMARY_DOCUMENT = "storycore.run-summary"
DOCUMENT_VERSION = "1.0"
POLICY_KEYS = (
    "name",
    "max_wait_s",
    "poll_interval_s",
    "max_poll_attempts",
    "post_execution_timeout_s",
    "retry_budget",
)
ATTEMPT_KEYS = ("attempt", "number", "backend", "state", "error_code", "policy", "telemetry")
ARTIFACT_KEYS = ("artifact", "attempt", "name", "content_type", "size_bytes", "sha256", "width", "height")


def _iso(value: datetime | str) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _policy(policy: Mapping[str, Any]) -> dict[str, Any]:
    return {key: policy.get(key) for key in POLICY_KEYS}


def build_run_metadata(
    *,
    batch: str,
    brief: str,
    created_at: datetime | str,
    queue_policy: Mapping[str, Any],
    scenes: Iterable[Mapping[str, Any]],
) -> dict[str, Any]:
    """The metadata document; scenes ordered by position, attempts by number.

    Each scene mapping carries the keys shown in the module docstring; keys
    beyond them are dropped, missing ones become null.
    """
    shaped = []
    for scene in sorted(scenes, key=lambda s: (s.get("position", 0), str(s.get("scene")))):
        attempts = sorted(scene.get("attempts") or [], key=lambda a: a.get("number", 0))
        shaped.append(
            {
                "scene": str(scene.get("scene")),
                "position": scene.get("position"),
                "title": scene.get("title", ""),
                "job": str(scene.get("job")),
                "state": scene.get("state"),
                "attempts": [
                    {key: (str(a.get(key)) if key == "attempt" else a.get(key)) for key in ATTEMPT_KEYS}
                    | {"policy": dict(a.get("policy") or {}), "telemetry": dict(a.get("telemetry") or {})}
                    for a in attempts
                ],
                "artifacts": [
                    {
                        key: (str(f.get(key)) if key in ("artifact", "attempt") else f.get(key))
                        for key in ARTIFACT_KEYS
                    }
                    for f in scene.get("artifacts") or []
                ],
            }
        )
    return {
        "document": METADATA_DOCUMENT,
        "version": DOCUMENT_VERSION,
        "batch": str(batch),
        "brief": str(brief),
        "created_at": _iso(created_at),
        "queue_policy": _policy(queue_policy),
        "scenes": shaped,
    }


def run_figures(metadata: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(counts, totals) of a metadata document; the summary states them, the validator recomputes them."""
    scenes = list(metadata.get("scenes") or [])
    attempts = [a for s in scenes for a in (s.get("attempts") or [])]
    records = [a.get("telemetry") or {} for a in attempts]
    counts = {
        "scenes": len(scenes),
        "attempts": len(attempts),
        "artifacts": sum(len(s.get("artifacts") or []) for s in scenes),
        "warnings": sum(len(r.get("warnings") or []) for r in records),
        "jobs_by_state": dict(sorted(Counter(str(s.get("state")) for s in scenes).items())),
    }
    costs = [r["estimated_cost_usd"] for r in records if isinstance(r.get("estimated_cost_usd"), int | float)]
    deltas = [r["vram_delta_mb"] for r in records if isinstance(r.get("vram_delta_mb"), int)]
    totals = {
        "duration_s": round(sum(r.get("duration_s") or 0 for r in records), 3),
        "gpu_seconds": round(sum(r.get("gpu_seconds") or 0 for r in records), 3),
        "estimated_cost_usd": round(sum(costs), 6) if costs else None,
        "vram_delta_max_mb": max(deltas) if deltas else None,
    }
    return counts, totals


def build_run_summary(metadata: Mapping[str, Any], *, generated_at: datetime | str) -> dict[str, Any]:
    counts, totals = run_figures(metadata)
    header = {
        "batch": metadata.get("batch"),
        "brief": metadata.get("brief"),
        "generated_at": _iso(generated_at),
        "counts": counts,
        "queue_policy": _policy(metadata.get("queue_policy") or {}),
        "totals": totals,
    }
    return {
        "document": SUMMARY_DOCUMENT,
        "version": DOCUMENT_VERSION,
        "header": header,
        "text": summary_text(header, metadata),
    }


def summary_text(header: Mapping[str, Any], metadata: Mapping[str, Any]) -> str:
    counts, totals, policy = header["counts"], header["totals"], header["queue_policy"]
    states = ", ".join(f"{n} {state}" for state, n in counts["jobs_by_state"].items()) or "none"
    limit = policy["max_poll_attempts"] or "no limit"
    cost = "not priced" if totals["estimated_cost_usd"] is None else f"${totals['estimated_cost_usd']:.4f}"
    vram = "no GPU figures" if totals["vram_delta_max_mb"] is None else f"{totals['vram_delta_max_mb']} MB"
    lines = [
        f"Render batch {header['batch']} of brief {header['brief']}",
        f"Summary generated {header['generated_at']}",
        "",
        f"Scenes: {counts['scenes']} ({states})",
        f"Attempts: {counts['attempts']}, artifacts: {counts['artifacts']}, warnings: {counts['warnings']}",
        f"Queue policy '{policy['name']}': max wait {policy['max_wait_s']} s, poll every "
        f"{policy['poll_interval_s']} s, poll limit {limit}, post-execution timeout "
        f"{policy['post_execution_timeout_s']} s, retry budget {policy['retry_budget']}",
        f"Totals: {totals['duration_s']} s of attempts, {totals['gpu_seconds']} GPU-seconds, cost {cost}, "
        f"largest VRAM rise {vram}",
        "",
    ]
    for scene in metadata.get("scenes") or []:
        attempts = scene.get("attempts") or []
        reasons = ", ".join(
            f"#{a.get('number')} {(a.get('telemetry') or {}).get('history_exit_reason', 'no telemetry')}"
            for a in attempts
        )
        lines.append(
            f"{scene.get('position')}. {scene.get('title') or scene.get('scene')}: {scene.get('state')}; "
            f"attempts {reasons or 'none'}; {len(scene.get('artifacts') or [])} artifact(s)"
        )
    return "\n".join(lines) + "\n"

"""The run summary and artifact-metadata documents, and each run rule passing and failing."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from telemetry.run_documents import build_run_metadata, build_run_summary
from telemetry.run_validation import RUN_CHECKS, validate_run
from telemetry.validation import validation_report
from tests.unit.test_telemetry_attempt_rules import POLICY, T0, success_record

SHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


def _metadata() -> dict[str, Any]:
    # The second try ran under the same policy: its outputs never appeared within 30 s.
    second_try = success_record(
        exit_reason="postExecution", output_complete_detected=False, output_wait_s=30.2, attempt_number=2
    )
    return build_run_metadata(
        batch="b-1",
        brief="brief-1",
        created_at=T0,
        queue_policy=POLICY,
        scenes=[
            {
                "scene": "s-2",
                "position": 2,
                "title": "Deck",
                "job": "j-2",
                "state": "failed",
                "attempts": [
                    {
                        "attempt": "a-3",
                        "number": 2,
                        "backend": "gpu-01",
                        "state": "failed",
                        "error_code": "output_invalid",
                        "policy": POLICY,
                        "telemetry": second_try,
                    },
                    {
                        "attempt": "a-2",
                        "number": 1,
                        "backend": "gpu-01",
                        "state": "failed",
                        "error_code": "unavailable",
                        "policy": POLICY,
                        "telemetry": success_record(),
                    },
                ],
                "artifacts": [],
            },
            {
                "scene": "s-1",
                "position": 1,
                "title": "Harbour",
                "job": "j-1",
                "state": "succeeded",
                "attempts": [
                    {
                        "attempt": "a-1",
                        "number": 1,
                        "backend": "gpu-01",
                        "state": "succeeded",
                        "error_code": "",
                        "policy": POLICY,
                        "telemetry": success_record(),
                        "ignored": 1,
                    },
                ],
                "artifacts": [
                    {
                        "artifact": "f-1",
                        "attempt": "a-1",
                        "name": "brief-1/j-1/a-1-0.png",
                        "content_type": "image/png",
                        "size_bytes": 1234,
                        "sha256": SHA,
                        "width": 64,
                        "height": 64,
                    },
                ],
            },
            {
                "scene": "s-3",
                "position": 3,
                "title": "Dawn",
                "job": "j-3",
                "state": "cancelled",
                "attempts": [],
                "artifacts": [],
            },
        ],
    )


def _documents() -> tuple[dict[str, Any], dict[str, Any]]:
    metadata = _metadata()
    return build_run_summary(metadata, generated_at="2026-11-25T20:00:00+00:00"), metadata


def test_metadata_orders_scenes_and_attempts_and_drops_unknown_keys() -> None:
    metadata = _metadata()
    assert [s["scene"] for s in metadata["scenes"]] == ["s-1", "s-2", "s-3"]
    assert [a["number"] for a in metadata["scenes"][1]["attempts"]] == [1, 2]
    assert "ignored" not in metadata["scenes"][0]["attempts"][0]
    assert metadata["queue_policy"] == POLICY
    assert metadata["created_at"] == "2026-11-25T19:00:00+00:00"
    json.dumps(metadata)  # a storable document


def test_summary_header_counts_and_totals() -> None:
    summary, _ = _documents()
    header = summary["header"]
    assert header["counts"] == {
        "scenes": 3,
        "attempts": 3,
        "artifacts": 1,
        "warnings": 3,
        "jobs_by_state": {"cancelled": 1, "failed": 1, "succeeded": 1},
    }
    assert header["totals"] == {
        "duration_s": 43.5,
        "gpu_seconds": 34.2,
        "estimated_cost_usd": None,
        "vram_delta_max_mb": 9320,
    }
    assert header["queue_policy"] == POLICY


def test_summary_text_reads_as_a_report() -> None:
    summary, _ = _documents()
    text = summary["text"]
    assert text.startswith("Render batch b-1 of brief brief-1\n")
    assert "Scenes: 3 (1 cancelled, 1 failed, 1 succeeded)" in text
    assert "poll limit no limit" in text and "retry budget 1" in text
    assert "1. Harbour: succeeded; attempts #1 success; 1 artifact(s)" in text
    assert "2. Deck: failed; attempts #1 success, #2 postExecution; 0 artifact(s)" in text
    assert "3. Dawn: cancelled; attempts none; 0 artifact(s)" in text


def test_every_run_rule_passes_matching_documents() -> None:
    summary, metadata = _documents()
    results = validate_run(summary, metadata)
    assert [r.check for r in results] == list(RUN_CHECKS)
    assert [r for r in results if not r.passed] == []
    assert validation_report(results, subject="batch b-1")["passed"] is True


Change = Callable[[dict[str, Any], dict[str, Any]], None]


def _attempt(metadata: dict[str, Any], scene: int = 0, number: int = 0) -> dict[str, Any]:
    attempt: dict[str, Any] = metadata["scenes"][scene]["attempts"][number]
    return attempt


# (check that must fail, the change to (summary, metadata) that breaks it)
BROKEN: list[tuple[str, Change]] = [
    ("documents_shape", lambda s, m: s.update(text="")),
    ("documents_shape", lambda s, m: m.update(document="something else")),
    ("same_run", lambda s, m: s["header"].update(batch="b-2")),
    ("telemetry_present", lambda s, m: _attempt(m).update(telemetry={})),
    ("telemetry_present", lambda s, m: m["scenes"][0].update(attempts=[])),
    ("attempt_telemetry_valid", lambda s, m: _attempt(m)["telemetry"].update(vram_delta_mb=1)),
    ("summary_policy_matches_metadata", lambda s, m: s["header"]["queue_policy"].update(max_poll_attempts=5)),
    ("summary_policy_matches_metadata", lambda s, m: m["queue_policy"].update(retry_budget=3)),
    ("summary_policy_matches_metadata", lambda s, m: s["header"]["queue_policy"].pop("poll_interval_s")),
    ("attempt_policy_matches_run", lambda s, m: _attempt(m)["telemetry"].update(poll_interval_s=5.0)),
    ("attempt_policy_matches_run", lambda s, m: m["queue_policy"].update(retry_budget=3)),
    ("artifact_sha256", lambda s, m: m["scenes"][0]["artifacts"][0].update(sha256="")),
    ("artifact_sha256", lambda s, m: m["scenes"][0]["artifacts"][0].pop("sha256")),
    ("artifacts_belong_to_attempts", lambda s, m: m["scenes"][0]["artifacts"][0].update(attempt="a-9")),
    ("counts_agree", lambda s, m: s["header"]["counts"].update(attempts=2)),
    ("counts_agree", lambda s, m: m["scenes"].pop()),
    ("totals_agree", lambda s, m: s["header"]["totals"].update(gpu_seconds=1.0)),
    ("totals_agree", lambda s, m: s["header"]["totals"].update(estimated_cost_usd=0.5)),
]


def test_every_run_rule_has_a_failing_case() -> None:
    assert {check for check, _ in BROKEN} == set(RUN_CHECKS)


@pytest.mark.parametrize(("check", "change"), BROKEN, ids=[f"{c}-{i}" for i, (c, _) in enumerate(BROKEN)])
def test_broken_documents_fail_their_rule(check: str, change: Change) -> None:
    summary, metadata = copy.deepcopy(_documents())
    change(summary, metadata)
    result = next(r for r in validate_run(summary, metadata) if r.check == check)
    assert not result.passed, result
    assert result.offending or result.message


def test_a_failed_run_rule_names_the_offending_values() -> None:
    summary, metadata = _documents()
    summary["header"]["queue_policy"]["max_poll_attempts"] = 5
    result = next(r for r in validate_run(summary, metadata) if r.check == "summary_policy_matches_metadata")
    assert result.message == "queue policy differs: max_poll_attempts"
    assert result.offending == {"max_poll_attempts": {"summary": 5, "metadata": 0}}


def test_malformed_documents_are_reported_not_raised() -> None:
    summary, metadata = _documents()
    metadata["scenes"][0]["attempts"] = "not a list"
    results = validate_run(summary, metadata)
    assert any(not r.passed for r in results)
    assert all(not r.passed for r in validate_run([], metadata))  # type: ignore[arg-type]

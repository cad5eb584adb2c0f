"""Run reports: a finished batch's documents, and the validator's verdict on them.

A service. `run_finish` gathers a batch's rows into the pure builders of
telemetry.run_documents, stores the result as the batch's RunReport and
validates it; `finish_due_runs` does that for every batch whose last job has
ended and that has no report yet (the reconciler calls it, so a lost task
message delays a report, never loses it).
"""

from __future__ import annotations

import logging
import uuid
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from generation.models import TERMINAL_STATES, Artifact, Attempt, RenderBatch, RenderJob
from telemetry.contract import SCHEMA_VERSION
from telemetry.models import RunReport, ValidationReport
from telemetry.run_documents import build_run_metadata, build_run_summary, run_figures
from telemetry.run_validation import validate_run
from telemetry.selectors import batches_with_progress
from telemetry.validation import validate_attempt

log = logging.getLogger(__name__)


def batch_finished(batch: RenderBatch) -> bool:
    return not batch.jobs.exclude(state__in=TERMINAL_STATES).exists()


def run_metadata(batch: RenderBatch) -> dict[str, Any]:
    jobs = list(batch.jobs.select_related("scene").order_by("scene__position", "pk"))
    attempts: dict[int, list[dict[str, Any]]] = {}
    for attempt in Attempt.objects.filter(job__batch=batch).select_related("backend").order_by("number"):
        attempts.setdefault(attempt.job_id, []).append(
            {
                "attempt": attempt.uuid,
                "number": attempt.number,
                "backend": attempt.backend.name,
                "state": attempt.state,
                "error_code": attempt.error_code,
                "policy": attempt.policy,
                "telemetry": attempt.telemetry,
            }
        )
    artifacts: dict[int, list[dict[str, Any]]] = {}
    for artifact in (
        Artifact.objects.filter(job__batch=batch).select_related("attempt").order_by("created_at")
    ):
        artifacts.setdefault(artifact.job_id, []).append(
            {
                "artifact": artifact.uuid,
                "attempt": artifact.attempt.uuid,
                "name": artifact.storage_name.rsplit("/", 1)[-1],
                "content_type": artifact.content_type,
                "size_bytes": artifact.size_bytes,
                "sha256": artifact.sha256,
                "width": artifact.width,
                "height": artifact.height,
            }
        )
    scenes = [
        {
            "scene": job.scene.uuid,
            "position": job.scene.position,
            "title": job.scene.title,
            "job": job.uuid,
            "state": job.state,
            "attempts": attempts.get(job.pk, []),
            "artifacts": artifacts.get(job.pk, []),
        }
        for job in jobs
    ]
    return build_run_metadata(
        batch=str(batch.uuid),
        brief=str(batch.brief.uuid),
        created_at=batch.created_at,
        queue_policy=batch.policy,
        scenes=scenes,
    )


def _results(summary: dict[str, Any], metadata: dict[str, Any]) -> list[dict[str, Any]]:
    """Every run check, then each attempt check that failed, naming the scene and attempt."""
    results = [dict(r.as_dict(), subject="run") for r in validate_run(summary, metadata)]
    for scene in metadata.get("scenes") or []:
        for attempt in scene.get("attempts") or []:
            subject = f"scene {scene.get('position')} attempt {attempt.get('number')}"
            for result in validate_attempt(attempt.get("telemetry") or {}):
                if not result.passed:
                    results.append(dict(result.as_dict(), subject=subject))
    results.sort(key=lambda r: r["passed"])  # failures first
    return results


def validate_report(report: RunReport, *, trigger: str) -> ValidationReport:
    # The stored documents, as users download them, not a fresh build from the rows.
    results = _results(report.summary, report.metadata)
    failed = sum(1 for r in results if not r["passed"])
    validation = ValidationReport.objects.create(
        batch=report.batch,
        run_report=report,
        passed=failed == 0,
        contract_version=SCHEMA_VERSION,
        checks_total=len(results),
        checks_failed=failed,
        results=results,
        trigger=trigger,
    )
    if failed:
        log.warning("run %s failed %d of %d checks", report.batch.uuid, failed, len(results))
    return validation


@transaction.atomic
def run_finish(batch: RenderBatch, *, trigger: str = "finished") -> ValidationReport:
    """Write (or rewrite) the batch's run report from its rows, then validate it."""
    batch = RenderBatch.objects.select_for_update().select_related("brief").get(pk=batch.pk)
    metadata = run_metadata(batch)
    summary = build_run_summary(metadata, generated_at=timezone.now())
    counts, totals = run_figures(metadata)
    cost = totals["estimated_cost_usd"]
    report, _ = RunReport.objects.update_or_create(
        batch=batch,
        defaults={
            "summary": summary,
            "metadata": metadata,
            "scenes": counts["scenes"],
            "succeeded": counts["jobs_by_state"].get("succeeded", 0),
            "attempts": counts["attempts"],
            "gpu_seconds": totals["gpu_seconds"],
            "cost_usd": Decimal(str(cost)) if cost is not None else None,
        },
    )
    return validate_report(report, trigger=trigger)


class RunSelectionError(ValueError):
    """The runs asked for cannot be validated: unknown, not UUIDs, or still rendering."""


def _uuids(values: list[str]) -> list[str]:
    try:
        return [str(uuid.UUID(value)) for value in values]
    except ValueError as exc:
        raise RunSelectionError(f"not a UUID: {exc}") from exc


def finished_batches(*, batch_uuids: list[str], brief_uuid: str | None = None) -> list[RenderBatch]:
    """The batches named (all of them must have ended), else every finished batch, of one brief
    if given; oldest first."""
    batches = batches_with_progress(RenderBatch.objects.all()).order_by("created_at")
    if batch_uuids:
        wanted = list(batches.filter(uuid__in=_uuids(batch_uuids)))
        missing = set(batch_uuids) - {str(b.uuid) for b in wanted}
        if missing:
            raise RunSelectionError(f"no batch {', '.join(sorted(missing))}")
        open_ones = [b for b in wanted if b.jobs_open]  # type: ignore[attr-defined]
        if open_ones:
            raise RunSelectionError(
                "; ".join(
                    f"batch {b.uuid} is still rendering ({b.jobs_open} of {b.jobs_total} jobs open)"  # type: ignore[attr-defined]
                    for b in open_ones
                )
            )
        return wanted
    if brief_uuid:
        batches = batches.filter(brief__uuid__in=_uuids([brief_uuid]))
    return [b for b in batches if b.jobs_total and not b.jobs_open]  # type: ignore[attr-defined]


def due_batches() -> list[RenderBatch]:
    """Batches whose jobs have all ended and that have no run report yet."""
    open_jobs = RenderJob.objects.filter(batch=OuterRef("pk")).exclude(state__in=TERMINAL_STATES)
    return list(
        RenderBatch.objects.filter(run_report__isnull=True)
        .filter(~Q(jobs=None))
        .exclude(Exists(open_jobs))
        .select_related("brief")
        .distinct()[:50]
    )


def finish_due_runs() -> int:
    done = 0
    for batch in due_batches():
        try:
            run_finish(batch)
            done += 1
        except Exception:
            log.exception("run report of batch %s failed; it is tried again on the next sweep", batch.uuid)
    return done

"""Reads about runs, their reports and their costs, with the briefs' access rule applied."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import Count, Q, QuerySet

from briefs.models import Brief
from briefs.selectors import briefs_visible_to
from generation.models import TERMINAL_STATES, Attempt, RenderBatch
from telemetry.models import RunReport, ValidationReport


def batches_visible_to(user: User | AnonymousUser) -> QuerySet[RenderBatch]:
    return RenderBatch.objects.filter(brief__in=briefs_visible_to(user))


def batches_with_progress(queryset: QuerySet[RenderBatch]) -> QuerySet[RenderBatch]:
    """Batches annotated with `jobs_total` and `jobs_open` (not yet ended)."""
    return queryset.annotate(
        jobs_total=Count("jobs", distinct=True),
        jobs_open=Count("jobs", filter=~Q(jobs__state__in=TERMINAL_STATES), distinct=True),
    ).select_related("brief", "run_report")


def run_report_of(batch: RenderBatch) -> RunReport | None:
    """The batch's run report, from the row `batches_with_progress` already joined when it did."""
    try:
        return batch.run_report
    except RunReport.DoesNotExist:
        return None


def latest_validation(batch: RenderBatch) -> ValidationReport | None:
    return batch.validation_reports.order_by("-created_at", "-id").first()


@dataclass(frozen=True)
class Spend:
    attempts: int
    gpu_seconds: float
    cost_usd: Decimal | None  # None: nothing in it was priced


def spend_of(attempts: QuerySet[Attempt]) -> Spend:
    """GPU-seconds and estimated cost summed from the attempts' telemetry records."""
    gpu_seconds = 0.0
    cost: Decimal | None = None
    count = 0
    for telemetry in attempts.values_list("telemetry", flat=True):
        count += 1
        telemetry = telemetry or {}
        gpu_seconds += float(telemetry.get("gpu_seconds") or 0)
        if telemetry.get("estimated_cost_usd") is not None:
            cost = (cost or Decimal(0)) + Decimal(str(telemetry["estimated_cost_usd"]))
    return Spend(attempts=count, gpu_seconds=round(gpu_seconds, 3), cost_usd=cost)


def brief_spend(brief: Brief) -> Spend:
    return spend_of(Attempt.objects.filter(job__brief=brief))


def batch_spend(batch: RenderBatch) -> Spend:
    return spend_of(Attempt.objects.filter(job__batch=batch))


@dataclass(frozen=True)
class RunRow:
    batch: RenderBatch
    validation: ValidationReport | None
    spend: Spend


def brief_runs(brief: Brief, *, limit: int = 10) -> list[RunRow]:
    """The brief's newest batches with their verdicts and spend, for the editor."""
    batches = batches_with_progress(RenderBatch.objects.filter(brief=brief)).order_by("-created_at")[:limit]
    return [RunRow(batch=b, validation=latest_validation(b), spend=batch_spend(b)) for b in batches]

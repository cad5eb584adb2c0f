"""Stability across runs: retries, requeues, contract completeness and failures, per backend and template.

A selector. `stability_report(scope)` picks the runs (batches) a scope names and
counts in the database, grouped by backend and by workflow template; only the
contract check runs in Python, one telemetry record at a time, because the
attempt rules are Python (telemetry.validation). The figures' definitions are in
telemetry.stability_report, which also prints them.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet, Subquery

from briefs.models import Brief
from generation.models import (
    Attempt,
    AttemptState,
    Backend,
    JobEvent,
    JobState,
    RenderBatch,
    RenderJob,
    WorkflowTemplate,
)
from telemetry.models import ValidationReport
from telemetry.stability_report import CodeCount, Figures, GroupRow, RunRow, StabilityReport
from telemetry.validation import validate_attempt

DEFAULT_LAST_RUNS = 20
MAX_LAST_RUNS = 1000
FAILED_JOB_STATES = (JobState.FAILED, JobState.LOST)
FAILED_ATTEMPT_STATES = (AttemptState.FAILED, AttemptState.LOST)
# Attempts still out have a partial record; only ended ones are held to the contract.
ENDED_ATTEMPT_STATES = (
    AttemptState.SUCCEEDED,
    AttemptState.FAILED,
    AttemptState.LOST,
    AttemptState.CANCELLED,
)
NEVER_PLACED = "(never placed)"


class StabilityScopeError(ValueError):
    """A scope that names no runs or names them wrongly; the message says which."""


@dataclass(frozen=True)
class StabilityScope:
    """Which runs to report on. Without batches or dates: the last `last_runs` runs (20 by default).

    Brief, backend and template narrow the runs to those that involve them; backend
    and template also narrow the jobs and attempts counted to theirs.
    """

    last_runs: int | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive
    batches: tuple[str, ...] = ()  # batch UUIDs
    brief: Brief | None = None
    backend: Backend | None = None
    template: WorkflowTemplate | None = None

    def describe(self) -> str:
        if self.batches:
            words = f"{len(self.batches)} given run(s)"
        elif self.since or self.until:
            since = f"{self.since:%Y-%m-%d %H:%M}" if self.since else "the first run"
            until = f"{self.until:%Y-%m-%d %H:%M}" if self.until else "now"
            words = f"runs from {since} to {until}"
            if self.last_runs:
                words = f"the last {self.last_runs} {words}"
        else:
            words = f"the last {self.last_runs or DEFAULT_LAST_RUNS} runs"
        if self.brief is not None:
            words += f" of brief '{self.brief.title}'"
        if self.backend is not None:
            words += f" on backend {self.backend.name}"
        if self.template is not None:
            words += f" with template {self.template.slug}"
        return words


def _check(scope: StabilityScope) -> None:
    if scope.last_runs is not None and not 1 <= scope.last_runs <= MAX_LAST_RUNS:
        raise StabilityScopeError(f"the number of runs must be 1 to {MAX_LAST_RUNS}, not {scope.last_runs}")
    if scope.since and scope.until and scope.since >= scope.until:
        raise StabilityScopeError("the start of the date range must be before its end")
    for value in scope.batches:
        try:
            uuid.UUID(str(value))
        except ValueError:
            raise StabilityScopeError(f"not a batch UUID: {value!r}") from None


def scope_batches(scope: StabilityScope) -> QuerySet[RenderBatch]:
    """The runs a scope names, oldest first."""
    _check(scope)
    batches = RenderBatch.objects.all()
    if scope.batches:
        wanted = {str(uuid.UUID(str(value))) for value in scope.batches}
        batches = batches.filter(uuid__in=wanted)
        missing = wanted - {str(u) for u in batches.values_list("uuid", flat=True)}
        if missing:
            raise StabilityScopeError(f"no batch {', '.join(sorted(missing))}")
    if scope.since:
        batches = batches.filter(created_at__gte=scope.since)
    if scope.until:
        batches = batches.filter(created_at__lt=scope.until)
    if scope.brief is not None:
        batches = batches.filter(brief=scope.brief)
    if scope.template is not None:
        batches = batches.filter(
            Exists(RenderJob.objects.filter(batch=OuterRef("pk"), template=scope.template))
        )
    if scope.backend is not None:
        batches = batches.filter(
            Exists(RenderJob.objects.filter(batch=OuterRef("pk"), backend=scope.backend))
            | Exists(Attempt.objects.filter(job__batch=OuterRef("pk"), backend=scope.backend))
        )
    last = scope.last_runs
    if last is None and not (scope.batches or scope.since or scope.until):
        last = DEFAULT_LAST_RUNS
    if last is not None:
        newest = list(batches.order_by("-created_at", "-pk").values_list("pk", flat=True)[:last])
        batches = RenderBatch.objects.filter(pk__in=newest)
    return batches.order_by("created_at", "pk")


def _grouped(queryset: QuerySet[Any], key: str | None, **aggregates: Any) -> dict[Any, dict[str, int]]:
    """Aggregates per value of `key` (one group, keyed None, when key is None); one query."""
    if key is None:
        return {None: queryset.aggregate(**aggregates)}
    # order_by(): a model's default ordering must not split the groups.
    rows = queryset.order_by().values(group=F(key)).annotate(**aggregates)
    return {row.pop("group"): row for row in rows}


def _codes(queryset: QuerySet[Any], key: str | None) -> dict[Any, dict[str, int]]:
    """Failures per group and error code: {group: {code: count}}."""
    fields = ["error_code"] if key is None else ["error_code", key]
    result: dict[Any, dict[str, int]] = defaultdict(dict)
    for row in queryset.order_by().values(*fields).annotate(n=Count("pk")):
        result[row[key] if key else None][row["error_code"] or "(no code)"] = row["n"]
    return result


@dataclass
class _Counts:
    """What one level (all, per backend, per template) needs, each as {group: figure}."""

    jobs: dict[Any, dict[str, int]]
    attempts: dict[Any, dict[str, int]]
    requeues: dict[Any, dict[str, int]]
    attempt_codes: dict[Any, dict[str, int]]
    job_codes: dict[Any, dict[str, int]]


def _figures(counts: _Counts, group: Any, telemetry: dict[Any, list[int]]) -> Figures:
    jobs = counts.jobs.get(group) or {}
    attempts = counts.attempts.get(group) or {}
    attempt_codes = counts.attempt_codes.get(group) or {}
    job_codes = counts.job_codes.get(group) or {}
    failures = sorted(
        (
            CodeCount(code=code, attempts=attempt_codes.get(code, 0), jobs=job_codes.get(code, 0))
            for code in set(attempt_codes) | set(job_codes)
        ),
        key=lambda c: (-(c.attempts + c.jobs), c.code),
    )
    ended, valid = telemetry.get(group, [0, 0])
    return Figures(
        jobs=jobs.get("jobs") or attempts.get("jobs") or 0,
        jobs_failed=jobs.get("failed") or 0,
        attempts=attempts.get("attempts") or 0,
        retries=attempts.get("retries") or 0,
        requeues=(counts.requeues.get(group) or {}).get("requeues") or 0,
        attempts_failed=attempts.get("failed") or 0,
        attempts_ended=ended,
        telemetry_valid=valid,
        failures=tuple(failures),
    )


def _count(
    jobs: QuerySet[RenderJob],
    attempts: QuerySet[Attempt],
    requeues: QuerySet[JobEvent],
    *,
    job_key: str | None,
    attempt_key: str | None,
    requeue_key: str | None,
    jobs_from_attempts: bool = False,
) -> _Counts:
    failed_jobs = jobs.filter(state__in=FAILED_JOB_STATES)
    failed_attempts = attempts.filter(state__in=FAILED_ATTEMPT_STATES)
    attempt_figures: dict[str, Any] = {
        "attempts": Count("pk"),
        "retries": Count("pk", filter=Q(number__gt=1)),
        "failed": Count("pk", filter=Q(state__in=FAILED_ATTEMPT_STATES)),
    }
    if jobs_from_attempts:  # a job counts for every backend it had an attempt on
        attempt_figures["jobs"] = Count("job", distinct=True)
    job_figures: dict[str, Any] = {"failed": Count("pk", filter=Q(state__in=FAILED_JOB_STATES))}
    if not jobs_from_attempts:
        job_figures["jobs"] = Count("pk")
    return _Counts(
        jobs=_grouped(jobs, job_key, **job_figures),
        attempts=_grouped(attempts, attempt_key, **attempt_figures),
        requeues=_grouped(requeues, requeue_key, requeues=Count("pk")),
        attempt_codes=_codes(failed_attempts, attempt_key),
        job_codes=_codes(failed_jobs, job_key),
    )


def _telemetry(attempts: QuerySet[Attempt]) -> tuple[list[int], dict[Any, list[int]], dict[Any, list[int]]]:
    """[ended, valid] overall, per backend and per template; the attempt rules are Python."""
    overall = [0, 0]
    per_backend: dict[Any, list[int]] = defaultdict(lambda: [0, 0])
    per_template: dict[Any, list[int]] = defaultdict(lambda: [0, 0])
    rows = (
        attempts.filter(state__in=ENDED_ATTEMPT_STATES)
        .order_by()
        .values_list("backend_id", "job__template_id", "telemetry")
    )
    for backend_id, template_id, record in rows.iterator(chunk_size=500):
        valid = int(bool(record) and all(r.passed for r in validate_attempt(record)))
        for tally in (overall, per_backend[backend_id], per_template[template_id]):
            tally[0] += 1
            tally[1] += valid
    return overall, per_backend, per_template


def _runs(batch_ids: list[int]) -> tuple[list[RunRow], int, int]:
    latest = ValidationReport.objects.filter(batch=OuterRef("pk")).order_by("-created_at", "-id")
    rows = (
        RenderBatch.objects.filter(pk__in=batch_ids)
        .annotate(
            jobs_total=Count("jobs"),
            jobs_failed=Count("jobs", filter=Q(jobs__state__in=FAILED_JOB_STATES)),
            latest_passed=Subquery(latest.values("passed")[:1]),
        )
        .select_related("brief")
        .order_by("created_at", "pk")
    )
    runs = []
    for batch in rows:
        passed = batch.latest_passed
        runs.append(
            RunRow(
                batch=str(batch.uuid),
                brief=batch.brief.title,
                created_at=batch.created_at,
                jobs=batch.jobs_total,
                jobs_failed=batch.jobs_failed,
                verdict="not validated" if passed is None else "passed" if passed else "failed",
            )
        )
    validated = sum(1 for run in runs if run.verdict != "not validated")
    passed = sum(1 for run in runs if run.verdict == "passed")
    return runs, validated, passed


def _rows(
    counts: _Counts, telemetry: dict[Any, list[int]], labels: dict[Any, tuple[str, str]]
) -> list[GroupRow]:
    groups: set[Any] = set()
    for part in (counts.jobs, counts.attempts, counts.requeues, counts.attempt_codes, counts.job_codes):
        groups |= set(part)
    groups |= set(telemetry)
    rows = [
        GroupRow(
            key=labels.get(group, ("", NEVER_PLACED))[0],
            label=labels.get(group, ("", NEVER_PLACED))[1],
            figures=_figures(counts, group, telemetry),
        )
        for group in groups
    ]
    return sorted(rows, key=lambda row: (row.key == "", row.label.lower()))


def _labels(model_rows: Iterable[tuple[int, str, str]]) -> dict[Any, tuple[str, str]]:
    return {pk: (key, label) for pk, key, label in model_rows}


def stability_report(scope: StabilityScope) -> StabilityReport:
    batch_ids = list(scope_batches(scope).values_list("pk", flat=True))
    jobs = RenderJob.objects.filter(batch_id__in=batch_ids)
    attempts = Attempt.objects.filter(job__batch_id__in=batch_ids)
    if scope.template is not None:
        jobs = jobs.filter(template=scope.template)
        attempts = attempts.filter(job__template=scope.template)
    if scope.backend is not None:
        jobs = jobs.filter(
            Q(backend=scope.backend)
            | Exists(Attempt.objects.filter(job=OuterRef("pk"), backend=scope.backend))
        )
        attempts = attempts.filter(backend=scope.backend)
    # A requeue is put down to the backend of the attempt it followed (the newest one before it).
    before = Attempt.objects.filter(job=OuterRef("job_id"), created_at__lte=OuterRef("at")).order_by(
        "-number"
    )
    requeues = (
        JobEvent.objects.filter(job__in=jobs, to_state=JobState.QUEUED)
        .exclude(from_state="")
        .annotate(after_backend=Subquery(before.values("backend_id")[:1]))
    )
    if scope.backend is not None:
        requeues = requeues.filter(after_backend=scope.backend.pk)

    overall_telemetry, backend_telemetry, template_telemetry = _telemetry(attempts)
    totals = _count(jobs, attempts, requeues, job_key=None, attempt_key=None, requeue_key=None)
    by_backend = _count(
        jobs,
        attempts,
        requeues,
        job_key="backend_id",
        attempt_key="backend_id",
        requeue_key="after_backend",
        jobs_from_attempts=True,
    )
    # Jobs that never had an attempt are counted under "never placed", so no job goes missing.
    unplaced = jobs.filter(~Exists(Attempt.objects.filter(job=OuterRef("pk"))))
    unplaced_count = unplaced.count()
    if unplaced_count:
        by_backend.attempts.setdefault(None, {})["jobs"] = unplaced_count
    by_template = _count(
        jobs,
        attempts,
        requeues,
        job_key="template_id",
        attempt_key="job__template_id",
        requeue_key="job__template_id",
    )
    backend_labels = _labels(
        (pk, name, name)
        for pk, name in Backend.objects.filter(pk__in=_keys(by_backend)).values_list("pk", "name")
    )
    template_labels = _labels(
        (pk, slug, f"{name} ({slug})")
        for pk, slug, name in WorkflowTemplate.objects.filter(pk__in=_keys(by_template)).values_list(
            "pk", "slug", "name"
        )
    )
    runs, validated, passed = _runs(batch_ids)
    return StabilityReport(
        scope=scope.describe(),
        runs=runs,
        runs_validated=validated,
        runs_passed=passed,
        totals=_figures(totals, None, {None: overall_telemetry}),
        per_backend=_rows(by_backend, dict(backend_telemetry), backend_labels),
        per_template=_rows(by_template, dict(template_telemetry), template_labels),
    )


def _keys(counts: _Counts) -> set[Any]:
    keys: set[Any] = set()
    for part in (counts.jobs, counts.attempts, counts.requeues, counts.attempt_codes, counts.job_codes):
        keys |= {key for key in part if key is not None}
    return keys

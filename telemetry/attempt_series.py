"""Reads of attempts' telemetry figures over time, and the slowest and failing attempts.

A selector for the admin's telemetry pages (one backend or one workflow template).
The figures are read out of the JSON record by the database (duration_s,
vram_after_mb, vram_delta_mb), so the page sorts and limits there, not in Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Case, F, FloatField, IntegerField, QuerySet, Value, When
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, Coalesce

from generation.models import Attempt, AttemptState
from generation.providers.base import ErrorCode

DEFAULT_POINTS = 500
MAX_POINTS = 5000
TABLE_ROWS = 20


@dataclass(frozen=True)
class AttemptFigures:
    pk: int
    uuid: str
    job_pk: int
    job_uuid: str
    number: int
    backend: str
    template: str
    state: str
    error_code: str
    at: datetime  # when it ended (when it began, while it is still out)
    duration_s: float | None
    vram_after_mb: float | None
    vram_delta_mb: float | None


def _number(field: str) -> Cast:
    # ->> gives text on every database; a missing key or JSON null is SQL NULL.
    return Cast(KT(f"telemetry__{field}"), FloatField())


def with_figures(attempts: QuerySet[Attempt]) -> QuerySet[Any]:
    # QuerySet[Any]: the annotations below are fields mypy's Django plugin cannot see.
    return attempts.annotate(
        at=Coalesce(F("finished_at"), F("created_at")),
        duration_s=_number("duration_s"),
        vram_after_mb=_number("vram_after_mb"),
        vram_delta_mb=_number("vram_delta_mb"),
    )


def _rows(attempts: QuerySet[Any]) -> list[AttemptFigures]:
    rows = attempts.values_list(
        "pk",
        "uuid",
        "job_id",
        "job__uuid",
        "number",
        "backend__name",
        "job__template__slug",
        "state",
        "error_code",
        "at",
        "duration_s",
        "vram_after_mb",
        "vram_delta_mb",
    )
    return [
        AttemptFigures(
            pk=pk,
            uuid=str(attempt_uuid),
            job_pk=job_pk,
            job_uuid=str(job_uuid),
            number=number,
            backend=backend,
            template=template,
            state=state,
            error_code=error_code,
            at=at,
            duration_s=duration,
            vram_after_mb=after,
            vram_delta_mb=delta,
        )
        for (
            pk,
            attempt_uuid,
            job_pk,
            job_uuid,
            number,
            backend,
            template,
            state,
            error_code,
            at,
            duration,
            after,
            delta,
        ) in rows
    ]


def recent_attempts(attempts: QuerySet[Attempt], *, limit: int = DEFAULT_POINTS) -> list[AttemptFigures]:
    """The newest `limit` attempts with their figures, oldest first (the order a chart draws)."""
    if not 1 <= limit <= MAX_POINTS:
        raise ValueError(f"the number of attempts must be 1 to {MAX_POINTS}, not {limit}")
    newest = with_figures(attempts).order_by("-at", "-pk")[:limit]
    return sorted(_rows(newest), key=lambda row: (row.at, row.pk))


def slowest_attempts(attempts: QuerySet[Attempt], *, limit: int = TABLE_ROWS) -> list[AttemptFigures]:
    measured = with_figures(attempts).filter(duration_s__isnull=False)
    return _rows(measured.order_by(F("duration_s").desc(), "-pk")[:limit])


def failing_attempts(attempts: QuerySet[Attempt], *, limit: int = TABLE_ROWS) -> list[AttemptFigures]:
    """Attempts that did not succeed: failed, lost and timed-out ones first, then cancelled, newest first."""
    rank = Case(
        When(error_code=ErrorCode.TIMEOUT, then=Value(0)),
        When(state__in=[AttemptState.FAILED, AttemptState.LOST], then=Value(0)),
        default=Value(1),
        output_field=IntegerField(),
    )
    unsuccessful = with_figures(attempts).filter(
        state__in=[AttemptState.FAILED, AttemptState.LOST, AttemptState.CANCELLED]
    )
    return _rows(unsuccessful.annotate(rank=rank).order_by("rank", "-at", "-pk")[:limit])

"""The admin's telemetry pages: the stability report, and duration and VRAM charts per backend and template.

Doors: each view checks permission, reads its filters through a form, calls a
selector and renders a server-side page. They live under /admin/telemetry/
(storycore/urls.py mounts `urlpatterns` before the admin site's own URLs) and
are wrapped by the admin site, so a visitor who is not active staff is sent to
the admin's login page; staff without view permission on the telemetry models
get 403.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib import admin
from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils.safestring import mark_safe

from generation.models import Attempt, AttemptState, Backend, WorkflowTemplate
from telemetry.attempt_series import (
    DEFAULT_POINTS,
    AttemptFigures,
    failing_attempts,
    recent_attempts,
    slowest_attempts,
)
from telemetry.charts import Series, time_chart_svg
from telemetry.forms import ChartWindowForm, StabilityFilterForm
from telemetry.stability import DEFAULT_LAST_RUNS, StabilityScope, StabilityScopeError, stability_report
from telemetry.stability_report import FIGURE_HEADERS, figure_cells

VIEW_PERMISSIONS = ("telemetry.view_runreport", "telemetry.view_validationreport")

app_name = "telemetry-admin"


def may_view_telemetry(user: User | AnonymousUser) -> bool:
    return bool(user.is_active and user.is_staff and user.has_perms(VIEW_PERMISSIONS))


def _page(request: HttpRequest, template: str, status: int = 200, **context: Any) -> TemplateResponse:
    return TemplateResponse(request, template, {**admin.site.each_context(request), **context}, status=status)


def stability_view(request: HttpRequest) -> HttpResponse:
    if not may_view_telemetry(request.user):
        raise PermissionDenied
    form = StabilityFilterForm(request.GET or None)
    if request.GET and not form.is_valid():
        return _page(request, "admin/telemetry/stability.html", 400, title="Stability report", form=form)
    data = form.cleaned_data if request.GET else {}
    scope = StabilityScope(
        last_runs=data.get("runs") or DEFAULT_LAST_RUNS,
        brief=data.get("brief"),
        backend=data.get("backend"),
        template=data.get("template"),
    )
    try:
        report = stability_report(scope)
    except StabilityScopeError as exc:
        form.add_error(None, str(exc))
        return _page(request, "admin/telemetry/stability.html", 400, title="Stability report", form=form)
    backends = dict(Backend.objects.values_list("name", "uuid"))
    templates = dict(WorkflowTemplate.objects.values_list("slug", "uuid"))
    return _page(
        request,
        "admin/telemetry/stability.html",
        title="Stability report",
        form=form,
        report=report,
        headers=FIGURE_HEADERS,
        totals=figure_cells(report.totals),
        backend_rows=[(row, backends.get(row.key), figure_cells(row.figures)) for row in report.per_backend],
        template_rows=[
            (row, templates.get(row.key), figure_cells(row.figures)) for row in report.per_template
        ],
    )


def charts_index_view(request: HttpRequest) -> HttpResponse:
    if not may_view_telemetry(request.user):
        raise PermissionDenied
    ended = Count("attempts", filter=~_still_out())
    return _page(
        request,
        "admin/telemetry/charts_index.html",
        title="Telemetry",
        backends=Backend.objects.annotate(ended=ended).order_by("name"),
        templates=WorkflowTemplate.objects.annotate(
            ended=Count("render_jobs__attempts", filter=~_still_out("render_jobs__attempts__"))
        ).order_by("name"),
    )


def _still_out(prefix: str = "attempts__") -> Q:
    return Q(**{f"{prefix}state__in": [AttemptState.SUBMITTING, AttemptState.RUNNING]})


def backend_charts_view(request: HttpRequest, backend_uuid: uuid.UUID) -> HttpResponse:
    if not may_view_telemetry(request.user):
        raise PermissionDenied
    backend = get_object_or_404(Backend, uuid=backend_uuid)
    return _charts(request, f"backend {backend.name}", Attempt.objects.filter(backend=backend))


def template_charts_view(request: HttpRequest, template_uuid: uuid.UUID) -> HttpResponse:
    if not may_view_telemetry(request.user):
        raise PermissionDenied
    template = get_object_or_404(WorkflowTemplate, uuid=template_uuid)
    return _charts(
        request, f"workflow {template.name} ({template.slug})", Attempt.objects.filter(job__template=template)
    )


def _charts(request: HttpRequest, subject: str, attempts: QuerySet[Attempt]) -> HttpResponse:
    form = ChartWindowForm(request.GET or None)
    title = f"Telemetry of {subject}"
    if request.GET and not form.is_valid():
        return _page(request, "admin/telemetry/charts.html", 400, title=title, form=form)
    last = (form.cleaned_data.get("last") if request.GET else None) or DEFAULT_POINTS
    points = recent_attempts(attempts, limit=last)
    return _page(
        request,
        "admin/telemetry/charts.html",
        title=title,
        form=form,
        shown=len(points),
        duration_chart=mark_safe(_duration_chart(subject, points)),  # noqa: S308 - every text in it is escaped
        vram_chart=mark_safe(_vram_chart(subject, points)),  # noqa: S308 - every text in it is escaped
        slowest=slowest_attempts(attempts),
        failing=failing_attempts(attempts),
    )


def _duration_chart(subject: str, points: list[AttemptFigures]) -> str:
    def series(name: str, rows: list[AttemptFigures]) -> Series:
        return Series(name, [(p.at, p.duration_s) for p in rows if p.duration_s is not None])

    succeeded = [p for p in points if p.state == AttemptState.SUCCEEDED]
    others = [p for p in points if p.state != AttemptState.SUCCEEDED]
    return time_chart_svg(
        title=f"Render duration, {subject}",
        series=[series("succeeded", succeeded), series("not succeeded", others)],
        y_label="duration (s)",
        lines=False,
    )


def _vram_chart(subject: str, points: list[AttemptFigures]) -> str:
    return time_chart_svg(
        title=f"VRAM, {subject}",
        series=[
            Series("in use after", [(p.at, p.vram_after_mb) for p in points if p.vram_after_mb is not None]),
            Series("rise during", [(p.at, p.vram_delta_mb) for p in points if p.vram_delta_mb is not None]),
        ],
        y_label="MiB",
    )


urlpatterns: list[URLPattern] = [
    path("stability/", admin.site.admin_view(stability_view), name="stability"),
    path("charts/", admin.site.admin_view(charts_index_view), name="charts"),
    path(
        "charts/backends/<uuid:backend_uuid>/",
        admin.site.admin_view(backend_charts_view),
        name="backend-charts",
    ),
    path(
        "charts/templates/<uuid:template_uuid>/",
        admin.site.admin_view(template_charts_view),
        name="template-charts",
    ),
]

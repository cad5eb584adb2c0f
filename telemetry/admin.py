"""The operations room's view of runs: run reports with their downloads, validation reports."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from telemetry import runs
from telemetry.downloads import metadata_response, summary_response
from telemetry.models import RunReport, ValidationReport


class RecordAdmin(admin.ModelAdmin):
    """Reports are what the validator found: staff read them, nobody edits them."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(RunReport)
class RunReportAdmin(RecordAdmin):
    list_display = [
        "batch_uuid",
        "brief",
        "scenes",
        "succeeded",
        "attempts",
        "gpu_seconds",
        "cost_usd",
        "verdict",
        "created_at",
    ]
    list_filter = ["created_at"]
    search_fields = ["batch__uuid", "batch__brief__title"]
    date_hierarchy = "created_at"
    actions = ["validate_again"]
    readonly_fields = [
        "batch_uuid",
        "brief",
        "scenes",
        "succeeded",
        "attempts",
        "gpu_seconds",
        "cost_usd",
        "downloads",
        "summary_preview",
        "created_at",
        "updated_at",
    ]
    exclude = ["batch", "summary", "metadata"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[RunReport]:
        return super().get_queryset(request).select_related("batch__brief")

    @admin.display(description="Batch", ordering="batch__created_at")
    def batch_uuid(self, report: RunReport) -> str:
        return str(report.batch.uuid)

    @admin.display(description="Brief", ordering="batch__brief__title")
    def brief(self, report: RunReport) -> str:
        return report.batch.brief.title

    @admin.display(description="Latest validation")
    def verdict(self, report: RunReport) -> SafeString:
        latest = report.validations.order_by("-created_at", "-id").first()
        if latest is None:
            return format_html("{}", "not validated")
        url = reverse("admin:telemetry_validationreport_change", args=[latest.pk])
        label = "passed" if latest.passed else f"failed {latest.checks_failed} of {latest.checks_total}"
        return format_html('<a href="{}">{}</a>', url, label)

    @admin.display(description="Downloads")
    def downloads(self, report: RunReport) -> SafeString:
        return format_html(
            '<a href="{}">Run summary (text)</a> · <a href="{}">Artifact metadata (JSON)</a>',
            reverse("admin:telemetry_runreport_summary", args=[report.pk]),
            reverse("admin:telemetry_runreport_metadata", args=[report.pk]),
        )

    @admin.display(description="Run summary")
    def summary_preview(self, report: RunReport) -> SafeString:
        return format_html('<pre style="white-space: pre-wrap">{}</pre>', report.summary_text)

    def get_urls(self) -> list[URLPattern]:
        own = [
            path(
                "<int:pk>/summary/",
                self.admin_site.admin_view(self.summary_view),
                name="telemetry_runreport_summary",
            ),
            path(
                "<int:pk>/metadata/",
                self.admin_site.admin_view(self.metadata_view),
                name="telemetry_runreport_metadata",
            ),
        ]
        return own + super().get_urls()

    def _report(self, request: HttpRequest, pk: int) -> RunReport:
        report = get_object_or_404(RunReport.objects.select_related("batch"), pk=pk)
        if not self.has_view_permission(request, report):
            raise PermissionDenied
        return report

    def summary_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        return summary_response(self._report(request, pk))

    def metadata_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        return metadata_response(self._report(request, pk))

    @admin.action(description="Validate the selected runs again")
    def validate_again(self, request: HttpRequest, queryset: QuerySet[RunReport]) -> None:
        results = [runs.validate_report(report, trigger="admin") for report in queryset]
        failed = sum(1 for r in results if not r.passed)
        level = messages.WARNING if failed else messages.SUCCESS
        self.message_user(request, f"{len(results)} run(s) validated, {failed} failed.", level)


@admin.register(ValidationReport)
class ValidationReportAdmin(RecordAdmin):
    list_display = ["batch_uuid", "brief", "passed", "checks", "trigger", "contract_version", "created_at"]
    list_filter = ["passed", "trigger", "contract_version", "created_at"]
    search_fields = ["batch__uuid", "batch__brief__title"]
    date_hierarchy = "created_at"
    readonly_fields = [
        "batch_uuid",
        "brief",
        "passed",
        "checks",
        "trigger",
        "contract_version",
        "created_at",
        "run_report_link",
        "results_table",
    ]
    exclude = ["batch", "run_report", "results", "checks_total", "checks_failed"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[ValidationReport]:
        return super().get_queryset(request).select_related("batch__brief")

    @admin.display(description="Batch")
    def batch_uuid(self, report: ValidationReport) -> str:
        return str(report.batch.uuid)

    @admin.display(description="Brief", ordering="batch__brief__title")
    def brief(self, report: ValidationReport) -> str:
        return report.batch.brief.title

    @admin.display(description="Checks failed / total", ordering="checks_failed")
    def checks(self, report: ValidationReport) -> str:
        return f"{report.checks_failed} / {report.checks_total}"

    @admin.display(description="Run report")
    def run_report_link(self, report: ValidationReport) -> SafeString:
        url = reverse("admin:telemetry_runreport_change", args=[report.run_report_id])
        return format_html('<a href="{}">Run report and downloads</a>', url)

    @admin.display(description="Checks (failures first)")
    def results_table(self, report: ValidationReport) -> SafeString:
        rows = format_html_join(
            "",
            '<tr class="{}"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>',
            (
                (
                    "passed" if r["passed"] else "failed",
                    "pass" if r["passed"] else "FAIL",
                    r.get("subject", ""),
                    r["check"],
                    r["message"],
                    json.dumps(r.get("offending") or {}, sort_keys=True, default=str)
                    if not r["passed"]
                    else "",
                )
                for r in report.results
            ),
        )
        return format_html(
            "<table><thead><tr><th>Result</th><th>Subject</th><th>Check</th><th>Message</th>"
            "<th>Offending values</th></tr></thead><tbody>{}</tbody></table>",
            rows,
        )

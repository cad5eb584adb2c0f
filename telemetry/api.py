"""REST API for runs: a batch's progress, its run summary and metadata, validation reports."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers
from rest_framework.exceptions import APIException
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from briefs.selectors import briefs_visible_to
from generation.models import RenderBatch
from telemetry import runs
from telemetry.downloads import metadata_response, summary_json_response, summary_response
from telemetry.models import RunReport, ValidationReport
from telemetry.selectors import (
    Spend,
    batch_spend,
    batches_visible_to,
    batches_with_progress,
    latest_validation,
    run_report_of,
)


class RunNotFinished(APIException):
    status_code = 409
    default_code = "run_not_finished"


class ValidationReportSerializer(serializers.ModelSerializer):
    batch = serializers.UUIDField(source="batch.uuid", read_only=True)
    brief = serializers.UUIDField(source="batch.brief.uuid", read_only=True)

    class Meta:
        model = ValidationReport
        fields = [
            "uuid",
            "batch",
            "brief",
            "passed",
            "contract_version",
            "checks_total",
            "checks_failed",
            "trigger",
            "created_at",
            "results",
        ]


class BatchOutputSerializer(serializers.ModelSerializer):
    brief = serializers.UUIDField(source="brief.uuid", read_only=True)
    jobs_total = serializers.IntegerField(read_only=True)
    jobs_open = serializers.IntegerField(read_only=True)
    finished = serializers.SerializerMethodField()
    gpu_seconds = serializers.SerializerMethodField()
    cost_usd = serializers.SerializerMethodField()
    run_report = serializers.SerializerMethodField()
    validation = serializers.SerializerMethodField()

    class Meta:
        model = RenderBatch
        fields = [
            "uuid",
            "brief",
            "created_at",
            "policy",
            "jobs_total",
            "jobs_open",
            "finished",
            "gpu_seconds",
            "cost_usd",
            "run_report",
            "validation",
        ]

    def get_finished(self, batch: RenderBatch) -> bool:
        return batch.jobs_open == 0  # type: ignore[attr-defined]

    def _spend(self, batch: RenderBatch) -> Spend:
        # Both figures come from one read of the batch's attempts.
        spends: dict[int, Spend] = self.context.setdefault("spends", {})
        if batch.pk not in spends:
            spends[batch.pk] = batch_spend(batch)
        return spends[batch.pk]

    def get_gpu_seconds(self, batch: RenderBatch) -> float:
        return self._spend(batch).gpu_seconds

    def get_cost_usd(self, batch: RenderBatch) -> str | None:
        cost = self._spend(batch).cost_usd
        return str(cost) if cost is not None else None

    def _url(self, path: str) -> str:
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path

    def get_run_report(self, batch: RenderBatch) -> dict[str, Any] | None:
        report = run_report_of(batch)
        if report is None:
            return None
        base = f"/api/v1/batches/{batch.uuid}"
        return {
            "created_at": report.created_at,
            "scenes": report.scenes,
            "succeeded": report.succeeded,
            "attempts": report.attempts,
            "summary_url": self._url(f"{base}/summary/"),
            "summary_json_url": self._url(f"{base}/summary.json"),
            "metadata_url": self._url(f"{base}/metadata/"),
        }

    def get_validation(self, batch: RenderBatch) -> dict[str, Any] | None:
        report = latest_validation(batch)
        if report is None:
            return None
        return {
            "uuid": str(report.uuid),
            "passed": report.passed,
            "checks_total": report.checks_total,
            "checks_failed": report.checks_failed,
            "created_at": report.created_at,
            "failures": [r for r in report.results if not r["passed"]],
        }


def _visible_batch(request: Request, batch_uuid: str) -> RenderBatch:
    return get_object_or_404(batches_with_progress(batches_visible_to(request.user)), uuid=batch_uuid)


def _report_of(batch: RenderBatch) -> RunReport:
    report = run_report_of(batch)
    if report is None:
        if batch.jobs_open:  # type: ignore[attr-defined]
            raise RunNotFinished(
                f"The batch is still rendering ({batch.jobs_open} of {batch.jobs_total} jobs open); "  # type: ignore[attr-defined]
                "its run summary is written when the last job ends."
            )
        raise RunNotFinished("The batch has ended; its run summary is being written. Try again in a moment.")
    return report


class BriefBatchesApi(generics.ListAPIView):
    """A brief's render batches, newest first, with their run reports and verdicts."""

    serializer_class = BatchOutputSerializer

    def get_queryset(self) -> QuerySet[RenderBatch]:
        # Another team's brief is a 404, as on every brief route, not an empty list.
        brief = get_object_or_404(briefs_visible_to(self.request.user), uuid=self.kwargs["brief_uuid"])
        return batches_with_progress(RenderBatch.objects.filter(brief=brief)).order_by("-created_at")


class BatchDetailApi(APIView):
    @extend_schema(responses={200: BatchOutputSerializer})
    def get(self, request: Request, batch_uuid: str) -> Response:
        batch = _visible_batch(request, batch_uuid)
        return Response(BatchOutputSerializer(batch, context={"request": request}).data)


class BatchSummaryApi(APIView):
    """The run summary as text (a 409 while the batch is still rendering)."""

    @extend_schema(responses={(200, "text/plain"): OpenApiTypes.STR})
    def get(self, request: Request, batch_uuid: str) -> HttpResponse:
        return summary_response(_report_of(_visible_batch(request, batch_uuid)))


class BatchSummaryJsonApi(APIView):
    """The run summary document (structured header and text) as JSON."""

    @extend_schema(responses={(200, "application/json"): OpenApiTypes.OBJECT})
    def get(self, request: Request, batch_uuid: str) -> HttpResponse:
        return summary_json_response(_report_of(_visible_batch(request, batch_uuid)))


class BatchMetadataApi(APIView):
    """The artifact-metadata document: per scene its attempts, telemetry and artifacts with sha256."""

    @extend_schema(responses={(200, "application/json"): OpenApiTypes.OBJECT})
    def get(self, request: Request, batch_uuid: str) -> HttpResponse:
        return metadata_response(_report_of(_visible_batch(request, batch_uuid)))


class BatchValidateApi(APIView):
    """Validate a finished run again now (staff only); returns the new report."""

    permission_classes = [IsAdminUser]

    @extend_schema(request=None, responses={201: ValidationReportSerializer})
    def post(self, request: Request, batch_uuid: str) -> Response:
        report = _report_of(_visible_batch(request, batch_uuid))
        validation = runs.validate_report(report, trigger="api")
        return Response(ValidationReportSerializer(validation).data, status=201)


class ValidationReportListApi(generics.ListAPIView):
    """Validation reports, newest first (staff only); `?passed=false` lists the failures."""

    serializer_class = ValidationReportSerializer
    permission_classes = [IsAdminUser]

    @extend_schema(parameters=[OpenApiParameter("passed", bool, description="Only passed or failed runs.")])
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[ValidationReport]:
        reports = ValidationReport.objects.select_related("batch__brief").order_by("-created_at", "-id")
        passed = self.request.query_params.get("passed")
        if passed is not None:
            if passed.lower() not in ("true", "false"):
                raise serializers.ValidationError({"passed": "Use true or false."})
            reports = reports.filter(passed=passed.lower() == "true")
        return reports

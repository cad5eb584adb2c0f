"""A run's documents as downloads, the same bytes from the editor, the admin and the API."""

from __future__ import annotations

import json

from django.http import HttpResponse

from telemetry.models import RunReport


def _attachment(response: HttpResponse, filename: str) -> HttpResponse:
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-cache"
    return response


def summary_response(report: RunReport) -> HttpResponse:
    body = report.summary_text
    return _attachment(
        HttpResponse(body, content_type="text/plain; charset=utf-8"), f"run-{report.batch.uuid}-summary.txt"
    )


def summary_json_response(report: RunReport) -> HttpResponse:
    body = json.dumps(report.summary, indent=2, sort_keys=True)
    return _attachment(
        HttpResponse(body, content_type="application/json"), f"run-{report.batch.uuid}-summary.json"
    )


def metadata_response(report: RunReport) -> HttpResponse:
    body = json.dumps(report.metadata, indent=2, sort_keys=True)
    return _attachment(
        HttpResponse(body, content_type="application/json"), f"run-{report.batch.uuid}-metadata.json"
    )

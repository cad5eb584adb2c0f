"""Doors of the telemetry app."""

from __future__ import annotations

import hmac

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry
from rest_framework.authtoken.models import Token

from telemetry.downloads import metadata_response, summary_response
from telemetry.metrics import StudioCollector
from telemetry.models import RunReport
from telemetry.selectors import batches_visible_to, run_report_of


def _may_scrape(request: HttpRequest) -> bool:
    """Staff by session or API token, or a scraper holding METRICS_TOKEN as a bearer token."""
    if request.user.is_authenticated and request.user.is_staff:
        return True
    scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
    credential = credential.strip()
    if not credential:
        return False
    if scheme == "Bearer" and settings.METRICS_TOKEN:
        return hmac.compare_digest(credential.encode(), settings.METRICS_TOKEN.encode())
    if scheme == "Token":
        return Token.objects.filter(key=credential, user__is_staff=True, user__is_active=True).exists()
    return False


def metrics(request: HttpRequest) -> HttpResponse:
    if not _may_scrape(request):
        response = HttpResponse(
            "Staff only: log in, or send a staff API token or the metrics token.\n", status=401
        )
        response["WWW-Authenticate"] = 'Bearer realm="storycore metrics"'
        response["Content-Type"] = "text/plain; charset=utf-8"
        return response
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StudioCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


def _run_report(request: HttpRequest, batch_uuid: str) -> RunReport:
    batch = get_object_or_404(batches_visible_to(request.user).select_related("run_report"), uuid=batch_uuid)
    report = run_report_of(batch)
    if report is None:
        raise Http404("This run has no summary yet: it is written when the batch's last job ends.")
    return report


@login_required
@require_GET
def run_summary(request: HttpRequest, batch_uuid: str) -> HttpResponse:
    return summary_response(_run_report(request, batch_uuid))


@login_required
@require_GET
def run_metadata(request: HttpRequest, batch_uuid: str) -> HttpResponse:
    return metadata_response(_run_report(request, batch_uuid))

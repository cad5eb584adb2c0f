"""Prometheus metrics, read from the database at scrape time.

Every process (ASGI, Celery, the watcher) writes to the database, so a collector
that counts rows there gives the same answer whichever ASGI process is scraped;
per-process counters would need prometheus_client's multiprocess mode and still
miss what the watcher did.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from django.db.models import Count, DurationField, ExpressionWrapper, F, Q, QuerySet, Sum
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from generation.models import (
    IN_FLIGHT_STATES,
    Attempt,
    AttemptState,
    Backend,
    BackendState,
    JobState,
    RenderJob,
)

# Seconds. Storyboard frames take a second, SDXL tens of seconds, video minutes.
RENDER_BUCKETS = (0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)
# Seconds the studio spends between claiming a job and the backend accepting it.
OVERHEAD_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


def _histogram(
    name: str, documentation: str, rows: QuerySet[Attempt], buckets: tuple[float, ...]
) -> HistogramMetricFamily:
    """Cumulative bucket counts per backend, counted by the database, not in Python."""
    family = HistogramMetricFamily(name, documentation, labels=["backend"])
    aggregates = {
        f"le_{i}": Count("id", filter=Q(seconds__lte=timedelta(seconds=b))) for i, b in enumerate(buckets)
    }
    for row in rows.values("backend__name").annotate(total=Count("id"), sum=Sum("seconds"), **aggregates):
        counts = [(floatToGoString(b), row[f"le_{i}"]) for i, b in enumerate(buckets)]
        counts.append(("+Inf", row["total"]))
        total_seconds = row["sum"].total_seconds() if row["sum"] is not None else 0.0
        family.add_metric([row["backend__name"]], counts, sum_value=total_seconds)
    return family


def _attempts_timed(start: str, end: str) -> QuerySet[Attempt]:
    return Attempt.objects.filter(**{f"{start}__isnull": False, f"{end}__isnull": False}).alias(
        seconds=ExpressionWrapper(F(end) - F(start), output_field=DurationField())
    )


class StudioCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        jobs = GaugeMetricFamily("storycore_jobs", "Render jobs by state.", labels=["state"])
        by_state = dict(
            RenderJob.objects.values_list("state").annotate(n=Count("id")).values_list("state", "n")
        )
        for job_state in JobState.values:
            jobs.add_metric([job_state], by_state.get(job_state, 0))
        yield jobs

        backends = list(Backend.objects.all())
        in_flight = dict(
            RenderJob.objects.filter(state__in=IN_FLIGHT_STATES, backend__isnull=False)
            .values_list("backend")
            .annotate(n=Count("id"))
            .values_list("backend", "n")
        )
        held = GaugeMetricFamily(
            "storycore_backend_jobs_in_flight",
            "Jobs a backend holds now: running plus waiting in its own queue.",
            labels=["backend"],
        )
        slots = GaugeMetricFamily(
            "storycore_backend_slots",
            "Jobs a backend may hold: capacity plus queue depth.",
            labels=["backend"],
        )
        backend_state = GaugeMetricFamily(
            "storycore_backend_state",
            "1 for the state each backend is in, 0 for the others.",
            labels=["backend", "state"],
        )
        connected = GaugeMetricFamily(
            "storycore_backend_socket_connected",
            "Whether the render watcher's live socket to the backend is open.",
            labels=["backend"],
        )
        vram = GaugeMetricFamily(
            "storycore_backend_vram_total_bytes", "GPU memory the backend reported.", labels=["backend"]
        )
        for backend in backends:
            held.add_metric([backend.name], in_flight.get(backend.pk, 0))
            slots.add_metric([backend.name], backend.slots)
            for name in BackendState.values:
                backend_state.add_metric([backend.name, name], 1 if backend.state == name else 0)
            connected.add_metric([backend.name], 1 if backend.socket_connected else 0)
            if backend.vram_total_mb is not None:
                vram.add_metric([backend.name], backend.vram_total_mb * 1024 * 1024)
        used = GaugeMetricFamily(
            "storycore_backend_vram_used_bytes",
            "GPU memory in use after the backend's latest attempt with GPU figures.",
            labels=["backend"],
        )
        for backend in backends:
            latest = (
                Attempt.objects.filter(backend=backend, telemetry__vram_after_mb__isnull=False)
                .exclude(telemetry__vram_after_mb=None)
                .order_by("-finished_at", "-id")
                .values_list("telemetry", flat=True)
                .first()
            )
            if latest and isinstance(latest.get("vram_after_mb"), int):
                used.add_metric([backend.name], latest["vram_after_mb"] * 1024 * 1024)
        yield from (held, slots, backend_state, connected, vram, used)

        waiting = GaugeMetricFamily("storycore_jobs_waiting", "Queued jobs no backend holds yet.")
        waiting.add_metric([], by_state.get(JobState.QUEUED, 0))
        yield waiting

        yield _histogram(
            "storycore_render_duration_seconds",
            "Succeeded attempts: from the backend accepting the prompt to the outputs stored.",
            _attempts_timed("submitted_at", "finished_at").filter(state=AttemptState.SUCCEEDED),
            RENDER_BUCKETS,
        )
        yield _histogram(
            "storycore_submit_overhead_seconds",
            "Studio overhead per attempt: from the claim to the backend accepting the prompt.",
            _attempts_timed("created_at", "submitted_at"),
            OVERHEAD_BUCKETS,
        )

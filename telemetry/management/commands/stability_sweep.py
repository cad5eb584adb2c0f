"""Render a brief N times in a row and print the stability report over those runs."""

from __future__ import annotations

import sys
import time
import uuid
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from briefs.models import Brief
from generation.models import Backend, QueuePolicy
from generation.services import RenderRefused, render_brief_submit
from telemetry import runs
from telemetry.stability import StabilityScope, stability_report
from telemetry.stability_report import stability_text
from telemetry.sweep import BatchProgress, SweepTimeout, wait_for_batch

MAX_RUNS = 1000
# Exit statuses: 0 every run passed and no job failed, 1 not so, 2 the sweep itself could not run.
UNSTABLE, COULD_NOT_RUN = 1, 2


def _fail(message: str) -> CommandError:
    return CommandError(message, returncode=COULD_NOT_RUN)


class Command(BaseCommand):
    help = (
        "Stability sweep: submit N batches of a brief one after another (each once the previous one's "
        "jobs have all ended), then print the stability report over those runs. Renders need the "
        "studio's processes running — the render watcher and a Celery worker, as `./studio run` "
        "starts them — and an enabled backend. Exits 0 when every run passed validation and no job "
        "failed, 1 when not, 2 when the sweep could not run (bad arguments, no backend, a batch "
        "that did not finish within the timeout)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--brief", required=True, metavar="UUID", help="the brief to render")
        parser.add_argument(
            "--runs", required=True, type=int, metavar="N", help="how many batches, one by one"
        )
        parser.add_argument("--backend", metavar="NAME", help="render on this backend only")
        parser.add_argument(
            "--timeout",
            type=float,
            default=1800.0,
            metavar="SECONDS",
            help="how long one batch may take before the sweep gives up (default 1800)",
        )
        parser.add_argument("--policy", metavar="NAME", help="a queue policy preset, by name")
        parser.add_argument(
            "--poll-interval",
            type=float,
            default=2.0,
            metavar="SECONDS",
            help="how often job states are read from the database (default 2)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        count = options["runs"]
        if not 1 <= count <= MAX_RUNS:
            raise _fail(f"--runs must be 1 to {MAX_RUNS}, not {count}")
        if options["timeout"] <= 0 or options["poll_interval"] <= 0:
            raise _fail("--timeout and --poll-interval must be more than 0 seconds")
        brief = self._brief(options["brief"])
        backend = self._backend(options["backend"])
        policy = self._policy(options["policy"])

        batches = []
        for number in range(1, count + 1):
            label = f"run {number}/{count}"
            try:
                batch, jobs = render_brief_submit(brief=brief, user=None, backend=backend, preset=policy)
            except RenderRefused as exc:
                raise _fail(f"{label}: refused: {exc}") from exc
            batches.append(str(batch.uuid))
            self._say(f"{label}: batch {batch.uuid} submitted, {len(jobs)} job(s)")
            started = time.monotonic()

            def show(progress: BatchProgress, label: str = label, started: float = started) -> None:
                self._say(f"{label}: {progress.describe()} after {time.monotonic() - started:.1f} s")

            try:
                wait_for_batch(
                    batch, timeout_s=options["timeout"], poll_s=options["poll_interval"], on_change=show
                )
            except SweepTimeout as exc:
                raise _fail(
                    f"{label}: {exc}. Are the render watcher and a Celery worker running "
                    "(`./studio run`, or `manage.py render_watcher` with `celery worker`)?"
                ) from exc
            # The run report is written soon after a batch ends; the sweep writes it now rather than wait.
            runs.finish_due_runs()

        report = stability_report(StabilityScope(batches=tuple(batches)))
        self.stdout.write("")
        self.stdout.write(stability_text(report), ending="")
        if not report.stable:
            sys.exit(UNSTABLE)

    def _say(self, line: str) -> None:
        self.stdout.write(line)
        self.stdout.flush()

    def _brief(self, value: str) -> Brief:
        try:
            key = uuid.UUID(value)
        except ValueError:
            raise _fail(f"--brief: not a UUID: {value!r}") from None
        brief = Brief.objects.filter(uuid=key).first()
        if brief is None:
            raise _fail(f"--brief: no brief {key}")
        return brief

    def _backend(self, name: str | None) -> Backend | None:
        if not Backend.objects.filter(enabled=True).exists():
            raise _fail(
                "no render backend is enabled: add one in the admin, or start the studio with "
                "`./studio run`, which registers the storyboard preview server"
            )
        if name is None:
            return None
        backend = Backend.objects.filter(name=name).first()
        if backend is None:
            known = ", ".join(Backend.objects.order_by("name").values_list("name", flat=True))
            raise _fail(f"--backend: no backend named {name!r} (known: {known})")
        if not backend.enabled:
            raise _fail(f"--backend: {name} is disabled")
        return backend

    def _policy(self, name: str | None) -> QueuePolicy | None:
        if name is None:
            return None
        policy = QueuePolicy.objects.filter(name=name).first()
        if policy is None:
            known = ", ".join(QueuePolicy.objects.order_by("name").values_list("name", flat=True)) or "none"
            raise _fail(f"--policy: no queue policy named {name!r} (known: {known})")
        return policy

"""Validate finished runs against the telemetry contract; exit 1 when any fails (for pipelines)."""

from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from generation.models import RenderBatch
from telemetry import runs
from telemetry.models import RunReport


class Command(BaseCommand):
    help = (
        "Validate run reports against the telemetry contract and store a validation report for each. "
        "Exits 1 when any run fails a check, 2 when the arguments match nothing it can validate."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--batch", action="append", default=[], metavar="UUID", help="a batch (repeatable)"
        )
        parser.add_argument("--brief", metavar="UUID", help="every finished batch of this brief")
        parser.add_argument(
            "--rebuild",
            action="store_true",
            help="write each run's summary and metadata again from the database before validating",
        )
        parser.add_argument("--json", action="store_true", help="one JSON object per run on stdout")

    def handle(self, *args: Any, **options: Any) -> None:
        finished_now = runs.finish_due_runs()  # batches that ended without a report yet
        try:
            batches = runs.finished_batches(batch_uuids=options["batch"], brief_uuid=options["brief"])
        except runs.RunSelectionError as exc:
            raise CommandError(str(exc), returncode=2) from exc
        if not batches:
            raise CommandError("no finished run matches; nothing was validated", returncode=2)
        failed = 0
        for batch in batches:
            report = RunReport.objects.filter(batch=batch).first()
            if options["rebuild"] or report is None:
                validation = runs.run_finish(batch, trigger="command")
            else:
                validation = runs.validate_report(report, trigger="command")
            failed += not validation.passed
            self._print(batch, validation, as_json=options["json"])
        if not options["json"]:
            summary = f"{len(batches)} run(s) validated, {failed} failed"
            if finished_now:
                summary += f" ({finished_now} report(s) written first for runs that had none)"
            self.stdout.write(summary)
        if failed:
            sys.exit(1)

    def _print(self, batch: RenderBatch, validation: Any, *, as_json: bool) -> None:
        failures = [r for r in validation.results if not r["passed"]]
        if as_json:
            self.stdout.write(
                json.dumps(
                    {
                        "batch": str(batch.uuid),
                        "brief": str(batch.brief.uuid),
                        "passed": validation.passed,
                        "checks_total": validation.checks_total,
                        "checks_failed": validation.checks_failed,
                        "failures": failures,
                    },
                    sort_keys=True,
                )
            )
            return
        verdict = "PASS" if validation.passed else "FAIL"
        self.stdout.write(
            f"{verdict} batch {batch.uuid} of brief '{batch.brief.title}': "
            f"{validation.checks_total - validation.checks_failed}/{validation.checks_total} checks passed"
        )
        for failure in failures:
            offending = json.dumps(failure.get("offending") or {}, sort_keys=True, default=str)
            self.stdout.write(f"  {failure['subject']}: {failure['check']}: {failure['message']} {offending}")

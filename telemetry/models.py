"""What a finished run leaves behind: its documents and the validator's verdicts."""

from __future__ import annotations

import uuid

from django.db import models


class RunReport(models.Model):
    """A batch's run summary and artifact-metadata document, written when its last job ends."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    batch = models.OneToOneField(
        "generation.RenderBatch", on_delete=models.CASCADE, related_name="run_report"
    )
    # The run-summary document (header + human-readable text) and the artifact-metadata
    # document, as telemetry.run_documents builds them and as users download them.
    summary = models.JSONField()
    metadata = models.JSONField()
    scenes = models.PositiveIntegerField(default=0)
    succeeded = models.PositiveIntegerField(default=0)
    attempts = models.PositiveIntegerField(default=0)
    gpu_seconds = models.FloatField(default=0)
    cost_usd = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Run report of batch {self.batch_id}"

    @property
    def summary_text(self) -> str:
        return str(self.summary.get("text", ""))


class ValidationReport(models.Model):
    """The validator's verdict on one run: every check, passed or not, with the offending values."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    batch = models.ForeignKey(
        "generation.RenderBatch", on_delete=models.CASCADE, related_name="validation_reports"
    )
    run_report = models.ForeignKey(RunReport, on_delete=models.CASCADE, related_name="validations")
    passed = models.BooleanField()
    contract_version = models.CharField(max_length=20)
    checks_total = models.PositiveIntegerField(default=0)
    checks_failed = models.PositiveIntegerField(default=0)
    # [{"check", "subject", "passed", "message", "values"}], failures first.
    results = models.JSONField(default=list)
    trigger = models.CharField(max_length=20, default="finished", help_text="finished, command or admin")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["passed", "-created_at"], name="validation_passed_recent_idx")]

    def __str__(self) -> str:
        verdict = "passed" if self.passed else f"failed {self.checks_failed} of {self.checks_total}"
        return f"Validation of batch {self.batch_id}: {verdict}"

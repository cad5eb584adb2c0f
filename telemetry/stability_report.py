"""The stability report's shape, and its text for people and pipelines.

Pure Python (no Django): telemetry.stability fills these dataclasses from the
database; `stability_text` prints them (the stability_sweep command), the admin
page shows the same figures as tables.

Definitions (the same at every level: all runs, one backend, one template):
- retries: attempts beyond the first of their job (attempt number > 1);
- requeues: a job's moves back to `queued` after it had left it (its first
  `queued` event, the request, is not one);
- contract completeness: the share of ended attempts whose telemetry record
  passes telemetry.validation.validate_attempt;
- failures by error code: attempts that ended failed or lost, and jobs that did.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


def ratio(part: int, whole: int) -> float | None:
    """part / whole, or None when there is nothing to divide by (shown as "-", never as 0)."""
    return part / whole if whole else None


@dataclass(frozen=True)
class CodeCount:
    code: str
    attempts: int  # attempts that ended failed or lost with this code
    jobs: int  # jobs that ended failed or lost with this code


@dataclass(frozen=True)
class Figures:
    jobs: int = 0
    jobs_failed: int = 0  # failed or lost
    attempts: int = 0
    retries: int = 0
    requeues: int = 0
    attempts_failed: int = 0  # failed or lost
    attempts_ended: int = 0  # the ones whose telemetry is checked
    telemetry_valid: int = 0
    failures: tuple[CodeCount, ...] = ()  # most frequent first

    @property
    def retries_per_job(self) -> float | None:
        return ratio(self.retries, self.jobs)

    @property
    def requeues_per_job(self) -> float | None:
        return ratio(self.requeues, self.jobs)

    @property
    def job_failure_rate(self) -> float | None:
        return ratio(self.jobs_failed, self.jobs)

    @property
    def contract_completeness(self) -> float | None:
        return ratio(self.telemetry_valid, self.attempts_ended)


@dataclass(frozen=True)
class GroupRow:
    """One backend or one workflow template."""

    key: str  # the backend's name or the template's slug; "" for jobs that never reached a backend
    label: str
    figures: Figures


@dataclass(frozen=True)
class RunRow:
    batch: str
    brief: str
    created_at: datetime
    jobs: int
    jobs_failed: int
    verdict: str  # passed, failed or not validated (its latest validation report)


@dataclass(frozen=True)
class StabilityReport:
    scope: str  # which runs, in words
    runs: list[RunRow]
    runs_validated: int
    runs_passed: int
    totals: Figures
    per_backend: list[GroupRow] = field(default_factory=list)
    per_template: list[GroupRow] = field(default_factory=list)

    @property
    def runs_pass_rate(self) -> float | None:
        """Passed runs among all runs in scope: a run not validated yet has not passed."""
        return ratio(self.runs_passed, len(self.runs))

    @property
    def runs_failed(self) -> int:
        return self.runs_validated - self.runs_passed

    @property
    def runs_not_validated(self) -> int:
        return len(self.runs) - self.runs_validated

    @property
    def stable(self) -> bool:
        """Every run passed validation and no job failed: what the sweep's exit status reports."""
        return self.runs_passed == len(self.runs) and self.totals.jobs_failed == 0


def percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def per_job(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def codes_text(failures: tuple[CodeCount, ...]) -> str:
    if not failures:
        return "none"
    return ", ".join(f"{c.code} {c.attempts}/{c.jobs}" for c in failures)


# The admin's tables show the same figures as the text, column by column.
FIGURE_HEADERS = (
    "jobs",
    "failed jobs",
    "attempts",
    "failed attempts",
    "retries (per job)",
    "requeues (per job)",
    "contract complete",
    "failures by code (attempts/jobs)",
)


def figure_cells(f: Figures) -> list[str]:
    return [
        str(f.jobs),
        str(f.jobs_failed),
        str(f.attempts),
        str(f.attempts_failed),
        f"{f.retries} ({per_job(f.retries_per_job)})",
        f"{f.requeues} ({per_job(f.requeues_per_job)})",
        f"{percent(f.contract_completeness)} ({f.telemetry_valid}/{f.attempts_ended})",
        codes_text(f.failures),
    ]


def _group_lines(title: str, rows: list[GroupRow]) -> list[str]:
    if not rows:
        return [f"{title}: none"]
    header = (
        f"  {'name':<36} {'jobs':>5} {'failed':>6} {'attempts':>8} {'retries/job':>11} "
        f"{'requeues/job':>12} {'contract':>8}  failures (attempts/jobs)"
    )
    lines = [f"{title}:", header]
    for row in rows:
        f = row.figures
        lines.append(
            f"  {row.label[:36]:<36} {f.jobs:>5} {f.jobs_failed:>6} {f.attempts:>8} "
            f"{per_job(f.retries_per_job):>11} {per_job(f.requeues_per_job):>12} "
            f"{percent(f.contract_completeness):>8}  {codes_text(f.failures)}"
        )
    return lines


def stability_text(report: StabilityReport) -> str:
    """The report for a terminal: totals first, then one line per run, backend and template."""
    t = report.totals
    lines = [
        f"Stability report: {report.scope}",
        f"Runs: {len(report.runs)} ({report.runs_passed} passed validation, {report.runs_failed} failed, "
        f"{report.runs_not_validated} not validated; pass rate {percent(report.runs_pass_rate)})",
        f"Jobs: {t.jobs} ({t.jobs_failed} failed or lost; failure rate {percent(t.job_failure_rate)})",
        f"Attempts: {t.attempts} ({t.attempts_failed} failed or lost)",
        f"Retries: {t.retries} ({per_job(t.retries_per_job)} per job)",
        f"Requeues: {t.requeues} ({per_job(t.requeues_per_job)} per job)",
        f"Contract completeness: {percent(t.contract_completeness)} "
        f"({t.telemetry_valid} of {t.attempts_ended} ended attempts pass the attempt rules)",
        f"Failures by error code (attempts/jobs): {codes_text(t.failures)}",
        "",
        "Runs:",
    ]
    if not report.runs:
        lines.append("  none")
    for run in report.runs:
        lines.append(
            f"  {run.created_at:%Y-%m-%d %H:%M:%S} batch {run.batch} brief '{run.brief}': "
            f"{run.jobs} jobs, {run.jobs_failed} failed; validation {run.verdict}"
        )
    lines.append("")
    lines.extend(_group_lines("Per backend", report.per_backend))
    lines.append("")
    lines.extend(_group_lines("Per workflow template", report.per_template))
    verdict = "STABLE" if report.stable else "UNSTABLE"
    lines.extend(
        [
            "",
            f"{verdict}: {report.runs_failed} run(s) failed validation, {report.runs_not_validated} "
            f"not validated, {t.jobs_failed} job(s) failed",
        ]
    )
    return "\n".join(lines) + "\n"

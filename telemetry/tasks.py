"""Celery tasks of the telemetry app: short, safe to run twice. Task names are a public API."""

from celery import shared_task


@shared_task(name="telemetry.finish_runs", acks_late=True, ignore_result=True)
def finish_runs() -> None:
    from telemetry.runs import finish_due_runs

    finish_due_runs()

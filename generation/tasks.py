"""Celery tasks: short, safe to run twice, ids in and nothing out. Task names are a public API."""

from celery import shared_task


@shared_task(name="generation.dispatch", acks_late=True, ignore_result=True)
def dispatch() -> None:
    from generation.dispatch import dispatch_round

    dispatch_round()


@shared_task(name="generation.reconcile", acks_late=True, ignore_result=True)
def reconcile() -> None:
    from generation.reconciler import reconcile as run

    run()


@shared_task(name="generation.cancel_attempt", acks_late=True, ignore_result=True)
def cancel_attempt(attempt_id: int) -> None:
    from generation.attempts import attempt_cancel_remote
    from generation.models import Attempt

    attempt = Attempt.objects.select_related("backend").filter(pk=attempt_id).first()
    if attempt is not None:
        attempt_cancel_remote(attempt)


@shared_task(name="generation.check_backends", acks_late=True, ignore_result=True)
def check_backends() -> None:
    from generation.services import check_backends as run

    run()


@shared_task(name="generation.build_deliverable", acks_late=True, ignore_result=True)
def build_deliverable(deliverable_id: int) -> None:
    from generation.services import deliverable_build

    deliverable_build(deliverable_id=deliverable_id)


@shared_task(name="generation.sweep_deliverables", acks_late=True, ignore_result=True)
def sweep_deliverables() -> None:
    from django.conf import settings

    from generation.services import deliverables_left_behind

    for deliverable_id in deliverables_left_behind(stale_after_s=settings.DELIVERABLE_STALE_S):
        build_deliverable.delay(deliverable_id)

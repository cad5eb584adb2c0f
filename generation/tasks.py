from celery import shared_task

from generation import runner


@shared_task(name="generation.render_job", acks_late=True, reject_on_worker_lost=True)
def render_job(job_id: int) -> None:
    runner.render_job_execute(job_id=job_id)


@shared_task(name="generation.check_backends", acks_late=True)
def check_backends() -> None:
    from generation.models import Backend
    from generation.providers.base import ProviderError
    from generation.services import backend_check_health, backend_object_info

    for backend in Backend.objects.filter(enabled=True):
        if backend_check_health(backend=backend).reachable:
            try:
                backend_object_info(backend=backend)  # refetched only when stale
            except ProviderError:
                pass  # the next check tries again; the health state already says why

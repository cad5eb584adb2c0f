from celery import shared_task
from django.conf import settings
from django.db import transaction

from briefs import services
from briefs.models import Brief, OutlineState
from briefs.outline import expander_from_config
from generation.events import publish_brief_changed


@shared_task(name="briefs.resume_outlines", acks_late=True, ignore_result=True)
def resume_outlines() -> None:
    for request_id in services.outline_requests_left_behind(older_than_s=settings.OUTLINE_TIMEOUT * 3):
        expand_outline.delay(request_id)


@shared_task(name="briefs.purge_deleted_scenes", acks_late=True, ignore_result=True)
def purge_deleted_scenes() -> None:
    services.scenes_purge_deleted(older_than_s=settings.SCENE_UNDO_KEEP_S)


@shared_task(name="briefs.expand_outline", acks_late=True, ignore_result=True)
def expand_outline(request_id: int) -> None:
    """Run one outline request: an expansion of the idea, or a refine from a note (its `kind`)."""
    expander = expander_from_config(
        settings.OUTLINE_BASE_URL, settings.OUTLINE_API_KEY, settings.OUTLINE_MODEL, settings.OUTLINE_TIMEOUT
    )
    request = services.outline_run(request_id=request_id, expander=expander)
    if request.state == OutlineState.SUCCEEDED:
        # The brief's scenes and bible changed: its open windows take the new board at once.
        brief = Brief.objects.get(pk=request.brief_id)
        with transaction.atomic():
            publish_brief_changed(brief=brief, stamp=services.brief_stamp(brief))

"""The operations room's lists open, with the figures staff read from them."""

import pytest

from generation import services
from generation.models import JobState, RenderJob


@pytest.mark.django_db(transaction=True)
def test_the_backend_list_shows_state_and_renders_in_flight(
    client, django_user_model, brief, template, backend
):
    admin = django_user_model.objects.create_superuser("ops", password="a-long-password-5")
    client.force_login(admin)
    job = services.render_job_submit(scene=brief.scenes.first(), user=admin)
    RenderJob.objects.filter(pk=job.pk).update(state=JobState.RUNNING, backend=backend)
    page = client.get("/admin/generation/backend/")
    assert page.status_code == 200
    row = page.content.decode().split("Storyboard preview", 2)[-1]
    assert '<td class="field-in_flight">1</td>' in row
    for path in ("renderjob", "attempt", "artifact", "queuepolicy", "workflowtemplate", "renderbatch"):
        assert client.get(f"/admin/generation/{path}/").status_code == 200, path

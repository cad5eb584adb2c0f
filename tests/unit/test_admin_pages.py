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


@pytest.mark.django_db
def test_a_jobs_outputs_are_shown_by_kind_in_its_admin_page(
    client, django_user_model, brief, template, backend
):
    from generation.models import Artifact, Attempt, AttemptState

    admin = django_user_model.objects.create_superuser("ops", password="a-long-password-5")
    client.force_login(admin)
    job = services.render_job_submit(scene=brief.scenes.first(), user=admin)
    attempt = Attempt.objects.create(job=job, number=1, backend=backend, state=AttemptState.SUCCEEDED)
    outputs = [("image", "image/png", "png"), ("video", "video/mp4", "mp4"), ("audio", "audio/flac", "flac")]
    for index, (kind, content_type, extension) in enumerate(outputs):
        Artifact.objects.create(
            job=job,
            attempt=attempt,
            storage_name=f"{job.uuid}/{index}.{extension}",
            content_type=content_type,
            size_bytes=1,
            sha256="0" * 64,
            kind=kind,
            duration_s=None if kind == "image" else 1.5,
        )
    page = client.get(f"/admin/generation/renderjob/{job.pk}/change/").content.decode()
    tags = {a.kind: a for a in job.artifacts.all()}
    assert f'<img src="/artifacts/{tags["image"].uuid}/"' in page
    assert f'<video src="/artifacts/{tags["video"].uuid}/"' in page
    assert f'<audio src="/artifacts/{tags["audio"].uuid}/"' in page
    assert page.count("<video src=") == page.count("<audio src=") == 1
    assert "1.5" in page

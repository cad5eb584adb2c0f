"""Input images: uploaded in the editor, checked, and required by the workflows that start from one."""

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from generation import services
from generation.models import WorkflowTemplate


def png(size=(64, 48), color=(200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def signed_in(client, staff_user):
    client.force_login(staff_user)
    return client


@pytest.fixture
def img2img(db):
    services.workflow_templates_sync()
    return WorkflowTemplate.objects.get(slug="img2img")


def _scene_post(scene, **extra):
    prefix = f"s{scene.pk}"
    data = {f"{prefix}-title": scene.title, f"{prefix}-prompt": scene.prompt}
    data.update({f"{prefix}-{key}": value for key, value in extra.items()})
    return data


@pytest.mark.django_db
def test_an_input_image_uploaded_in_the_editor_is_kept_and_bumps_the_scene_version(signed_in, brief):
    scene = brief.scenes.first()
    upload = SimpleUploadedFile("start.png", png(), content_type="image/png")
    response = signed_in.post(f"/scenes/{scene.uuid}/", _scene_post(scene, input_image=upload))
    assert response.status_code == 302
    scene.refresh_from_db()
    assert scene.input_image.name.startswith("scenes/start")
    assert scene.version == 2
    served = signed_in.get(f"/scenes/{scene.uuid}/input-image/")
    assert served.status_code == 200
    assert b"".join(served.streaming_content).startswith(b"\x89PNG")


@pytest.mark.django_db
def test_a_file_that_is_not_an_image_is_refused_and_nothing_changes(signed_in, brief):
    scene = brief.scenes.first()
    upload = SimpleUploadedFile("notes.png", b"not an image at all", content_type="image/png")
    response = signed_in.post(
        f"/scenes/{scene.uuid}/", _scene_post(scene, input_image=upload, title="Changed")
    )
    assert response.status_code == 400
    assert (
        "Upload a valid image" in response.content.decode() or "cannot be used" in response.content.decode()
    )
    scene.refresh_from_db()
    assert (scene.title, scene.input_image.name, scene.version) == ("Harbour", "", 1)


@pytest.mark.django_db
def test_an_image_over_the_size_limit_is_refused(signed_in, brief, settings):
    settings.INPUT_IMAGE_MAX_BYTES = 100
    scene = brief.scenes.first()
    upload = SimpleUploadedFile("big.png", png((300, 300)), content_type="image/png")
    response = signed_in.post(f"/scenes/{scene.uuid}/", _scene_post(scene, input_image=upload))
    assert response.status_code == 400
    assert "the limit is 0 KB" in response.content.decode()


@pytest.mark.django_db
def test_a_workflow_that_starts_from_an_image_is_refused_without_one(brief, img2img, backend, staff_user):
    with pytest.raises(services.RenderRefused, match="add an input image on scene 1 \\(Harbour\\)"):
        services.render_job_submit(scene=brief.scenes.first(), user=staff_user, template=img2img)


@pytest.mark.django_db(transaction=True)
def test_the_brief_workflow_is_used_and_the_input_image_is_recorded_on_the_job(
    brief, img2img, backend, staff_user
):
    from briefs.services import brief_update, scene_update

    brief_update(brief=brief, template=img2img)
    scene = brief.scenes.first()
    scene_update(scene=scene, input_image=SimpleUploadedFile("start.png", png(), content_type="image/png"))
    job = services.render_job_submit(scene=scene, user=staff_user)
    assert job.template == img2img
    recorded = job.params["images"]["init_image"]
    assert recorded["name"] == scene.input_image.name
    assert len(recorded["sha256"]) == 64


@pytest.mark.django_db
def test_an_ipadapter_workflow_needs_the_brief_character_reference(brief, backend, staff_user):
    services.workflow_templates_sync()
    template = WorkflowTemplate.objects.get(slug="ipadapter-character")
    with pytest.raises(services.RenderRefused, match="add the brief's character reference"):
        services.render_job_submit(scene=brief.scenes.first(), user=staff_user, template=template)


@pytest.mark.django_db
def test_the_editor_offers_the_workflows_and_saves_the_choice(signed_in, brief, img2img):
    page = signed_in.get(f"/briefs/{brief.uuid}/").content.decode()
    assert "Img2img" in page or img2img.name in page
    response = signed_in.post(f"/briefs/{brief.uuid}/", {"title": brief.title, "template": img2img.pk})
    assert response.status_code == 302
    brief.refresh_from_db()
    assert brief.template == img2img

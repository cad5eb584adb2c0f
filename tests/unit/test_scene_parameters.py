"""A scene's workflow template and its parameter values: chosen and checked in the editor, the
admin and the API, recorded on the job, and sent through the template's bindings."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import pytest

from briefs import services as brief_services
from briefs.forms import SceneAdminForm, SceneForm
from briefs.models import Scene
from generation import attempts, services
from generation.dispatch import _claim
from generation.models import RenderJob, WorkflowTemplate
from generation.providers.base import ErrorCode
from generation.workflow_validation import find_problems

OBJECT_INFO = json.loads(
    (
        pathlib.Path(__file__).resolve().parents[2]
        / "generation/bundled_backends/preview_server/object_info.json"
    ).read_text(encoding="utf-8")
)


@pytest.fixture
def templates(db) -> dict[str, WorkflowTemplate]:
    loaded, errors = services.workflow_templates_sync()
    assert not errors
    return {t.slug: t for t in loaded}


@pytest.fixture
def signed_in(client, staff_user):
    client.force_login(staff_user)
    return client


def _post(scene: Scene, **fields: Any) -> dict[str, Any]:
    prefix = f"s{scene.pk}"
    data = {f"{prefix}-title": scene.title, f"{prefix}-prompt": scene.prompt}
    data.update({f"{prefix}-{key}": value for key, value in fields.items()})
    return data


# -- the editor ---------------------------------------------------------------------------
@pytest.mark.django_db
def test_the_editor_shows_a_field_per_parameter_of_the_scenes_template(signed_in, brief, templates):
    scene = brief.scenes.first()
    page = signed_in.get(f"/briefs/{brief.uuid}/").content.decode()
    assert f'name="s{scene.pk}-param_steps"' in page
    assert 'min="1"' in page and 'max="50"' in page  # the storyboard template's declared range
    assert "Brief&#x27;s workflow (Storyboard txt2img)" in page
    form = SceneForm(instance=scene, brief=brief)
    assert [name for name in form.fields if name.startswith("param_")] == [
        "param_width",
        "param_height",
        "param_steps",
    ]
    assert form.fields["param_steps"].initial == 12  # the template's default


@pytest.mark.django_db
def test_a_value_out_of_range_gets_a_message_next_to_the_field_and_nothing_is_saved(
    signed_in, brief, templates
):
    scene = brief.scenes.first()
    brief_services.scene_update(scene=scene, params={"steps": 30})
    response = signed_in.post(
        f"/scenes/{scene.uuid}/", _post(scene, title="Harbour at dawn", param_steps=500)
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert (
        f'<ul class="errorlist" id="id_s{scene.pk}-param_steps_error">'
        "<li>steps must be a whole number from 1 to 50 (got 500)</li></ul>"
    ) in page
    assert "Harbour at dawn" in page
    scene.refresh_from_db()
    assert (scene.title, scene.params) == ("Harbour", {"steps": 30})


@pytest.mark.django_db
def test_the_error_is_attached_to_its_field(brief, templates):
    scene = brief.scenes.first()
    form = SceneForm(
        data={"title": scene.title, "prompt": scene.prompt, "param_width": 100}, instance=scene, brief=brief
    )
    assert not form.is_valid()
    assert form.errors["param_width"] == [
        "width must be a whole number from 64 to 1024 in steps of 8 (got 100)"
    ]


@pytest.mark.django_db
def test_saved_values_are_only_those_unlike_the_default(signed_in, brief, templates):
    scene = brief.scenes.first()
    before = scene.version
    response = signed_in.post(f"/scenes/{scene.uuid}/", _post(scene, param_steps=30, param_width=512))
    assert response.status_code == 302
    scene.refresh_from_db()
    assert scene.params == {"steps": 30}  # 512 is the template's width: the scene follows it
    assert scene.version == before + 1
    signed_in.post(f"/scenes/{scene.uuid}/", _post(scene, param_steps=12))
    scene.refresh_from_db()
    assert scene.params == {}


@pytest.mark.django_db
def test_a_new_scene_from_the_editor_takes_its_values_and_its_own_template(signed_in, brief, templates):
    url = f"/briefs/{brief.uuid}/scenes/"
    response = signed_in.post(url, {"new-title": "Pier", "new-prompt": "a pier", "new-param_steps": 99})
    assert response.status_code == 400
    assert "steps must be a whole number from 1 to 50 (got 99)" in response.content.decode()
    assert brief.scenes.count() == 2
    sdxl = templates["sdxl-txt2img"]
    response = signed_in.post(
        url,
        {"new-title": "Pier", "new-prompt": "a pier", "new-template": sdxl.pk, "new-param_width": 96},
        follow=True,
    )
    scene = brief.scenes.get(title="Pier")
    assert (scene.template, scene.params) == (sdxl, {})
    assert "Dropped with the change of workflow: width" in response.content.decode()


@pytest.mark.django_db
def test_a_post_without_the_parameter_fields_keeps_the_stored_values(signed_in, brief, templates):
    scene = brief.scenes.first()
    brief_services.scene_update(scene=scene, params={"steps": 30})
    response = signed_in.post(f"/scenes/{scene.uuid}/", _post(scene, title="Renamed"))
    assert response.status_code == 302
    scene.refresh_from_db()
    assert (scene.title, scene.params) == ("Renamed", {"steps": 30})


@pytest.mark.django_db
def test_a_new_template_keeps_the_values_that_fit_and_says_which_were_dropped(signed_in, brief, templates):
    scene = brief.scenes.first()
    brief_services.scene_update(scene=scene, params={"steps": 40, "width": 128})
    svd = templates["svd-img2vid"]
    response = signed_in.post(
        f"/scenes/{scene.uuid}/",
        _post(scene, template=svd.pk, param_steps=40, param_width=128, param_height=512),
        follow=True,
    )
    assert response.status_code == 200
    scene.refresh_from_db()
    assert scene.template == svd
    assert scene.params == {"steps": 40, "height": 512}  # SVD takes widths from 256
    page = response.content.decode()
    assert "Dropped with the change of workflow: width" in page
    assert "width must be a whole number from 256 to 1280" in page
    # The form now shows the new template's own parameters.
    form = SceneForm(instance=scene, brief=brief)
    assert {"param_video_frames", "param_motion_bucket_id", "param_fps"} <= set(form.fields)
    assert form.fields["input_image"].label == "First frame"


@pytest.mark.django_db
def test_the_choices_are_the_enabled_templates_and_a_choice_is_a_select(brief, templates):
    WorkflowTemplate.objects.filter(slug="upscale").update(enabled=False)
    scene = brief.scenes.first()
    brief_services.scene_update(scene=scene, template=templates["sdxl-txt2img"])
    form = SceneForm(instance=scene, brief=brief)
    offered = {t.slug for t in form.fields["template"].queryset}
    assert "upscale" not in offered and "sdxl-txt2img" in offered
    sampler = form.fields["param_sampler_name"]
    assert sampler.initial == "dpmpp_2m"
    assert ("euler", "euler") in sampler.choices
    assert 'class="scene-param scene-param-choice"' in str(form["param_sampler_name"])


# -- the services and the admin -------------------------------------------------------------
@pytest.mark.django_db
def test_the_service_refuses_a_choice_not_offered_and_creates_nothing(brief, templates):
    count = brief.scenes.count()
    with pytest.raises(brief_services.SceneParamsRefused) as refused:
        brief_services.scene_create(
            brief=brief,
            title="Storm",
            prompt="waves",
            template=templates["sdxl-txt2img"],
            params={"sampler_name": "turbo", "steps": 0},
        )
    assert "sampler_name must be one of euler" in refused.value.errors["sampler_name"]
    assert refused.value.errors["steps"] == "steps must be a whole number from 1 to 100 (got 0)"
    assert brief.scenes.count() == count


@pytest.mark.django_db
def test_a_template_change_alone_drops_what_no_longer_fits(brief, templates):
    scene = brief.scenes.first()
    brief_services.scene_update(scene=scene, params={"steps": 40, "width": 128})
    scene = brief_services.scene_update(scene=scene, template=templates["sdxl-txt2img"])
    assert scene.params == {"steps": 40}


@pytest.mark.django_db
def test_the_admin_checks_the_json_values_with_the_same_rule(brief, templates):
    scene = brief.scenes.first()
    data = {
        "title": scene.title,
        "prompt": scene.prompt,
        "params": json.dumps({"steps": 99}),
        "transition": "cut",
    }
    form = SceneAdminForm(data=data, instance=scene)
    assert not form.is_valid()
    assert form.errors["params"] == ["steps must be a whole number from 1 to 50 (got 99)"]
    data["params"] = json.dumps({"steps": 20})
    form = SceneAdminForm(data=data, instance=scene)
    assert form.is_valid(), form.errors
    saved, _before = form.update_scene()
    assert saved.params == {"steps": 20}


# -- rendering ------------------------------------------------------------------------------
@pytest.mark.django_db
def test_the_job_records_every_parameter_and_the_workflow_sent_carries_the_scenes_values(
    brief, templates, backend, staff_user
):
    sdxl = templates["sdxl-txt2img"]
    scene = brief.scenes.first()
    brief_services.scene_update(
        scene=scene, template=sdxl, params={"steps": 30, "sampler_name": "euler", "width": 768}
    )
    job = services.render_job_submit(scene=scene, user=staff_user)
    assert (job.template, job.template_version) == (sdxl, sdxl.version)
    assert job.params["inputs"] == {
        "steps": 30,
        "cfg": 7.0,
        "denoise": 1.0,
        "width": 768,
        "height": 1024,
        "sampler_name": "euler",
        "scheduler": "karras",
    }
    attempt = _claim(job, backend)
    sent = attempts._bound_workflow(RenderJob.objects.get(pk=job.pk), attempt)
    sampler = sent["3"]["inputs"]
    assert (sampler["steps"], sampler["sampler_name"], sampler["cfg"]) == (30, "euler", 7.0)
    assert (sent["5"]["inputs"]["width"], sent["5"]["inputs"]["height"]) == (768, 1024)
    assert sent["6"]["inputs"]["text"] == job.params["prompt"]
    # What is sent is what a real ComfyUI takes (model files aside: they differ per server).
    problems = [p for p in find_problems(sent, OBJECT_INFO) if p.code != ErrorCode.MISSING_MODEL]
    assert problems == []


@pytest.mark.django_db
def test_a_video_scenes_own_parameters_reach_every_bound_input(brief, templates, backend, staff_user):
    svd = templates["svd-img2vid"]
    scene = brief.scenes.first()
    scene.input_image.save("first.png", _png(), save=False)
    Scene.objects.filter(pk=scene.pk).update(input_image=scene.input_image.name)
    brief_services.scene_update(scene=scene, template=svd, params={"video_frames": 25, "fps": 12})
    job = services.render_job_submit(scene=Scene.objects.get(pk=scene.pk), user=staff_user)
    sent = attempts._bound_workflow(job, _claim(job, backend))
    assert sent["12"]["inputs"]["video_frames"] == 25
    assert sent["12"]["inputs"]["fps"] == 12 and sent["10"]["inputs"]["fps"] == 12
    assert sent["12"]["inputs"]["motion_bucket_id"] == 127


@pytest.mark.django_db
def test_a_brief_render_binds_each_job_to_its_scenes_template(brief, templates, backend, staff_user):
    sdxl = templates["sdxl-txt2img"]
    first, second = brief.scenes.order_by("position")
    brief_services.scene_update(scene=first, template=sdxl, params={"steps": 30})
    brief_services.scene_update(scene=second, params={"steps": 20})
    _batch, jobs = services.render_brief_submit(brief=brief, user=staff_user)
    assert [(j.template.slug, j.params["inputs"]["steps"]) for j in jobs] == [
        ("sdxl-txt2img", 30),
        ("storyboard-txt2img", 20),
    ]
    assert [j.template_version for j in jobs] == [sdxl.version, templates["storyboard-txt2img"].version]


@pytest.mark.django_db
def test_a_value_the_changed_template_no_longer_takes_refuses_the_render_by_name(
    brief, templates, backend, staff_user
):
    scene = brief.scenes.first()
    brief_services.scene_update(scene=scene, params={"steps": 45})
    storyboard = templates["storyboard-txt2img"]
    narrower = [
        {**p, "max": 40} if p["name"] == "steps" else p for p in storyboard.parameters
    ]  # as a new version of the file would
    WorkflowTemplate.objects.filter(pk=storyboard.pk).update(parameters=narrower)
    with pytest.raises(
        services.RenderRefused, match=r"Scene 1 \(Harbour\): steps must be a whole number from 1 to 40"
    ):
        services.render_job_submit(scene=Scene.objects.get(pk=scene.pk), user=staff_user)
    assert RenderJob.objects.count() == 0


@pytest.mark.django_db
def test_a_new_imported_version_keeps_the_declarations(templates):
    sdxl = templates["sdxl-txt2img"]
    newer = services.workflow_template_import(
        name=sdxl.name,
        slug=sdxl.slug,
        api_json=json.dumps(sdxl.graph),
        bindings_json=json.dumps(sdxl.bindings),
    )
    assert newer.version == sdxl.version + 1
    assert newer.parameters == sdxl.parameters


# -- the API ----------------------------------------------------------------------------------
@pytest.mark.django_db
def test_the_api_writes_and_reads_template_and_params(api_client, brief, templates):
    response = api_client.post(
        f"/api/v1/briefs/{brief.uuid}/scenes/",
        {
            "title": "Storm",
            "prompt": "waves",
            "template": "sdxl-txt2img",
            "params": {"steps": 30, "cfg": 5.5},
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert response.json()["template"] == "sdxl-txt2img"
    assert response.json()["params"] == {"steps": 30, "cfg": 5.5}
    listed = api_client.get(f"/api/v1/briefs/{brief.uuid}/").json()["scenes"]
    assert [s["template"] for s in listed] == [None, None, "sdxl-txt2img"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("payload", "errors"),
    [
        (
            {"template": "sdxl-txt2img", "params": {"steps": 500}},
            {"params": {"steps": ["steps must be a whole number from 1 to 100 (got 500)"]}},
        ),
        (
            {"params": {"motion_bucket_id": 3}},
            {
                "params": {
                    "motion_bucket_id": [
                        "the workflow Storyboard txt2img has no parameter 'motion_bucket_id' "
                        "(it takes: width, height, steps)"
                    ]
                }
            },
        ),
        ({"template": "no-such"}, {"template": ["No workflow template in use has the slug no-such."]}),
    ],
)
def test_the_api_answers_400_naming_the_parameter(api_client, brief, templates, payload, errors):
    response = api_client.post(
        f"/api/v1/briefs/{brief.uuid}/scenes/",
        {"title": "Storm", "prompt": "waves", **payload},
        format="json",
    )
    assert response.status_code == 400
    assert response.json() == errors
    assert brief.scenes.count() == 2


def _png() -> Any:
    import io

    from django.core.files.base import ContentFile
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(buffer, "PNG")
    return ContentFile(buffer.getvalue())

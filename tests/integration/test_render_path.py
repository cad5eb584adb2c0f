"""A render through the REST API, a real Celery worker and the preview server's
ComfyUI protocol, down to the stored PNG."""

import io
import json
import time

import httpx
import pytest
from PIL import Image

from generation.models import Attempt, Backend, JobEvent

pytestmark = pytest.mark.integration


def _api(studio) -> httpx.Client:
    return httpx.Client(
        base_url=studio["stack"].web_url, headers={"Authorization": f"Token {studio['token']}"}, timeout=10
    )


def _wait_for_end(api: httpx.Client, job_uuid: str, stack, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = api.get(f"/api/v1/jobs/{job_uuid}/").json()
        if job["state"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.2)
    raise AssertionError(
        f"job {job_uuid} still {job['state']} after {timeout} s\n{stack.log('worker')[-3000:]}"
    )


def test_a_scene_rendered_through_the_api_is_stored_as_a_labelled_png(studio):
    with _api(studio) as api:
        created = api.post(
            "/api/v1/briefs/",
            json={
                "title": "Paper moon",
                "style": "charcoal",
                "scenes": [
                    {"title": "Rooftop", "prompt": "a girl hanging a paper moon over the city", "seed": 77}
                ],
            },
        )
        assert created.status_code == 201, created.text
        scene = created.json()["scenes"][0]
        submitted = api.post(f"/api/v1/scenes/{scene['uuid']}/renders/", json={})
        assert submitted.status_code == 202, submitted.text
        job = _wait_for_end(api, submitted.json()["uuid"], studio["stack"])
        assert job["state"] == "succeeded", job
        assert job["backend"] == "Storyboard preview"
        [artifact] = job["artifacts"]
        download = api.get(artifact["download_url"])
    assert download.status_code == 200
    assert download.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(download.content))
    image.load()
    assert image.format == "PNG"
    assert image.size == (512, 512) == (artifact["width"], artifact["height"])
    label = json.loads(image.text["storyboard"])
    assert label["label"] == "a girl hanging a paper moon over the city, charcoal"
    assert label["seed"] == 77
    # The prompt_id ComfyUI ran is our attempt's id, recorded before waiting.
    attempt = Attempt.objects.get(job__uuid=job["uuid"])
    assert attempt.remote_handle == str(attempt.uuid)
    assert attempt.state == "succeeded"
    states = list(JobEvent.objects.filter(job__uuid=job["uuid"]).values_list("to_state", flat=True))
    assert states == ["queued", "dispatched", "running", "fetching", "succeeded"]


def test_a_render_on_a_backend_that_is_down_fails_as_unavailable(studio):
    Backend.objects.create(name="Down box", base_url="http://127.0.0.1:9")
    with _api(studio) as api:
        brief = api.post(
            "/api/v1/briefs/", json={"title": "T", "scenes": [{"title": "S", "prompt": "p"}]}
        ).json()
        # Asked for by name, so no other backend may take it over: it waits for that one, within
        # its max wait, and then fails.
        job = api.post(
            f"/api/v1/scenes/{brief['scenes'][0]['uuid']}/renders/",
            json={"backend": "Down box", "policy_overrides": {"max_wait_s": 3}},
        ).json()
        ended = _wait_for_end(api, job["uuid"], studio["stack"])
    assert ended["state"] == "failed"
    assert ended["error_code"] == "unavailable"
    assert ended["error_message"].startswith("waited 3 s for Down box: ")
    assert "cannot be reached" in ended["error_message"]
    assert "Hint: check that Down box is running" in ended["error_message"]
    assert "Traceback" not in ended["error_message"]
    # Asked for that backend only, so no second attempt went anywhere else.
    assert Attempt.objects.filter(job__uuid=job["uuid"]).count() == 1
    # Nothing already saved was lost.
    with _api(studio) as api:
        assert api.get(f"/api/v1/briefs/{brief['uuid']}/").json()["scenes"][0]["prompt"] == "p"


def test_a_workflow_needing_a_model_no_backend_has_fails_naming_the_model(studio):
    from generation.models import WorkflowTemplate
    from generation.services import workflow_template_import

    template = WorkflowTemplate.objects.get(slug="storyboard-txt2img")
    graph = template.graph
    graph["4"]["inputs"]["ckpt_name"] = "not-installed.safetensors"
    # A new version, as staff would import it: the render binds the version its job records.
    workflow_template_import(
        name=template.name,
        slug=template.slug,
        api_json=json.dumps(graph),
        bindings_json=json.dumps(template.bindings),
    )
    with _api(studio) as api:
        brief = api.post(
            "/api/v1/briefs/", json={"title": "T", "scenes": [{"title": "S", "prompt": "p"}]}
        ).json()
        job = api.post(f"/api/v1/scenes/{brief['scenes'][0]['uuid']}/renders/", json={}).json()
        ended = _wait_for_end(api, job["uuid"], studio["stack"])
    assert ended["state"] == "failed"
    assert ended["error_code"] == "missing_model"
    # Where it is refused depends on whether dispatch has read the backend's catalogue yet: at
    # dispatch (no catalogue lists the model), or by the check against the catalogue before submit.
    assert ended["error_message"] in (
        "No enabled backend has 'not-installed.safetensors'. Hint: install it on a backend, or change the workflow.",
        "node 4 (CheckpointLoaderSimple) input ckpt_name: the server has no 'not-installed.safetensors'. "
        "Hint: no other enabled backend has 'not-installed.safetensors'.",
    )


def test_health_reports_database_broker_and_backends(studio):
    with _api(studio) as api:
        body = api.get("/health/").json()
    assert body["database"] == {"ok": True}
    assert body["broker"] == {"ok": True}
    assert [b["name"] for b in body["backends"]] == ["Storyboard preview"]


def test_an_img2img_render_uploads_the_scenes_input_image(studio):
    import io as _io

    from django.core.files.uploadedfile import SimpleUploadedFile

    from briefs.services import brief_create, scene_update
    from generation.models import WorkflowTemplate

    buffer = _io.BytesIO()
    Image.new("RGB", (80, 60), (10, 120, 200)).save(buffer, "PNG")
    brief = brief_create(
        user=studio["user"],
        title="From a sketch",
        template=WorkflowTemplate.objects.get(slug="img2img"),
        scenes=[{"title": "Sketch", "prompt": "a lighthouse from a pencil sketch"}],
    )
    scene = brief.scenes.get()
    scene_update(scene=scene, input_image=SimpleUploadedFile("sketch.png", buffer.getvalue()))
    with _api(studio) as api:
        job = api.post(f"/api/v1/scenes/{scene.uuid}/renders/", json={}).json()
        ended = _wait_for_end(api, job["uuid"], studio["stack"])
    assert ended["state"] == "succeeded", ended
    assert ended["template"] == "img2img"
    assert len(ended["artifacts"]) == 1

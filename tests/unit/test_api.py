import pytest
from rest_framework.test import APIClient

from generation.models import RenderJob


@pytest.mark.django_db
def test_the_api_refuses_requests_without_credentials():
    response = APIClient().get("/api/v1/briefs/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"


@pytest.mark.django_db
def test_a_wrong_token_is_refused():
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert client.get("/api/v1/briefs/").status_code == 401


@pytest.mark.django_db
def test_a_brief_is_created_with_its_scenes_in_order(api_client):
    response = api_client.post(
        "/api/v1/briefs/",
        {
            "title": "Glass city",
            "style": "neon",
            "scenes": [{"title": "A", "prompt": "tower"}, {"title": "B", "prompt": "rain"}],
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert [(s["position"], s["title"]) for s in body["scenes"]] == [(1, "A"), (2, "B")]
    assert api_client.get(f"/api/v1/briefs/{body['uuid']}/").json()["title"] == "Glass city"


@pytest.mark.django_db
def test_bad_brief_data_gets_field_errors_and_saves_nothing(api_client):
    response = api_client.post(
        "/api/v1/briefs/",
        {"title": "", "scenes": [{"title": "A"}, {"title": "B", "prompt": "x", "seed": -1}]},
        format="json",
    )
    assert response.status_code == 400
    errors = response.json()
    assert "title" in errors
    assert "prompt" in errors["scenes"][0]
    assert "seed" in errors["scenes"][1]
    assert api_client.get("/api/v1/briefs/").json()["count"] == 0


@pytest.mark.django_db(transaction=True)
def test_a_scene_render_returns_the_queued_job(api_client, brief, template, backend):
    scene = brief.scenes.first()
    response = api_client.post(f"/api/v1/scenes/{scene.uuid}/renders/", {}, format="json")
    assert response.status_code == 202, response.json()
    job = response.json()
    assert job["state"] == "queued"
    assert job["scene"] == str(scene.uuid)
    assert job["template"] == "storyboard-txt2img"
    fetched = api_client.get(f"/api/v1/jobs/{job['uuid']}/").json()
    assert fetched["uuid"] == job["uuid"]
    listed = api_client.get(f"/api/v1/briefs/{brief.uuid}/jobs/").json()
    assert [j["uuid"] for j in listed["results"]] == [job["uuid"]]


@pytest.mark.django_db(transaction=True)
def test_a_brief_render_returns_a_batch_of_jobs(api_client, brief, template, backend):
    response = api_client.post(f"/api/v1/briefs/{brief.uuid}/renders/", {}, format="json")
    assert response.status_code == 202
    assert len(response.json()["jobs"]) == 2


@pytest.mark.django_db
def test_an_unknown_template_is_a_field_error(api_client, brief, template, backend):
    scene = brief.scenes.first()
    response = api_client.post(f"/api/v1/scenes/{scene.uuid}/renders/", {"template": "nope"}, format="json")
    assert response.status_code == 400
    assert "template" in response.json()
    assert RenderJob.objects.count() == 0


@pytest.mark.django_db
def test_a_render_without_templates_is_a_409_with_a_reason(api_client, brief, backend):
    response = api_client.post(f"/api/v1/scenes/{brief.scenes.first().uuid}/renders/", {}, format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "render_refused"


@pytest.mark.django_db
def test_another_teams_brief_is_invisible_to_a_writer(writer, brief):
    from briefs.models import Team

    brief.team = Team.objects.create(name="Other")
    brief.save()
    client = APIClient()
    client.force_authenticate(writer)
    assert client.get(f"/api/v1/briefs/{brief.uuid}/").status_code == 404
    assert client.post(f"/api/v1/scenes/{brief.scenes.first().uuid}/renders/", {}).status_code == 404


@pytest.mark.django_db
def test_the_openapi_schema_lists_the_render_routes(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "/api/v1/scenes/{scene_uuid}/renders/" in paths
    assert "/api/v1/artifacts/{artifact_uuid}/download/" in paths
    assert client.get("/api/docs/").status_code == 200


@pytest.mark.django_db
def test_backends_are_listed_for_staff_only_without_secrets(api_client, backend, writer):
    body = api_client.get("/api/v1/backends/").json()
    [row] = body["results"]
    assert row["name"] == "Storyboard preview"
    assert row["state"] == "unknown"
    assert row["in_flight"] == 0
    client = APIClient()
    client.force_authenticate(writer)
    assert client.get("/api/v1/backends/").status_code == 403


@pytest.mark.django_db(transaction=True)
def test_staff_drain_and_undrain_a_backend(api_client, backend):
    drained = api_client.post(
        f"/api/v1/backends/{backend.uuid}/drain/", {"drain": True}, format="json"
    ).json()
    assert (drained["draining"], drained["state"]) == (True, "draining")
    again = api_client.post(f"/api/v1/backends/{backend.uuid}/drain/", {"drain": False}, format="json").json()
    assert again["draining"] is False


@pytest.mark.django_db(transaction=True)
def test_a_batch_names_a_policy_preset_and_overrides_one_knob(api_client, brief, template, backend):
    from generation.models import QueuePolicy

    QueuePolicy.objects.get_or_create(name="Fast iteration", defaults={"max_wait_s": 120, "retry_budget": 0})
    response = api_client.post(
        f"/api/v1/briefs/{brief.uuid}/renders/",
        {"policy": "Fast iteration", "policy_overrides": {"retry_budget": 2}},
        format="json",
    )
    assert response.status_code == 202, response.json()
    policy = response.json()["jobs"][0]["policy"]
    assert (policy["max_wait_s"], policy["retry_budget"]) == (120, 2)
    assert "Fast iteration" in policy["name"]
    assert [p["name"] for p in api_client.get("/api/v1/queue-policies/").json()["results"]] == [
        "Fast iteration"
    ]


@pytest.mark.django_db
def test_a_policy_override_out_of_range_is_a_field_error(api_client, brief, template, backend):
    response = api_client.post(
        f"/api/v1/briefs/{brief.uuid}/renders/", {"policy_overrides": {"poll_interval_s": 0}}, format="json"
    )
    assert response.status_code == 400
    assert "poll_interval_s" in response.json()["policy_overrides"]

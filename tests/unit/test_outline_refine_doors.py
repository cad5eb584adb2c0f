"""The doors of a refine: the editor's form (303 back, or JSON 202/400/409), the status JSON the page
polls, the partial the editor includes, and the REST API with its OpenAPI schema."""

import pytest
from django.contrib.auth import get_user_model
from django.template.loader import render_to_string
from django.test import RequestFactory
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from briefs import services
from briefs.models import Brief, OutlineKind, Team
from briefs.outline import BuiltinExpander, OutlineError, OutlineErrorCode
from briefs.outline_views import refine_context

JSON = {"HTTP_ACCEPT": "application/json"}


class Refusing:
    name = "test model"

    def refine(self, *args: object, **kwargs: object) -> object:
        raise OutlineError(OutlineErrorCode.TIMEOUT, "the model did not answer within 60 s")


@pytest.fixture
def outsider(db):
    user = get_user_model().objects.create_user("outsider", password="a-long-password-3")
    Team.objects.create(name="Elsewhere").members.add(user)
    return user


def refines(brief: Brief):
    return brief.outline_requests.filter(kind=OutlineKind.REFINE)


@pytest.mark.django_db
def test_the_editor_form_starts_a_refine_and_goes_back_to_the_editor(brief, staff_user, client):
    client.force_login(staff_user)
    deck = brief.scenes.get(position=2)

    response = client.post(
        f"/briefs/{brief.uuid}/refine/", {"note": "dawn, handheld", "scene": str(deck.uuid)}
    )

    assert response.status_code == 303
    assert response["Location"] == f"/briefs/{brief.uuid}/#refine"
    request = refines(brief).get()
    assert (request.note, request.scene, request.state) == ("dawn, handheld", deck, "queued")


@pytest.mark.django_db
def test_with_json_it_answers_202_with_where_to_ask_and_the_status_says_what_changed(
    brief, staff_user, client
):
    client.force_login(staff_user)

    response = client.post(f"/briefs/{brief.uuid}/refine/", {"note": "scene 2 at dawn", "scene": ""}, **JSON)

    assert response.status_code == 202
    request = refines(brief).get()
    assert response.json() == {
        "outline": {"uuid": str(request.uuid), "status_url": f"/outlines/{request.uuid}/"}
    }
    assert client.get(f"/outlines/{request.uuid}/").json() == {
        "state": "queued",
        "label": "Waiting for a worker",
        "expander": "",
        "error": "",
        "kind": "refine",
        "scene": None,
        "note": "scene 2 at dawn",
        "summary": [],
    }
    services.outline_run(request_id=request.pk, expander=BuiltinExpander())
    status = client.get(f"/outlines/{request.uuid}/").json()
    assert (status["state"], status["expander"]) == ("succeeded", "built-in")
    assert status["summary"] == [
        "Scene 2: time of day none → dawn; lighting 'soft pale dawn light'; prompt rewritten."
    ]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"note": "  "}, "note", "Write a note first: what to change"),
        ({"note": "n" * 1001}, "note", "The note is 1001 characters long; at most 1000."),
        (
            {"note": "night", "scene": "5b0c6e0e-0000-4000-8000-000000000000"},
            "scene",
            "Choose a scene of this brief",
        ),
        ({"note": "scene 7 at night"}, "note", "The note names scene 7, but the brief has 2 scenes."),
    ],
)
def test_a_bad_note_is_400_json_naming_the_field_and_starts_nothing(
    brief, staff_user, client, data, field, message
):
    client.force_login(staff_user)
    response = client.post(f"/briefs/{brief.uuid}/refine/", data, **JSON)
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert list(errors) == [field] and message in errors[field][0]
    assert not refines(brief).exists()


@pytest.mark.django_db
def test_while_another_request_runs_it_is_409(brief, staff_user, client):
    client.force_login(staff_user)
    assert client.post(f"/briefs/{brief.uuid}/refine/", {"note": "night"}, **JSON).status_code == 202
    response = client.post(f"/briefs/{brief.uuid}/refine/", {"note": "dawn"}, **JSON)
    assert response.status_code == 409
    assert "still being written" in response.json()["errors"]["__all__"][0]


@pytest.mark.django_db
def test_a_refused_note_comes_back_in_the_partial_with_its_error(brief, staff_user, client):
    client.force_login(staff_user)
    response = client.post(f"/briefs/{brief.uuid}/refine/", {"note": "scene 7 at night"})
    assert response.status_code == 303
    request = RequestFactory().get(f"/briefs/{brief.uuid}/")
    request.session = client.session
    request.user = staff_user

    page = render_to_string(
        "briefs/_refine.html", {"brief": brief, **refine_context(request, brief)}, request
    )

    assert "The note names scene 7, but the brief has 2 scenes." in page
    assert ">scene 7 at night</textarea>" in page
    # Shown once: the next page has a fresh form.
    assert refine_context(request, brief)["refine_form"].is_bound is False


@pytest.mark.django_db
def test_the_partial_shows_the_last_refine_and_what_it_changed(brief, staff_user):
    harbour = brief.scenes.get(position=1)
    request = services.outline_refine_start(brief=brief, user=staff_user, note="rain", scene=harbour)
    services.outline_run(request_id=request.pk, expander=BuiltinExpander())
    web = RequestFactory().get("/")
    web.session = {}

    page = render_to_string("briefs/_refine.html", {"brief": brief, **refine_context(web, brief)}, web)

    assert 'data-testid="refine-status"' in page and 'data-state="succeeded"' in page
    assert "“rain” — scene 1, by the built-in expander (no model endpoint is configured)" in page
    assert "<li>Scene 1: weather none → rain;" in page
    assert f'<option value="{harbour.uuid}">Scene 1: Harbour</option>' in page


@pytest.mark.django_db
def test_another_teams_brief_is_404_and_starts_nothing(brief, outsider, client):
    client.force_login(outsider)
    assert client.post(f"/briefs/{brief.uuid}/refine/", {"note": "night"}).status_code == 404
    assert client.post(f"/briefs/{brief.uuid}/refine/", {"note": "night"}, **JSON).status_code == 404
    assert not refines(brief).exists()


# -- the API ---------------------------------------------------------------------------
@pytest.mark.django_db
def test_the_api_starts_a_refine_and_tells_how_it_stands(brief, api_client):
    deck = brief.scenes.get(position=2)

    response = api_client.post(
        f"/api/v1/briefs/{brief.uuid}/refine/", {"note": "closer", "scene": str(deck.uuid)}, format="json"
    )

    assert response.status_code == 202
    body = response.json()
    assert (body["kind"], body["state"], body["scene"], body["note"]) == (
        "refine",
        "queued",
        str(deck.uuid),
        "closer",
    )
    assert body["status_url"] == f"/api/v1/outlines/{body['uuid']}/"
    services.outline_run(request_id=refines(brief).get().pk, expander=BuiltinExpander())
    done = api_client.get(body["status_url"]).json()
    assert done["state"] == "succeeded" and done["summary"][0].startswith("Scene 2: shot none → close-up")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("data", "status", "field", "message"),
    [
        ({"note": ""}, 400, "note", "Write a note first"),
        ({}, 400, "note", "Write a note first"),
        ({"note": "n" * 1001}, 400, "note", "longer than 1000 characters"),
        (
            {"note": "night", "scene": "5b0c6e0e-0000-4000-8000-000000000000"},
            400,
            "scene",
            "Not a scene of this brief",
        ),
    ],
)
def test_the_api_refuses_bad_input_by_field(brief, api_client, data, status, field, message):
    response = api_client.post(f"/api/v1/briefs/{brief.uuid}/refine/", data, format="json")
    assert response.status_code == status
    assert message in response.json()[field][0]
    assert not refines(brief).exists()


@pytest.mark.django_db
def test_the_api_is_409_while_another_request_runs(brief, api_client):
    assert (
        api_client.post(f"/api/v1/briefs/{brief.uuid}/refine/", {"note": "night"}, format="json").status_code
        == 202
    )
    response = api_client.post(f"/api/v1/briefs/{brief.uuid}/refine/", {"note": "dawn"}, format="json")
    assert response.status_code == 409 and "still being written" in response.json()["non_field_errors"][0]


@pytest.mark.django_db
def test_the_api_answers_404_for_another_teams_brief(brief, outsider):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=outsider).key}")
    assert (
        client.post(f"/api/v1/briefs/{brief.uuid}/refine/", {"note": "night"}, format="json").status_code
        == 404
    )
    assert not refines(brief).exists()


@pytest.mark.django_db
def test_the_openapi_schema_describes_the_refine(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    operation = schema["paths"]["/api/v1/briefs/{brief_uuid}/refine/"]["post"]
    assert set(operation["responses"]) == {"202", "400", "409"}
    body = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert set(schema["components"]["schemas"][body]["properties"]) == {"note", "scene"}
    assert "/api/v1/outlines/{request_uuid}/" in schema["paths"]


@pytest.mark.django_db
def test_the_editor_still_tells_the_idea_s_expansion_apart_from_a_failed_refine(staff_user, client):
    brief, request = services.brief_from_idea(
        user=staff_user, idea="Ada, a keeper, lights the lamp in a storm."
    )
    services.outline_run(request_id=request.pk, expander=BuiltinExpander())
    refine = services.outline_refine_start(brief=brief, user=staff_user, note="night")
    services.outline_run(request_id=refine.pk, expander=Refusing())
    client.force_login(staff_user)

    page = client.get(f"/briefs/{brief.uuid}/").content.decode()

    assert "Outline written from the idea by the built-in expander" in page
    assert "The outline could not be written" not in page and "Try again" not in page

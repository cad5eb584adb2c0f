"""Every brief belongs to a team: new briefs go to the user's current team, people see their
teams' briefs only, and only staff may loosen a queue policy past its preset."""

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from briefs import services
from briefs.demo import DEMO_USERNAME, demo_seed
from briefs.models import Brief, Team, UserPreference
from briefs.selectors import briefs_visible_to, team_preferred_for
from generation.models import QueuePolicy, RenderJob

pytestmark = pytest.mark.django_db


@pytest.fixture
def harbour(writer):
    team = Team.objects.create(name="Harbour films")
    team.members.add(writer)
    return team


@pytest.fixture
def writer_api(writer):
    client = APIClient()
    client.force_authenticate(writer)
    return client


# -- the current team ---------------------------------------------------------------
def test_a_user_in_no_team_gets_a_personal_team_once(writer):
    first = services.team_current_for(user=writer)
    assert first.personal_for == writer
    assert first.name == "writer (personal)"
    assert list(first.members.all()) == [writer]
    assert services.team_current_for(user=writer) == first
    assert Team.objects.count() == 1


def test_a_personal_team_name_never_takes_an_existing_teams_name(writer):
    Team.objects.create(name="writer (personal)")
    assert services.team_personal_for(user=writer).name == "writer (personal) #2"


def test_the_current_team_is_the_users_only_team(writer, harbour):
    assert services.team_current_for(user=writer) == harbour
    assert not Team.objects.filter(personal_for=writer).exists()


def test_shared_teams_come_before_the_personal_one(writer):
    personal = services.team_personal_for(user=writer)
    shared = Team.objects.create(name="Zebra crossing")
    shared.members.add(writer)
    assert team_preferred_for(writer) == shared
    assert personal.members.filter(pk=writer.pk).exists()


def test_a_chosen_team_is_the_current_one_until_the_user_leaves_it(writer, harbour):
    later = Team.objects.create(name="Lighthouse")
    later.members.add(writer)
    services.team_set_current(user=writer, team=later)
    assert services.team_current_for(user=writer) == later
    later.members.remove(writer)
    assert services.team_current_for(user=writer) == harbour


def test_a_user_cannot_choose_a_team_they_are_not_in(writer):
    with pytest.raises(services.TeamRefused):
        services.team_set_current(user=writer, team=Team.objects.create(name="Elsewhere"))
    assert not UserPreference.objects.exists()


def test_a_brief_made_without_a_user_goes_to_the_studio_team():
    brief = services.brief_create(user=None, title="From a script")
    assert brief.team.name == services.STUDIO_TEAM_NAME


def test_the_service_refuses_a_team_a_non_staff_user_is_not_in(writer):
    with pytest.raises(services.TeamRefused):
        services.brief_create(user=writer, title="X", team=Team.objects.create(name="Elsewhere"))
    assert not Brief.objects.exists()


# -- who sees what ---------------------------------------------------------------------
def test_people_see_their_teams_briefs_and_staff_see_all(writer, harbour, staff_user):
    ours = services.brief_create(user=writer, title="Ours")
    theirs = services.brief_create(user=staff_user, title="Theirs")
    assert list(briefs_visible_to(writer)) == [ours]
    assert set(briefs_visible_to(staff_user)) == {ours, theirs}
    harbour.members.add(staff_user)  # a second member: still one row per brief
    other = get_user_model().objects.create_user("other")
    assert list(briefs_visible_to(other)) == []


def test_an_inactive_users_teams_show_nothing(writer, harbour):
    services.brief_create(user=writer, title="Ours")
    writer.is_active = False
    assert list(briefs_visible_to(writer)) == []


# -- the doors create in the current team ------------------------------------------------
def test_the_api_creates_a_brief_in_the_current_team(writer_api, harbour):
    response = writer_api.post("/api/v1/briefs/", {"title": "Glass city"}, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["team"] == str(harbour.uuid)
    assert Brief.objects.get().team == harbour


def test_the_api_creates_a_brief_in_a_team_the_caller_names(writer_api, writer, harbour):
    second = Team.objects.create(name="Lighthouse")
    second.members.add(writer)
    response = writer_api.post(
        "/api/v1/briefs/", {"title": "Glass city", "team": str(second.uuid)}, format="json"
    )
    assert response.status_code == 201, response.json()
    assert Brief.objects.get().team == second


@pytest.mark.parametrize("which", ["another team", "no such team", "not a uuid"])
def test_the_api_refuses_a_team_that_is_not_the_callers_with_a_field_error(writer_api, harbour, which):
    value = {
        "another team": lambda: str(Team.objects.create(name="Elsewhere").uuid),
        "no such team": lambda: "6d8f6f0c-3a1e-4f4e-9a57-0c8f8ad1c0de",
        "not a uuid": lambda: "harbour",
    }[which]()
    response = writer_api.post("/api/v1/briefs/", {"title": "Glass city", "team": value}, format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["team"]
    assert not Brief.objects.exists()


def test_another_team_and_an_unknown_team_get_the_same_answer(writer_api):
    elsewhere = Team.objects.create(name="Elsewhere")
    answers = [
        writer_api.post("/api/v1/briefs/", {"title": "X", "team": str(uuid)}, format="json").json()["team"]
        for uuid in (elsewhere.uuid, "6d8f6f0c-3a1e-4f4e-9a57-0c8f8ad1c0de")
    ]
    assert answers[0] == [f"Not one of your teams: uuid={elsewhere.uuid}."]
    assert answers[1] == ["Not one of your teams: uuid=6d8f6f0c-3a1e-4f4e-9a57-0c8f8ad1c0de."]


def test_the_editor_creates_a_brief_in_the_current_team_and_says_which(client, writer, harbour):
    client.force_login(writer)
    assert "New briefs go to <strong>Harbour films</strong>." in client.get("/").content.decode()
    response = client.post("/", {"title": "Lanterns"})
    assert response.status_code == 302
    assert Brief.objects.get().team == harbour


def test_the_editor_lists_only_the_users_teams_briefs(client, writer, harbour, staff_user):
    services.brief_create(user=writer, title="Ours")
    services.brief_create(user=staff_user, title="Staff only")
    client.force_login(writer)
    page = client.get("/").content.decode()
    assert "Ours" in page and "Staff only" not in page


def test_the_admin_creates_a_brief_through_the_service_in_the_current_team(client, django_user_model):
    ops = django_user_model.objects.create_superuser("ops")
    client.force_login(ops)
    form = client.get("/admin/briefs/brief/add/").content.decode()
    assert "your current team" in form
    response = client.post(
        "/admin/briefs/brief/add/",
        {
            "title": "From the admin",
            "aspect_ratio": "16:9",
            "characters-TOTAL_FORMS": "0",
            "characters-INITIAL_FORMS": "0",
            "characters-MIN_NUM_FORMS": "0",
            "characters-MAX_NUM_FORMS": "1000",
            "scenes-TOTAL_FORMS": "1",
            "scenes-INITIAL_FORMS": "0",
            "scenes-MIN_NUM_FORMS": "0",
            "scenes-MAX_NUM_FORMS": "1000",
            "scenes-0-position": "1",
            "scenes-0-title": "Opening",
            "scenes-0-prompt": "a wide shot",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    brief = Brief.objects.get()
    assert brief.team == Team.objects.get(personal_for=ops)
    assert brief.created_by == ops
    assert list(brief.scenes.values_list("title", flat=True)) == ["Opening"]


def test_the_admin_creates_a_brief_in_the_team_staff_pick(client, django_user_model, harbour):
    ops = django_user_model.objects.create_superuser("ops")
    client.force_login(ops)
    response = client.post(
        "/admin/briefs/brief/add/",
        {
            "title": "For the harbour",
            "team": str(harbour.pk),
            "aspect_ratio": "16:9",
            "characters-TOTAL_FORMS": "0",
            "characters-INITIAL_FORMS": "0",
            "characters-MIN_NUM_FORMS": "0",
            "characters-MAX_NUM_FORMS": "1000",
            "scenes-TOTAL_FORMS": "0",
            "scenes-INITIAL_FORMS": "0",
            "scenes-MIN_NUM_FORMS": "0",
            "scenes-MAX_NUM_FORMS": "1000",
        },
    )
    assert response.status_code == 302
    assert Brief.objects.get().team == harbour


def test_the_demo_login_is_staff_in_the_demo_team_with_the_demo_brief(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    login = demo_seed()
    again = demo_seed()
    assert again == login
    user = get_user_model().objects.get(username=DEMO_USERNAME)
    demo_team = Team.objects.get(name="Demo studio")
    assert user.is_staff and demo_team.members.filter(pk=user.pk).exists()
    assert Brief.objects.get(uuid=login.brief_uuid).team == demo_team
    assert services.team_current_for(user=user) == demo_team


# -- queue policy bounds ---------------------------------------------------------------
@pytest.fixture
def writers_scene(writer, harbour):
    return services.brief_create(
        user=writer, title="Ours", scenes=[{"title": "S", "prompt": "p"}]
    ).scenes.get()


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"max_wait_s": 7 * 24 * 3600}, "max_wait_s"),
        ({"retry_budget": 10}, "retry_budget"),
        ({"post_execution_timeout_s": 3600}, "post_execution_timeout_s"),
        ({"poll_interval_s": 0.05}, "poll_interval_s"),
        ({"max_poll_attempts": 0}, "max_poll_attempts"),
        ({"max_poll_attempts": 500}, "max_poll_attempts"),
    ],
)
def test_a_writer_cannot_loosen_a_preset_and_the_400_names_the_knob(
    writer_api, writers_scene, template, backend, overrides, field
):
    QueuePolicy.objects.create(
        name="Bounded",
        max_wait_s=600,
        poll_interval_s=2,
        max_poll_attempts=100,
        post_execution_timeout_s=30,
        retry_budget=1,
    )
    response = writer_api.post(
        f"/api/v1/scenes/{writers_scene.uuid}/renders/",
        {"policy": "Bounded", "policy_overrides": overrides},
        format="json",
    )
    assert response.status_code == 400
    assert list(response.json()["policy_overrides"]) == [field]
    assert "Bounded" in response.json()["policy_overrides"][field][0]
    assert not RenderJob.objects.exists()


def test_a_writer_may_tighten_the_default_policy(writer_api, writers_scene, template, backend):
    response = writer_api.post(
        f"/api/v1/briefs/{writers_scene.brief.uuid}/renders/",
        {"policy_overrides": {"max_wait_s": 60, "retry_budget": 0, "poll_interval_s": 5}},
        format="json",
    )
    assert response.status_code == 202, response.json()
    policy = response.json()["jobs"][0]["policy"]
    assert (policy["max_wait_s"], policy["retry_budget"], policy["poll_interval_s"]) == (60, 0, 5)


def test_a_writer_cannot_loosen_a_whole_brief_render_either(writer_api, writers_scene, template, backend):
    response = writer_api.post(
        f"/api/v1/briefs/{writers_scene.brief.uuid}/renders/",
        {"policy_overrides": {"retry_budget": 10}},
        format="json",
    )
    assert response.status_code == 400
    assert "environment defaults" in response.json()["policy_overrides"]["retry_budget"][0]


def test_staff_may_loosen_a_policy(api_client, brief, template, backend):
    response = api_client.post(
        f"/api/v1/scenes/{brief.scenes.first().uuid}/renders/",
        {"policy_overrides": {"max_wait_s": 7 * 24 * 3600, "retry_budget": 10}},
        format="json",
    )
    assert response.status_code == 202, response.json()
    assert response.json()["policy"]["retry_budget"] == 10

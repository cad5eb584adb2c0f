"""The brief list (search, team filter, progress, last activity, thumbnails, new briefs) and teams in
the editor (the switcher, invitations made in the admin and answered on the list)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from briefs import services
from briefs.models import Brief, InvitationState, OutlineRequest, Team, TeamInvitation, UserPreference
from generation import services as render_services
from generation.models import Artifact, Attempt, AttemptState, JobState, RenderJob
from generation.progress import Progress
from tests.artifacts import png_bytes, stored_png

pytestmark = pytest.mark.django_db


def finish(job: RenderJob, backend: Any, *, state: str = JobState.SUCCEEDED) -> Artifact | None:
    """End a queued job as a worker would: an attempt, and for a success its stored frame."""
    attempt = Attempt.objects.create(
        job=job, number=1, backend=backend, state=AttemptState.SUCCEEDED, policy=job.policy
    )
    artifact = None
    if state == JobState.SUCCEEDED:
        artifact = stored_png(job, attempt)
        moved = render_services.job_transition(job.pk, from_states={JobState.QUEUED}, to_state=state)
    else:
        moved = render_services.job_transition(
            job.pk, from_states={JobState.QUEUED}, to_state=state, error_code="execution_failed"
        )
    assert moved
    return artifact


@pytest.fixture
def harbour(writer):
    team = Team.objects.create(name="Harbour films")
    team.members.add(writer)
    return team


@pytest.fixture
def lighthouse(writer):
    team = Team.objects.create(name="Lighthouse")
    team.members.add(writer)
    return team


@pytest.fixture
def signed_in(client, writer):
    client.force_login(writer)
    return client


def cards(page: str) -> list[str]:
    """The titles of the brief cards, in order."""
    return re.findall(r'data-testid="brief-card".*?<h2><a href="[^"]+">([^<]+)</a>', page, re.S)


def card(page: str, title: str) -> str:
    for chunk in page.split('data-testid="brief-card"')[1:]:
        if f">{title}</a>" in chunk:
            return chunk.split("</article>")[0]
    raise AssertionError(f"no card for {title}")


# -- search and the team filter -----------------------------------------------------
def test_search_finds_title_idea_and_logline_case_insensitively(signed_in, writer, harbour):
    services.brief_create(user=writer, title="Night ferry")
    services.brief_create(user=writer, title="Keeper", idea="A lighthouse keeper's last NIGHT.")
    services.brief_create(user=writer, title="Rooftops", logline="A thief runs at night over Lisbon.")
    services.brief_create(user=writer, title="Harvest", idea="Wheat, sun, a long afternoon.")

    page = signed_in.get("/", {"q": "night"}).content.decode()

    assert sorted(cards(page)) == ["Keeper", "Night ferry", "Rooftops"]
    assert 'value="night"' in page
    assert sorted(cards(signed_in.get("/", {"q": "LISBON"}).content.decode())) == ["Rooftops"]


def test_a_search_without_results_says_so_and_keeps_the_term(signed_in, writer, harbour):
    services.brief_create(user=writer, title="Night ferry")
    page = signed_in.get("/", {"q": "zeppelin"}).content.decode()
    assert cards(page) == []
    assert "No briefs match “zeppelin”." in page
    assert re.search(r'<input type="search" name="q" id="brief-search-q" value="zeppelin"', page)


def test_the_team_filter_lists_one_team_and_counts_each(signed_in, writer, harbour, lighthouse):
    services.brief_create(user=writer, title="Night ferry", team=harbour)
    services.brief_create(user=writer, title="Fog horn", team=harbour)
    services.brief_create(user=writer, title="Beam", team=lighthouse)
    services.team_set_current(user=writer, team=lighthouse)

    page = signed_in.get("/").content.decode()
    assert sorted(cards(page)) == ["Beam", "Fog horn", "Night ferry"]
    chips = re.findall(r'data-testid="team-chip" data-team="([^"]+)">([^<]+) <span class="count">(\d+)', page)
    assert chips == [(str(harbour.uuid), "Harbour films", "2"), (str(lighthouse.uuid), "Lighthouse", "1")]
    assert re.search(r'All teams <span class="count">3</span>', page)
    # The current team is marked on its chip, and the form says where new briefs go.
    assert re.search(
        rf'data-team="{lighthouse.uuid}">Lighthouse <span class="count">1</span> <span class="current', page
    )
    assert "New briefs go to <strong>Lighthouse</strong>." in page

    page = signed_in.get("/", {"team": str(harbour.uuid)}).content.decode()
    assert sorted(cards(page)) == ["Fog horn", "Night ferry"]
    # The counts follow the search.
    page = signed_in.get("/", {"team": str(harbour.uuid), "q": "fog"}).content.decode()
    assert cards(page) == ["Fog horn"]
    assert re.search(r'All teams <span class="count">1</span>', page)


def test_a_team_filter_for_another_team_answers_404(signed_in, writer, harbour):
    elsewhere = Team.objects.create(name="Elsewhere")
    services.brief_create(user=None, title="Theirs", team=elsewhere)
    assert signed_in.get("/", {"team": str(elsewhere.uuid)}).status_code == 404
    assert signed_in.get("/", {"team": "not-a-uuid"}).status_code == 404
    assert "Theirs" not in signed_in.get("/").content.decode()


def test_staff_may_filter_by_any_team(client, staff_user):
    elsewhere = Team.objects.create(name="Elsewhere")
    services.brief_create(user=None, title="Theirs", team=elsewhere)
    services.brief_create(user=None, title="Studio's")
    client.force_login(staff_user)
    assert cards(client.get("/", {"team": str(elsewhere.uuid)}).content.decode()) == ["Theirs"]


def test_a_long_list_comes_in_pages_that_keep_the_search(signed_in, writer, harbour):
    for n in range(26):
        services.brief_create(user=writer, title=f"Fog {n:02}")
    services.brief_create(user=writer, title="Sun")
    first = signed_in.get("/", {"q": "fog"}).content.decode()
    second = signed_in.get("/", {"q": "fog", "page": "2"}).content.decode()
    assert len(cards(first)) == 24 and len(cards(second)) == 2
    assert sorted(cards(first) + cards(second)) == [f"Fog {n:02}" for n in range(26)]
    assert 'href="?q=fog&amp;page=2">Older</a>' in first


# -- progress, last activity, thumbnails ---------------------------------------------
def test_progress_and_thumbnails_come_from_the_newest_jobs(signed_in, writer, harbour, template, backend):
    brief = services.brief_create(
        user=writer,
        title="Night ferry",
        scenes=[{"title": f"Shot {n}", "prompt": f"frame {n}"} for n in range(1, 6)],
    )
    scenes = list(brief.scenes.order_by("position"))
    frames = {}
    for scene in scenes[:4]:
        frames[scene.position] = finish(render_services.render_job_submit(scene=scene, user=writer), backend)
    # Scene 2 is retaken and the retake fails: still rendered (a take stands), its last good frame stays.
    finish(
        render_services.render_job_submit(scene=scenes[1], user=writer, again=True),
        backend,
        state=JobState.FAILED,
    )
    # Scene 4's retake is still waiting: rendered all the same, its earlier frame shown.
    render_services.render_job_submit(scene=scenes[3], user=writer, again=True)
    # Scene 1 has its final picked.
    services.scene_pick_final(scene=scenes[0], job=RenderJob.objects.get(pk=frames[1].job_id))

    chunk = card(signed_in.get("/").content.decode(), "Night ferry")

    assert 'data-scenes="5" data-rendered="4">4 of 5 rendered, 1 with a final<' in chunk
    assert "5 scenes" in chunk
    shown = re.findall(
        r'<img src="/artifacts/([0-9a-f-]+)/" loading="lazy" decoding="async" alt="([^"]+)"', chunk
    )
    assert shown == [(str(frames[n].uuid), f"Scene {n}: Shot {n}") for n in (1, 2, 3, 4)]
    # Each thumbnail is served to this user.
    assert signed_in.get(f"/artifacts/{frames[1].uuid}/").status_code == 200


def test_the_strip_holds_six_frames_in_story_order(signed_in, writer, harbour, template, backend):
    brief = services.brief_create(
        user=writer,
        title="Long one",
        scenes=[{"title": f"Shot {n}", "prompt": f"frame {n}"} for n in range(1, 9)],
    )
    _, jobs = render_services.render_brief_submit(brief=brief, user=writer)
    for job in reversed(jobs):  # finished last to first: the strip still reads in story order
        finish(job, backend)
    chunk = card(signed_in.get("/").content.decode(), "Long one")
    alts = re.findall(r'alt="Scene (\d+):', chunk)
    assert alts == ["1", "2", "3", "4", "5", "6"]
    assert "8 of 8 rendered" in chunk


def test_the_progress_figure_has_room_for_finals():
    assert Progress(scenes=5, rendered=3).label == "3 of 5 rendered"
    assert Progress(scenes=5, rendered=3, finals=2).label == "3 of 5 rendered, 2 with a final"
    assert Progress(scenes=0, rendered=0).label == "No scenes yet"


def test_last_activity_is_the_newest_of_the_brief_and_its_jobs(signed_in, writer, harbour, template, backend):
    brief = services.brief_create(user=writer, title="Night ferry", scenes=[{"title": "A", "prompt": "a"}])
    long_ago = timezone.now() - timedelta(days=3)
    Brief.objects.filter(pk=brief.pk).update(updated_at=long_ago)
    chunk = card(signed_in.get("/").content.decode(), "Night ferry")
    assert f'title="{long_ago.isoformat()}"' in chunk and "3\xa0days ago" in chunk

    job = render_services.render_job_submit(scene=brief.scenes.get(), user=writer)
    Brief.objects.filter(pk=brief.pk).update(updated_at=long_ago)  # the submit touched nothing else
    finish(job, backend)
    job.refresh_from_db()
    chunk = card(signed_in.get("/").content.decode(), "Night ferry")
    assert f'title="{job.updated_at.isoformat()}"' in chunk
    assert "0\xa0minutes ago" in chunk


def test_a_brief_whose_outline_is_being_written_says_so(signed_in, writer, harbour):
    brief, request = services.brief_from_idea(user=writer, idea="A keeper's last night.", title="Keeper")
    assert "Waiting for a worker" in card(signed_in.get("/").content.decode(), brief.title)
    OutlineRequest.objects.filter(pk=request.pk).update(state="failed", error="timeout")
    assert 'data-testid="brief-outline"' not in card(signed_in.get("/").content.decode(), brief.title)


def test_the_list_costs_a_bounded_number_of_queries(
    client, writer, harbour, template, backend, django_assert_max_num_queries
):
    def add(n: int) -> None:
        brief = services.brief_create(
            user=writer,
            title=f"Brief {n}",
            scenes=[{"title": f"Shot {m}", "prompt": f"frame {m}"} for m in range(1, 6)],
        )
        _, jobs = render_services.render_brief_submit(brief=brief, user=writer)
        for job in jobs[: n % 6]:
            finish(job, backend)

    client.force_login(writer)
    add(1)
    with CaptureQueriesContext(connection) as one_brief:
        client.get("/")
    for n in range(2, 21):
        add(n)
    OutlineRequest.objects.create(brief=Brief.objects.get(title="Brief 3"), idea="x")
    with django_assert_max_num_queries(15) as twenty_briefs:
        page = client.get("/").content.decode()
    # The same queries for 20 briefs of 5 scenes as for one: nothing is asked per brief or scene.
    assert len(twenty_briefs.captured_queries) == len(one_brief.captured_queries)
    assert page.count('data-testid="brief-card"') == 20
    assert page.count("<img src=") == sum(n % 6 for n in range(1, 21))
    assert 'data-rendered="5">5 of 5 rendered' in card(page, "Brief 5")
    assert "Waiting for a worker" in card(page, "Brief 3")


# -- the team switcher -----------------------------------------------------------------
def test_the_switcher_shows_only_with_more_than_one_team(signed_in, writer, harbour):
    assert 'data-testid="team-switcher"' not in signed_in.get("/").content.decode()
    Team.objects.create(name="Lighthouse").members.add(writer)
    page = signed_in.get("/").content.decode()
    assert 'data-testid="team-switcher"' in page
    assert re.search(rf'<option value="{harbour.uuid}" selected>Harbour films</option>', page)


def test_switching_team_sets_where_new_briefs_go_and_returns_to_the_page(
    signed_in, writer, harbour, lighthouse
):
    brief = services.brief_create(user=writer, title="Night ferry", team=harbour)
    back = f"/briefs/{brief.uuid}/"
    response = signed_in.post("/teams/current/", {"team": str(lighthouse.uuid), "next": back})
    assert (response.status_code, response["Location"]) == (302, back)
    assert UserPreference.objects.get(user=writer).current_team == lighthouse
    page = signed_in.get("/").content.decode()
    assert "New briefs go to <strong>Lighthouse</strong>." in page
    assert re.search(rf'<option value="{lighthouse.uuid}" selected>Lighthouse</option>', page)
    signed_in.post("/", {"title": "Lanterns"})
    assert Brief.objects.get(title="Lanterns").team == lighthouse


def test_the_switcher_on_a_refused_form_returns_to_the_list(signed_in, harbour, lighthouse):
    page = signed_in.post("/briefs/from-idea/", {"idea": " "}).content.decode()
    assert re.search(
        r'data-testid="team-switcher">\s*<input type="hidden" name="csrfmiddlewaretoken" value="[^"]+">\s*<input type="hidden" name="next" value="/">',
        page,
    )
    page = signed_in.get("/", {"q": "fog"}).content.decode()
    assert '<input type="hidden" name="next" value="/?q=fog">' in page


@pytest.mark.parametrize("unsafe", ["https://evil.example/", "//evil.example/x", "javascript:alert(1)", ""])
def test_an_unsafe_next_goes_to_the_list(signed_in, lighthouse, harbour, unsafe):
    response = signed_in.post("/teams/current/", {"team": str(lighthouse.uuid), "next": unsafe})
    assert (response.status_code, response["Location"]) == (302, "/")


def test_switching_to_a_team_one_is_not_in_answers_404(signed_in, writer, harbour, lighthouse):
    services.team_set_current(user=writer, team=harbour)
    elsewhere = Team.objects.create(name="Elsewhere")
    assert signed_in.post("/teams/current/", {"team": str(elsewhere.uuid)}).status_code == 404
    assert signed_in.post("/teams/current/", {"team": "nope"}).status_code == 404
    assert signed_in.post("/teams/current/", {}).status_code == 400
    assert UserPreference.objects.get(user=writer).current_team == harbour


# -- invitations -------------------------------------------------------------------------
@pytest.fixture
def admin_client(client, django_user_model):
    ops = django_user_model.objects.create_superuser("ops", email="ops@example.org")
    client.force_login(ops)
    return client


def team_form(team: Team, **values: Any) -> dict[str, Any]:
    data = {
        "name": team.name,
        "personal_for": "",
        "members": [str(pk) for pk in team.members.values_list("pk", flat=True)] if team.pk else [],
        "invite": "",
        "invitations-TOTAL_FORMS": "0",
        "invitations-INITIAL_FORMS": "0",
        "invitations-MIN_NUM_FORMS": "0",
        "invitations-MAX_NUM_FORMS": "1000",
    }
    data.update(values)
    return data


@pytest.mark.parametrize("name", ["Writer", "writer@example.org"])
def test_staff_invite_a_user_by_username_or_email(admin_client, django_user_model, name):
    invited = django_user_model.objects.create_user("writer", email="Writer@Example.org")
    team = Team.objects.create(name="Harbour films")
    response = admin_client.post(f"/admin/briefs/team/{team.pk}/change/", team_form(team, invite=name))
    assert response.status_code == 302, response.content.decode()
    invitation = TeamInvitation.objects.get()
    assert (invitation.team, invitation.user, invitation.state) == (team, invited, InvitationState.PENDING)
    assert invitation.invited_by.username == "ops"
    assert not team.members.filter(pk=invited.pk).exists()
    page = admin_client.get(f"/admin/briefs/team/{team.pk}/change/").content.decode()
    assert "Waiting for an answer" in page


def test_staff_inviting_a_new_team_with_its_first_invitee(admin_client, django_user_model):
    invited = django_user_model.objects.create_user("writer")
    response = admin_client.post(
        "/admin/briefs/team/add/", team_form(Team(name="Fresh"), members=[], invite="writer")
    )
    assert response.status_code == 302, response.content.decode()
    assert TeamInvitation.objects.get().user == invited


@pytest.mark.parametrize(
    ("invite", "error"),
    [
        ("nobody", "No user has the username or email “nobody”."),
        ("writer", "writer is already a member of this team."),
        ("twin@example.org", "More than one user has the email “twin@example.org”; give a username."),
    ],
)
def test_staff_see_why_an_invitation_cannot_be_made(admin_client, django_user_model, invite, error):
    writer = django_user_model.objects.create_user("writer")
    django_user_model.objects.create_user("twin1", email="twin@example.org")
    django_user_model.objects.create_user("twin2", email="twin@example.org")
    team = Team.objects.create(name="Harbour films")
    team.members.add(writer)
    response = admin_client.post(
        f"/admin/briefs/team/{team.pk}/change/", team_form(team, invite=invite, name="Renamed")
    )
    assert response.status_code == 200
    assert error in response.content.decode()
    assert not TeamInvitation.objects.exists()
    assert Team.objects.get(pk=team.pk).name == "Harbour films"


def test_a_second_pending_invitation_is_refused_clearly(admin_client, django_user_model):
    invited = django_user_model.objects.create_user("writer")
    team = Team.objects.create(name="Harbour films")
    services.team_invite(team=team, user=invited, by=None)
    response = admin_client.post(f"/admin/briefs/team/{team.pk}/change/", team_form(team, invite="writer"))
    assert "writer already has an invitation to this team waiting for an answer." in response.content.decode()
    with pytest.raises(services.InvitationRefused, match="waiting for an answer"):
        services.team_invite(team=team, user=invited, by=None)
    with pytest.raises(services.InvitationRefused, match="already a member"):
        team.members.add(invited)
        services.team_invite(team=team, user=invited, by=None)
    assert TeamInvitation.objects.count() == 1


def test_staff_see_invitations_by_state_and_withdraw_waiting_ones(admin_client, django_user_model):
    team = Team.objects.create(name="Harbour films")
    waiting = services.team_invite(team=team, user=django_user_model.objects.create_user("a"), by=None)
    answered = services.team_invite(team=team, user=django_user_model.objects.create_user("b"), by=None)
    services.invitation_decline(invitation=answered, user=answered.user)
    page = admin_client.get("/admin/briefs/teaminvitation/", {"state__exact": "pending"}).content.decode()
    assert "/admin/briefs/teaminvitation/" in page and ">a<" in page and ">b<" not in page
    response = admin_client.post(
        "/admin/briefs/teaminvitation/",
        {"action": "withdraw", "_selected_action": [str(waiting.pk), str(answered.pk)]},
        follow=True,
    )
    assert (
        "1 invitation withdrawn. 1 had already been answered and stay as they were."
        in response.content.decode()
    )
    states = dict(TeamInvitation.objects.values_list("pk", "state"))
    assert states == {waiting.pk: "withdrawn", answered.pk: "declined"}


def test_the_invited_user_accepts_on_the_list_and_sees_the_teams_briefs(
    client, writer, harbour, django_user_model
):
    services.brief_create(user=writer, title="Night ferry", team=harbour)
    guest = django_user_model.objects.create_user("guest")
    invitation = services.team_invite(team=harbour, user=guest, by=writer)
    client.force_login(guest)
    page = client.get("/").content.decode()
    assert 'data-testid="invitation"' in page and "Harbour films" in page and "from writer" in page
    assert "Night ferry" not in page

    response = client.post(f"/invitations/{invitation.uuid}/accept/")

    assert response.status_code == 302 and response["Location"] == f"/?team={harbour.uuid}"
    assert harbour.members.filter(pk=guest.pk).exists()
    invitation.refresh_from_db()
    assert invitation.state == InvitationState.ACCEPTED and invitation.responded_at is not None
    page = client.get(response["Location"]).content.decode()
    assert cards(page) == ["Night ferry"] and 'data-testid="invitation"' not in page
    assert "You joined Harbour films" in page


def test_declining_keeps_the_user_out(client, harbour, django_user_model):
    guest = django_user_model.objects.create_user("guest")
    invitation = services.team_invite(team=harbour, user=guest, by=None)
    client.force_login(guest)
    assert client.post(f"/invitations/{invitation.uuid}/decline/").status_code == 302
    invitation.refresh_from_db()
    assert invitation.state == InvitationState.DECLINED
    assert not harbour.members.filter(pk=guest.pk).exists()


def test_an_invitation_answered_once_cannot_be_answered_again(client, harbour, django_user_model):
    guest = django_user_model.objects.create_user("guest")
    invitation = services.team_invite(team=harbour, user=guest, by=None)
    client.force_login(guest)
    client.post(f"/invitations/{invitation.uuid}/decline/")
    response = client.post(f"/invitations/{invitation.uuid}/accept/", follow=True)
    assert "This invitation to Harbour films was already answered: declined." in response.content.decode()
    invitation.refresh_from_db()
    assert invitation.state == InvitationState.DECLINED
    assert not harbour.members.filter(pk=guest.pk).exists()


def test_someone_elses_invitation_answers_404(client, writer, harbour, django_user_model, staff_user):
    guest = django_user_model.objects.create_user("guest")
    invitation = services.team_invite(team=harbour, user=guest, by=None)
    for someone in (writer, staff_user):
        client.force_login(someone)
        assert client.post(f"/invitations/{invitation.uuid}/accept/").status_code == 404
        assert client.post(f"/invitations/{invitation.uuid}/decline/").status_code == 404
    invitation.refresh_from_db()
    assert invitation.state == InvitationState.PENDING


# -- a new brief from an idea, with a reference image ----------------------------------------
IDEA = "A lighthouse keeper's last night before the light is automated."


def test_an_idea_with_a_reference_image_keeps_the_image(signed_in, writer, harbour):
    upload = SimpleUploadedFile("keeper.png", png_bytes((32, 18), (40, 90, 160)), content_type="image/png")
    response = signed_in.post("/briefs/from-idea/", {"idea": IDEA, "reference_image": upload})
    assert response.status_code == 302
    brief = Brief.objects.get()
    assert brief.reference_image.name.startswith("references/")
    assert signed_in.get(f"/briefs/{brief.uuid}/reference-image/").status_code == 200


@pytest.mark.parametrize(
    ("body", "limit", "error"),
    [
        (b"not an image at all", None, "That file cannot be used"),
        (None, 20, "the limit is 0 KB"),
    ],
    ids=["not an image", "too big"],
)
def test_a_bad_reference_image_is_refused_next_to_the_field_and_the_idea_stays(
    signed_in, writer, harbour, settings, body, limit, error
):
    if limit is not None:
        settings.INPUT_IMAGE_MAX_BYTES = limit
    upload = SimpleUploadedFile(
        "keeper.png", body or png_bytes((32, 18), (40, 90, 160)), content_type="image/png"
    )
    response = signed_in.post(
        "/briefs/from-idea/", {"idea": IDEA, "target_seconds": "30", "reference_image": upload}
    )
    page = response.content.decode()
    assert response.status_code == 400
    assert not Brief.objects.exists()
    # Next to the field, with an id the field points at, and summed up at the top of the form.
    field_error = re.search(
        r'<ul class="errorlist" id="idea_reference_image_error"><li>([^<]+)</li></ul>', page
    )
    assert field_error and error in field_error.group(1)
    assert re.search(r'<input type="file" name="reference_image"[^>]*aria-invalid="true"', page)
    assert re.search(
        r'<input type="file" name="reference_image"[^>]*aria-describedby="[^"]*idea_reference_image_error',
        page,
    )
    assert 'id="idea-form-errors"' in page and 'href="#idea_reference_image"' in page
    # Nothing else lost: the idea and the length are still in their boxes.
    assert re.search(rf'id="idea_idea">\s*{re.escape(IDEA.replace(chr(39), "&#x27;"))}</textarea>', page)
    assert re.search(r'name="target_seconds" value="30"', page)
    # The empty-brief form is still on the page, untouched.
    assert 'data-testid="brief-form"' in page and 'id="brief-form-errors"' not in page


def test_the_two_new_brief_forms_do_not_share_element_ids(signed_in, harbour):
    page = signed_in.get("/").content.decode()
    ids = re.findall(r'\sid="([^"]+)"', page)
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    assert 'id="idea_idea"' in page and 'id="id_title"' in page


def test_an_empty_brief_with_errors_shows_them_at_the_top_of_its_form(signed_in, harbour):
    response = signed_in.post("/", {"title": ""})
    page = response.content.decode()
    assert response.status_code == 400
    assert 'id="brief-form-errors"' in page and 'id="id_title_error"' in page
    assert 'id="idea-form-errors"' not in page

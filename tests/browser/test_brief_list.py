"""The brief list in a real browser: search, the team filter, the team switcher and an invitation."""

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import expect

from briefs.models import Team, UserPreference
from briefs.services import brief_create, team_invite
from tests.browser.conftest import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.integration]


def test_search_filter_switch_teams_and_accept_an_invitation(studio, page, shot):
    writer = get_user_model().objects.create_user("mira", password="a-long-password-9")
    harbour, orchard = Team.objects.create(name="Harbour crew"), Team.objects.create(name="Orchard crew")
    harbour.members.add(writer)
    orchard.members.add(writer)
    brief_create(user=writer, team=harbour, title="Night ferry", idea="A ferry crosses in fog.")
    brief_create(user=writer, team=orchard, title="Apple harvest", idea="Pickers race the first frost.")
    lighthouse = Team.objects.create(name="Lighthouse crew")
    brief_create(user=None, team=lighthouse, title="Keeper's last night", idea="The lamp goes dark.")
    team_invite(team=lighthouse, user=writer, by=studio["user"])

    sign_in(page, studio["stack"].web_url, "mira", "a-long-password-9")
    cards = page.get_by_test_id("brief-card")
    expect(cards).to_have_count(2)
    page.get_by_test_id("brief-search").fill("frost")
    page.get_by_test_id("brief-search").press("Enter")
    expect(cards).to_have_count(1)
    expect(cards.first).to_contain_text("Apple harvest")
    page.get_by_test_id("brief-search").fill("")
    page.get_by_test_id("brief-search").press("Enter")
    page.locator('[data-testid="team-chip"]', has_text="Harbour crew").click()
    expect(cards).to_have_count(1)
    expect(cards.first).to_contain_text("Night ferry")
    shot("filtered")

    page.get_by_test_id("team-switcher-select").select_option(label="Orchard crew")
    page.get_by_test_id("team-switcher").get_by_role("button", name="Switch").click()
    expect(page.get_by_test_id("team-switcher-select")).to_have_value(str(orchard.uuid))
    assert UserPreference.objects.get(user=writer).current_team == orchard

    invitation = page.get_by_test_id("invitation")
    expect(invitation).to_contain_text("Lighthouse crew")
    invitation.get_by_test_id("invitation-accept").click()
    expect(page.get_by_test_id("invitation")).to_have_count(0)
    expect(cards.first).to_contain_text("Keeper's last night")
    assert lighthouse.members.filter(pk=writer.pk).exists()
    shot("invitation-accepted")

"""Migration 0004: every brief without a team gets one, before the team becomes required (0005)."""

import pytest
from django.db import IntegrityError, connection
from django.db.migrations.executor import MigrationExecutor

from briefs.models import Brief, Team

BEFORE = [("briefs", "0003_personal_teams_and_preferences")]


def _executor() -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    return executor


@pytest.fixture
def old_apps(transactional_db):
    """The models as they were before briefs needed a team; the schema is migrated back after."""
    latest = _executor().loader.graph.leaf_nodes()
    executor = _executor()
    executor.migrate(BEFORE)
    try:
        yield executor.loader.project_state(BEFORE).apps
    finally:
        _executor().migrate(latest)


def _migrate_forward() -> None:
    executor = _executor()
    executor.migrate(executor.loader.graph.leaf_nodes())


def test_teamless_briefs_go_to_their_creators_personal_teams_or_the_studio_team(old_apps):
    User = old_apps.get_model("auth", "User")
    OldTeam = old_apps.get_model("briefs", "Team")
    OldBrief = old_apps.get_model("briefs", "Brief")
    ada = User.objects.create(username="ada")
    ben = User.objects.create(username="ben")
    boss = User.objects.create(username="boss", is_staff=True)
    OldTeam.objects.create(name="ada (personal)")  # a shared team that happens to have that name
    bens_own = OldTeam.objects.create(name="Ben's corner", personal_for=ben)
    harbour = OldTeam.objects.create(name="Harbour films")
    for title, creator, team in [
        ("ada 1", ada, None),
        ("ada 2", ada, None),
        ("ben 1", ben, None),
        ("boss 1", boss, None),
        ("orphan", None, None),
        ("kept", ada, harbour),
    ]:
        OldBrief.objects.create(title=title, created_by=creator, team=team)

    _migrate_forward()

    teams = dict(Brief.objects.values_list("title", "team__name"))
    assert teams == {
        "ada 1": "ada (personal) #2",
        "ada 2": "ada (personal) #2",
        "ben 1": "Ben's corner",
        "boss 1": "Studio",
        "orphan": "Studio",
        "kept": "Harbour films",
    }
    adas = Team.objects.get(name="ada (personal) #2")
    assert adas.personal_for_id == ada.pk
    assert list(adas.members.values_list("username", flat=True)) == ["ada"]
    assert list(Team.objects.get(pk=bens_own.pk).members.values_list("username", flat=True)) == ["ben"]
    studio = Team.objects.get(name="Studio")
    assert studio.personal_for is None
    assert list(studio.members.values_list("username", flat=True)) == ["boss"]
    assert not Team.objects.filter(personal_for=boss.pk).exists()


def test_after_the_migration_a_brief_cannot_be_without_a_team(old_apps):
    _migrate_forward()
    with pytest.raises(IntegrityError):
        Brief.objects.create(title="No team")


def test_an_empty_studio_migrates_without_making_teams(old_apps):
    _migrate_forward()
    assert Team.objects.count() == 0

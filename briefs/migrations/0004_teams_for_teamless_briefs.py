"""Every brief gets a team before `Brief.team` becomes required (0005).

A brief without a team goes to its creator's personal team (made here when the
creator has none yet); briefs made by staff, or whose creator is gone, go to the
"Studio" team, which staff creators join. The names follow briefs.services
(PERSONAL_TEAM_SUFFIX, STUDIO_TEAM_NAME), copied here so that this migration
keeps working when that code changes.
"""

from django.conf import settings
from django.db import migrations

STUDIO_TEAM_NAME = "Studio"
PERSONAL_TEAM_SUFFIX = " (personal)"
TEAM_NAME_LENGTH = 120


def _unique_name(Team, base):
    base = base[: TEAM_NAME_LENGTH - 6]
    name, n = base, 1
    while Team.objects.filter(name=name).exists():
        n += 1
        name = f"{base} #{n}"
    return name


def teams_for_teamless_briefs(apps, schema_editor):
    Brief = apps.get_model("briefs", "Brief")
    Team = apps.get_model("briefs", "Team")
    User = apps.get_model(*settings.AUTH_USER_MODEL.split("."))
    teamless = Brief.objects.filter(team__isnull=True)
    creator_ids = set(teamless.values_list("created_by", flat=True))
    for creator_id in sorted(creator_ids, key=lambda pk: -1 if pk is None else pk):
        creator = User.objects.filter(pk=creator_id).first() if creator_id is not None else None
        if creator is None or creator.is_staff:
            team, _ = Team.objects.get_or_create(name=STUDIO_TEAM_NAME)
        else:
            team = Team.objects.filter(personal_for=creator).first()
            if team is None:
                team = Team.objects.create(
                    name=_unique_name(Team, f"{creator.username}{PERSONAL_TEAM_SUFFIX}"), personal_for=creator
                )
        if creator is not None:
            team.members.add(creator)
        if creator_id is None:
            teamless.filter(created_by__isnull=True).update(team=team)
        else:
            teamless.filter(created_by=creator_id).update(team=team)


class Migration(migrations.Migration):
    dependencies = [
        ("briefs", "0003_personal_teams_and_preferences"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        # Backwards there is nothing to undo: the briefs keep their teams, 0005 reversed lets them be empty.
        migrations.RunPython(teams_for_teamless_briefs, migrations.RunPython.noop),
    ]

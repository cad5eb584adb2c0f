"""The demo brief and staff login that a fresh studio starts with."""

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from rest_framework.authtoken.models import Token

from briefs.models import Brief, Team
from briefs.services import brief_create, team_set_current

DEMO_USERNAME = "director"
DEMO_BRIEF_TITLE = "The Lighthouse Keeper"
DEMO_CHARACTERS = [
    {
        "name": "Ada",
        "description": "The keeper, seventy, stubborn and kind; forty years on the rock.",
        "look": "white braid, yellow oilskin coat",
        "prompt_words": "old woman lighthouse keeper",
    }
]
DEMO_SCENES = [
    {
        "title": "Storm on the horizon",
        "action": "The storm rolls in towards the last lit lighthouse on the coast.",
        "prompt": "a lone lighthouse on a black cliff, storm clouds rolling in from the sea",
        "shot_type": "establishing",
        "lighting": "dusk",
        "mood": "foreboding",
        "duration_s": 4,
        "transition": "fade",
    },
    {
        "title": "The keeper climbs",
        "action": "Ada climbs to the lamp room one last time.",
        "prompt": "climbing a spiral iron staircase with a lantern",
        "characters": ["Ada"],
        "shot_type": "medium",
        "camera_move": "tracking",
        "lighting": "warm lantern light, long shadows",
        "duration_s": 3,
    },
    {
        "title": "The beam finds the ship",
        "action": "The beam sweeps the waves and finds a small fishing boat.",
        "prompt": "the lighthouse beam sweeping across huge waves and finding a small fishing boat",
        "shot_type": "wide",
        "lighting": "stormy night",
        "mood": "hopeful",
        "duration_s": 3,
        "transition": "dissolve",
    },
]


@dataclass(frozen=True)
class DemoLogin:
    username: str
    password: str
    api_token: str
    brief_uuid: str


def _password_file() -> Path:
    return Path(settings.VAR_DIR) / "demo-login"


def _password() -> str:
    path = _password_file()
    if path.exists():
        return path.read_text().strip()
    password = secrets.token_urlsafe(12)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(password)
    return password


@transaction.atomic
def demo_seed() -> DemoLogin:
    """Create (or keep) the demo team, staff user, API token and brief with three scenes."""
    team, _ = Team.objects.get_or_create(name="Demo studio")
    user_model = get_user_model()
    password = _password()
    user, created = user_model.objects.get_or_create(
        username=DEMO_USERNAME, defaults={"is_staff": True, "is_superuser": True, "email": ""}
    )
    if created or not user.check_password(password):
        user.set_password(password)
        user.save(update_fields=["password"])
    team.members.add(user)
    # Briefs the demo login makes in the editor or the API land next to the demo brief.
    if user.is_active:
        team_set_current(user=user, team=team)
    token, _ = Token.objects.get_or_create(user=user)
    brief = Brief.objects.filter(title=DEMO_BRIEF_TITLE, team=team).first()
    if brief is None:
        brief = brief_create(
            user=user,
            team=team,
            title=DEMO_BRIEF_TITLE,
            idea="A lighthouse keeper's last night before the light is automated; a storm brings one more ship.",
            logline="On her last night before the light is automated, a keeper saves one more ship.",
            style="storyboard sketch, cinematic framing",
            palette="muted slate and amber",
            setting="a rocky island lighthouse on a northern coast",
            characters=DEMO_CHARACTERS,
            scenes=DEMO_SCENES,
        )
    return DemoLogin(
        username=user.username, password=password, api_token=token.key, brief_uuid=str(brief.uuid)
    )

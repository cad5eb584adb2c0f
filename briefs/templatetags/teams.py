"""The top bar's team switcher, on every page a signed-in user sees."""

from typing import Any

from django import template
from django.urls import reverse

from briefs.selectors import team_preferred_for, teams_of

register = template.Library()


@register.inclusion_tag("briefs/_team_switcher.html", takes_context=True)
def team_switcher(context: dict[str, Any]) -> dict[str, Any]:
    request = context["request"]
    user = request.user
    teams = list(teams_of(user)) if user.is_authenticated else []
    current = team_preferred_for(user) if len(teams) > 1 else None
    return {
        "teams": teams if len(teams) > 1 else [],
        "current": current,
        # Back where the user was, unless that page answered a form: a POST-only address.
        "next": request.get_full_path() if request.method == "GET" else reverse("briefs:list"),
        "csrf_token": context.get("csrf_token"),
    }

"""Reads about briefs that carry an access rule, shared by the editor, the API and the sockets."""

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import Q, QuerySet

from briefs.models import Brief, Scene


def briefs_visible_to(user: User | AnonymousUser) -> QuerySet[Brief]:
    """Staff see every brief; others see their teams' briefs and briefs of no team."""
    if not user.is_authenticated or not user.is_active:
        return Brief.objects.none()
    if user.is_staff:
        return Brief.objects.all()
    return Brief.objects.filter(Q(team__isnull=True) | Q(team__members=user)).distinct()


def scenes_visible_to(user: User | AnonymousUser) -> QuerySet[Scene]:
    return Scene.objects.filter(brief__in=briefs_visible_to(user))

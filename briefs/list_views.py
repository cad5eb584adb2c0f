"""The brief list and the user's teams: search, the team filter, new briefs, the team switcher and
invitations. Rendering progress comes from `generation.progress`, a fixed number of queries a page."""

from urllib.parse import urlencode
from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.paginator import Paginator
from django.db.models import Count, Prefetch, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from briefs import services
from briefs.forms import BriefForm, IdeaForm
from briefs.models import Brief, OutlineRequest, OutlineState, Team, TeamInvitation
from briefs.selectors import briefs_visible_to, invitations_pending_for, team_preferred_for, teams_of
from generation.progress import brief_summaries

PAGE_SIZE = 24


@login_required
def brief_list(request: HttpRequest) -> HttpResponse:
    """GET: the list. POST: a new empty brief (the form on the list), then its editor."""
    if request.method == "POST":
        form = BriefForm(request.POST, request.FILES)
        if form.is_valid():
            brief = services.brief_create(user=request.user, **form.cleaned_data)
            messages.success(request, f"Brief “{brief.title}” created. Add its scenes below.")
            return redirect("briefs:detail", brief_uuid=brief.uuid)
        return _brief_list(request, form=form, status=400)
    return _brief_list(request)


@login_required
@require_POST
def brief_from_idea(request: HttpRequest) -> HttpResponse:
    form = IdeaForm(request.POST, request.FILES)
    if not form.is_valid():
        return _brief_list(request, idea_form=form, status=400)
    assert isinstance(request.user, User)
    brief, _ = services.brief_from_idea(user=request.user, **form.cleaned_data)
    return redirect("briefs:detail", brief_uuid=brief.uuid)


def _team_of_filter(request: HttpRequest) -> Team | None:
    """The team named by ?team=, when the user may see its briefs; another team answers 404."""
    value = request.GET.get("team", "").strip()
    if not value:
        return None
    try:
        team_uuid = UUID(value)
    except ValueError:
        raise Http404("No such team.") from None
    teams = Team.objects.all() if request.user.is_staff else teams_of(request.user)
    return get_object_or_404(teams, uuid=team_uuid)


def _searched(briefs: QuerySet[Brief], q: str) -> QuerySet[Brief]:
    if not q:
        return briefs
    return briefs.filter(Q(title__icontains=q) | Q(idea__icontains=q) | Q(logline__icontains=q))


def _brief_list(
    request: HttpRequest,
    *,
    form: BriefForm | None = None,
    idea_form: IdeaForm | None = None,
    status: int = 200,
) -> HttpResponse:
    q = request.GET.get("q", "").strip()
    team = _team_of_filter(request)
    searched = _searched(briefs_visible_to(request.user), q)
    # Per team, of the briefs the search finds (ordering cleared, or it joins the GROUP BY).
    counts = dict(searched.order_by().values("team_id").annotate(n=Count("id")).values_list("team_id", "n"))
    shown = searched.filter(team=team) if team is not None else searched
    running = OutlineRequest.objects.filter(state__in=[OutlineState.QUEUED, OutlineState.RUNNING])
    # A unique last key: pages never share or skip a brief that ties on updated_at.
    shown = (
        shown.order_by("-updated_at", "-id")
        .select_related("team")
        .prefetch_related(Prefetch("outline_requests", queryset=running, to_attr="outlines_running"))
    )
    page = Paginator(shown, PAGE_SIZE).get_page(request.GET.get("page"))
    briefs = list(page.object_list)
    summaries = brief_summaries(briefs)

    current = team_preferred_for(request.user)
    teams = list(teams_of(request.user))
    if team is not None and team not in teams:
        teams.append(team)  # staff filtering by a team they are not in
    chips = [
        {
            "team": t,
            "count": counts.get(t.pk, 0),
            "active": team is not None and t.pk == team.pk,
            "current": current is not None and t.pk == current.pk,
        }
        for t in teams
    ]
    kept = {name: value for name, value in (("q", q), ("team", team.uuid if team else "")) if value}
    context = {
        "rows": [(brief, summaries[brief.pk]) for brief in briefs],
        "page": page,
        "page_query": urlencode(kept),
        "q": q,
        "team_filter": team,
        "chips": chips,
        "all_count": sum(counts.values()),
        "search_query": urlencode({"q": q}) if q else "",
        "current_team": current,
        "invitations": list(invitations_pending_for(request.user)),
        "form": form or BriefForm(),
        "idea_form": idea_form or IdeaForm(),
    }
    return render(request, "briefs/list.html", context, status=status)


def _safe_next(request: HttpRequest) -> str:
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return reverse("briefs:list")


@login_required
@require_POST
def team_current(request: HttpRequest) -> HttpResponse:
    """The top bar's team switcher: the team the user's new briefs go to."""
    assert isinstance(request.user, User)
    value = request.POST.get("team", "").strip()
    if not value:
        return HttpResponseBadRequest("Choose the team your new briefs should go to.")
    try:
        team_uuid = UUID(value)
    except ValueError:
        raise Http404("No such team.") from None
    team = get_object_or_404(teams_of(request.user), uuid=team_uuid)
    services.team_set_current(user=request.user, team=team)
    messages.success(request, f"New briefs now go to {team.name}.")
    return redirect(_safe_next(request))


def _invitation_of(request: HttpRequest, invitation_uuid: UUID) -> TeamInvitation:
    assert isinstance(request.user, User)
    # Someone else's invitation answers 404, staff included: only the invited user answers it.
    return get_object_or_404(
        TeamInvitation.objects.filter(user=request.user).select_related("team"), uuid=invitation_uuid
    )


@login_required
@require_POST
def invitation_accept(request: HttpRequest, invitation_uuid: UUID) -> HttpResponse:
    assert isinstance(request.user, User)
    invitation = _invitation_of(request, invitation_uuid)
    try:
        services.invitation_accept(invitation=invitation, user=request.user)
    except services.InvitationRefused as exc:
        messages.info(request, str(exc))
        return redirect("briefs:list")
    messages.success(request, f"You joined {invitation.team.name}; its briefs are listed below.")
    return redirect(f"{reverse('briefs:list')}?{urlencode({'team': invitation.team.uuid})}")


@login_required
@require_POST
def invitation_decline(request: HttpRequest, invitation_uuid: UUID) -> HttpResponse:
    assert isinstance(request.user, User)
    invitation = _invitation_of(request, invitation_uuid)
    try:
        services.invitation_decline(invitation=invitation, user=request.user)
    except services.InvitationRefused as exc:
        messages.info(request, str(exc))
    else:
        messages.info(request, f"Invitation to {invitation.team.name} declined.")
    return redirect("briefs:list")

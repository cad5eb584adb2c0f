"""The admin's telemetry charts per backend and per workflow template: duration and VRAM over time,
the slowest and the failing attempts, linked from the backend and template pages."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from django.contrib.auth.models import Permission

from generation.models import Attempt, AttemptState, JobState
from tests.unit.test_stability_report import add_attempt, failed_record, move, ok_record

pytestmark = pytest.mark.django_db
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def operator(client, django_user_model):
    user = django_user_model.objects.create_superuser("ops", password="a-long-password-5")
    client.force_login(user)
    return user


@pytest.fixture
def attempts(staff_user, template, backend, brief):
    """Three attempts on the preview backend: 14.5 s and 40 s successes, and a timeout."""
    from generation import services

    _, (a, b) = services.render_brief_submit(brief=brief, user=staff_user)
    move(a, JobState.DISPATCHED, backend=backend)
    timed_out = add_attempt(
        a, 1, backend, state=AttemptState.FAILED, error_code="timeout", record=failed_record(a), minutes=1
    )
    move(a, JobState.QUEUED)
    move(a, JobState.DISPATCHED, backend=backend)
    slow = add_attempt(
        a, 2, backend, state=AttemptState.SUCCEEDED, record=ok_record(a, number=2, seconds=40), minutes=2
    )
    move(a, JobState.SUCCEEDED)
    move(b, JobState.DISPATCHED, backend=backend)
    quick = add_attempt(
        b, 1, backend, state=AttemptState.SUCCEEDED, record=ok_record(b, used_mb=2000), minutes=3
    )
    move(b, JobState.SUCCEEDED)
    return {"timed_out": timed_out, "slow": slow, "quick": quick}


def chart(html: str, element_id: str) -> ET.Element:
    inner = html.split(f'<div id="{element_id}">', 1)[1].split("</svg>", 1)[0] + "</svg>"
    return ET.fromstring(inner)


def table(html: str, element_id: str) -> str:
    return html.split(f'<table id="{element_id}">', 1)[1].split("</table>", 1)[0]


def test_the_backend_page_charts_every_attempt_and_lists_the_slowest_and_failing_first(
    client, operator, backend, attempts
):
    page = client.get(f"/admin/telemetry/charts/backends/{backend.uuid}/")
    assert page.status_code == 200
    html = page.content.decode()
    duration = chart(html, "duration-chart")
    tooltips = sorted("".join(c.itertext()) for c in duration.iter(f"{SVG}circle"))
    durations = sorted(a.telemetry["duration_s"] for a in Attempt.objects.all())
    assert len(tooltips) == 3 and durations == [14.5, 14.5, 40.0]
    assert any(t.startswith("succeeded: 40 at") for t in tooltips)
    assert any(t.startswith("not succeeded: 14.5 at") for t in tooltips)

    vram = chart(html, "vram-chart")
    labels = ["".join(t.itertext()) for t in vram.iter(f"{SVG}text")]
    assert "in use after (3)" in labels and "rise during (3)" in labels
    assert any("in use after: 2000 at" in "".join(c.itertext()) for c in vram.iter(f"{SVG}circle"))

    slowest = table(html, "slowest-attempts")
    rows = slowest.split("<tr>")[2:]
    assert str(attempts["slow"].uuid) in rows[0]
    assert f"/admin/generation/attempt/{attempts['slow'].pk}/change/" in rows[0]
    assert f"/admin/generation/renderjob/{attempts['slow'].job_id}/change/" in rows[0]
    assert "<td>40.0</td>" in rows[0]

    failing = table(html, "failing-attempts")
    assert str(attempts["timed_out"].uuid) in failing and "timeout" in failing
    assert str(attempts["quick"].uuid) not in failing


def test_the_template_page_and_the_index_list_what_has_telemetry(
    client, operator, backend, template, attempts
):
    index = client.get("/admin/telemetry/charts/").content.decode()
    assert f"/admin/telemetry/charts/backends/{backend.uuid}/" in index
    assert f"/admin/telemetry/charts/templates/{template.uuid}/" in index
    page = client.get(f"/admin/telemetry/charts/templates/{template.uuid}/")
    assert page.status_code == 200
    assert len(list(chart(page.content.decode(), "duration-chart").iter(f"{SVG}circle"))) == 3


def test_a_backend_without_attempts_gets_no_data_charts(client, operator, backend):
    html = client.get(f"/admin/telemetry/charts/backends/{backend.uuid}/").content.decode()
    assert "no data" in "".join(chart(html, "duration-chart").itertext())
    assert "none" in table(html, "slowest-attempts")


def test_the_window_is_checked_and_unknown_subjects_are_404(client, operator, backend, attempts):
    url = f"/admin/telemetry/charts/backends/{backend.uuid}/"
    assert client.get(url, {"last": 0}).status_code == 400
    assert client.get(url, {"last": "many"}).status_code == 400
    one = client.get(url, {"last": 1}).content.decode()
    assert len(list(chart(one, "duration-chart").iter(f"{SVG}circle"))) == 1
    assert (
        client.get("/admin/telemetry/charts/backends/00000000-0000-0000-0000-000000000000/").status_code
        == 404
    )


def test_backend_and_template_pages_link_to_their_charts(client, operator, backend, template):
    backend_page = client.get(f"/admin/generation/backend/{backend.pk}/change/").content.decode()
    assert f"/admin/telemetry/charts/backends/{backend.uuid}/" in backend_page
    template_page = client.get(f"/admin/generation/workflowtemplate/{template.pk}/change/").content.decode()
    assert f"/admin/telemetry/charts/templates/{template.uuid}/" in template_page


def test_only_staff_with_the_telemetry_view_permissions_see_the_charts(client, staff_user, writer, backend):
    url = f"/admin/telemetry/charts/backends/{backend.uuid}/"
    client.force_login(writer)
    assert client.get(url).status_code == 302
    client.force_login(staff_user)
    assert client.get(url).status_code == 403
    assert client.get("/admin/telemetry/charts/").status_code == 403
    staff_user.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_runreport", "view_validationreport"])
    )
    assert client.get(url).status_code == 200

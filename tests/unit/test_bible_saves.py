"""The story bible saved as the writer types: a save made over someone else's newer one is refused
with both versions and changes nothing; the same values, or `overwrite`, save; other windows are
told. And Cancel answers the page in JSON."""

from __future__ import annotations

import pytest
from django.test import Client

from briefs import services
from briefs.models import Brief
from generation import services as render_services


def _signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _save(client: Client, brief: Brief, stamp: str, **fields: str):
    data = {"title": brief.title, "style": brief.style, "base_stamp": stamp, **fields}
    return client.post(f"/briefs/{brief.uuid}/save/", data, HTTP_ACCEPT="application/json")


@pytest.mark.django_db
def test_a_bible_save_over_a_newer_one_is_refused_with_both_versions(brief, staff_user):
    client = _signed_in(staff_user)
    stamp = services.brief_stamp(brief)
    services.brief_update(brief=brief, style="oil paint")  # another window saves first
    response = _save(client, brief, stamp, style="pencil")
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "conflict" and body["differs"] == ["style"]
    assert body["theirs"]["fields"] == {"style": "oil paint"}
    assert body["yours"]["fields"] == {"style": "pencil"}
    brief.refresh_from_db()
    assert brief.style == "oil paint"
    kept = _save(client, brief, stamp, style="pencil", overwrite="1")
    assert kept.status_code == 200
    brief.refresh_from_db()
    assert brief.style == "pencil"
    assert kept.json()["stamp"] == services.brief_stamp(brief)


@pytest.mark.django_db
def test_a_stale_page_that_would_change_nothing_saves_and_takes_the_new_state(brief, staff_user):
    client = _signed_in(staff_user)
    stamp = services.brief_stamp(brief)
    services.brief_update(brief=brief, palette="teal and amber")
    brief.refresh_from_db()
    response = _save(client, brief, stamp, palette="teal and amber")
    assert response.status_code == 200
    brief.refresh_from_db()
    assert brief.palette == "teal and amber"
    assert response.json()["stamp"] == services.brief_stamp(brief)


@pytest.mark.django_db
def test_a_character_save_over_a_newer_one_is_refused_and_changes_nothing(brief, staff_user):
    client = _signed_in(staff_user)
    character = services.character_create(brief=brief, name="Ines", look="grey coat")
    brief.refresh_from_db()
    stamp = services.brief_stamp(brief)
    services.character_update(character=character, look="red coat")
    prefix = f"c{character.pk}"
    response = client.post(
        f"/characters/{character.uuid}/",
        {f"{prefix}-name": "Ines", f"{prefix}-look": "green coat", "base_stamp": stamp},
        HTTP_ACCEPT="application/json",
    )
    assert response.status_code == 409
    assert response.json()["differs"] == ["look"]
    character.refresh_from_db()
    assert character.look == "red coat"


@pytest.mark.django_db
def test_cancel_answers_the_page_in_json(brief, staff_user, template, backend):
    client = _signed_in(staff_user)
    job = render_services.render_job_submit(scene=brief.scenes.first(), user=staff_user)
    first = client.post(f"/jobs/{job.uuid}/cancel/", HTTP_ACCEPT="application/json")
    assert first.status_code == 200 and first.json() == {"cancelled": True}
    again = client.post(f"/jobs/{job.uuid}/cancel/", HTTP_ACCEPT="application/json")
    assert again.status_code == 409 and "already finished" in again.json()["error"]

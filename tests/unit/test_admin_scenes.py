"""Scenes changed in the admin go through the briefs services: versions, positions, deletes."""

from typing import Any

import pytest
from django.contrib.messages import get_messages
from django.forms import BooleanField, FileField

from briefs.models import Scene
from briefs.services import brief_create, scene_create
from generation import services as render_services


@pytest.fixture
def admin_client(client, django_user_model):
    user = django_user_model.objects.create_superuser("ops", password="a-long-password-6")
    client.force_login(user)
    return client


def page_as_sent(page) -> dict[str, Any]:
    """What a browser sends back for an admin change page left as it is."""
    forms = [page.context["adminform"].form]
    data: dict[str, Any] = {}
    for inline in page.context["inline_admin_formsets"]:
        forms.append(inline.formset.management_form)
        forms.extend(inline.formset.forms)
    for form in forms:
        for field in form:
            if field.field.disabled or isinstance(field.field, FileField):
                continue
            value = field.value()
            if isinstance(field.field, BooleanField):
                if value:
                    data[field.html_name] = "on"
                continue
            data[field.html_name] = "" if value is None else value
    return data


def scene_url(scene: Scene) -> str:
    return f"/admin/briefs/scene/{scene.pk}/change/"


def brief_url(brief) -> str:
    return f"/admin/briefs/brief/{brief.pk}/change/"


def shown_messages(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


@pytest.mark.django_db
def test_a_scene_edited_on_its_own_page_gets_the_next_version_and_a_render_records_it(
    admin_client, brief, template, backend, staff_user
):
    scene = brief.scenes.get(position=1)
    data = page_as_sent(admin_client.get(scene_url(scene)))
    data["prompt"] = "a ferry leaving a harbour in a storm"

    response = admin_client.post(scene_url(scene), data)

    assert response.status_code == 302
    scene.refresh_from_db()
    assert scene.prompt == "a ferry leaving a harbour in a storm"
    assert scene.version == 2
    assert "Night ferry: scene 1 is now version 2." in shown_messages(response)
    job = render_services.render_job_submit(scene=scene, user=staff_user)
    assert job.scene_version == 2
    assert job.params["prompt"] == "a ferry leaving a harbour in a storm, ink wash"


@pytest.mark.django_db
def test_a_scene_edited_in_the_brief_inline_gets_the_next_version_and_a_render_records_it(
    admin_client, brief, template, backend, staff_user
):
    deck = brief.scenes.get(position=2)
    data = page_as_sent(admin_client.get(brief_url(brief)))
    assert data["scenes-1-id"] == deck.pk
    data["scenes-1-prompt"] = "two strangers on the deck at dawn"

    response = admin_client.post(brief_url(brief), data)

    assert response.status_code == 302
    deck.refresh_from_db()
    assert deck.prompt == "two strangers on the deck at dawn"
    assert deck.version == 2
    assert brief.scenes.get(position=1).version == 1
    assert "Scenes saved: scene 2 is now version 2." in shown_messages(response)
    job = render_services.render_job_submit(scene=deck, user=staff_user)
    assert job.scene_version == 2
    assert job.params["prompt"] == "two strangers on the deck at dawn, ink wash"


@pytest.mark.django_db
def test_saving_a_scene_page_unchanged_keeps_its_version(admin_client, brief):
    scene = brief.scenes.get(position=1)
    response = admin_client.post(scene_url(scene), page_as_sent(admin_client.get(scene_url(scene))))
    assert response.status_code == 302
    scene.refresh_from_db()
    assert scene.version == 1


@pytest.mark.django_db
def test_a_crafted_post_cannot_move_a_scene_to_another_brief_position_or_version(admin_client, brief):
    other = brief_create(user=None, title="Other", scenes=[{"title": "Only", "prompt": "a lighthouse"}])
    scene = brief.scenes.get(position=1)
    data = page_as_sent(admin_client.get(scene_url(scene)))
    data.update(brief=other.pk, position=7, version=40, title="Harbour at night")

    response = admin_client.post(scene_url(scene), data)

    assert response.status_code == 302
    scene.refresh_from_db()
    assert (scene.brief_id, scene.position, scene.version, scene.title) == (
        brief.pk,
        1,
        2,
        "Harbour at night",
    )


@pytest.mark.django_db
def test_an_empty_prompt_is_refused_as_in_the_editor_and_nothing_changes(admin_client, brief):
    scene = brief.scenes.get(position=1)
    data = page_as_sent(admin_client.get(scene_url(scene)))
    data["prompt"] = "   "

    response = admin_client.post(scene_url(scene), data)

    assert response.status_code == 200
    assert "a scene needs a prompt to render" in response.content.decode()
    scene.refresh_from_db()
    assert (scene.prompt, scene.version) == ("a ferry leaving a foggy harbour", 1)


@pytest.mark.django_db
def test_a_scene_added_in_the_inline_at_a_position_moves_the_later_ones_down(admin_client, brief):
    data = page_as_sent(admin_client.get(brief_url(brief)))
    data.update(
        {
            "scenes-TOTAL_FORMS": "3",
            "scenes-2-position": "2",
            "scenes-2-title": "Gulls",
            "scenes-2-prompt": "gulls following the wake",
            "scenes-2-seed": "",
        }
    )

    response = admin_client.post(brief_url(brief), data)

    assert response.status_code == 302
    titles = list(brief.scenes.order_by("position").values_list("position", "title", "version"))
    assert titles == [(1, "Harbour", 1), (2, "Gulls", 1), (3, "Deck", 1)]


@pytest.mark.django_db
def test_scenes_added_with_a_new_brief_are_numbered_in_order(admin_client):
    data = page_as_sent(admin_client.get("/admin/briefs/brief/add/"))
    data.update(
        {
            "title": "Lighthouse",
            "scenes-TOTAL_FORMS": "2",
            "scenes-0-title": "Beam",
            "scenes-0-prompt": "the beam sweeping over the sea",
            "scenes-1-title": "Keeper",
            "scenes-1-prompt": "the keeper climbing the stairs",
        }
    )

    response = admin_client.post("/admin/briefs/brief/add/", data)

    assert response.status_code == 302
    scenes = Scene.objects.filter(brief__title="Lighthouse").order_by("position")
    assert list(scenes.values_list("position", "title", "version")) == [(1, "Beam", 1), (2, "Keeper", 1)]


@pytest.mark.django_db
def test_a_scene_added_on_its_own_page_without_a_position_goes_last(admin_client, brief):
    response = admin_client.post(
        "/admin/briefs/scene/add/",
        {"brief": brief.pk, "position": "", "title": "Arrival", "prompt": "the ferry docks at dawn"},
    )
    assert response.status_code == 302
    scene = brief.scenes.get(title="Arrival")
    assert (scene.position, scene.version) == (3, 1)
    assert "Night ferry: scene 3 added." in shown_messages(response)


@pytest.mark.django_db
def test_deleting_two_scenes_in_the_inline_leaves_no_gap(admin_client, brief):
    scene_create(brief=brief, title="Arrival", prompt="the ferry docks")
    data = page_as_sent(admin_client.get(brief_url(brief)))
    data["scenes-0-DELETE"] = "on"
    data["scenes-1-DELETE"] = "on"

    response = admin_client.post(brief_url(brief), data)

    assert response.status_code == 302
    assert list(brief.scenes.values_list("position", "title")) == [(1, "Arrival")]


@pytest.mark.django_db
def test_deleting_a_scene_from_its_own_page_renumbers_the_rest(admin_client, brief):
    scene = brief.scenes.get(position=1)
    response = admin_client.post(f"/admin/briefs/scene/{scene.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert list(brief.scenes.values_list("position", "title")) == [(1, "Deck")]


@pytest.mark.django_db
def test_deleting_scenes_from_the_list_renumbers_the_rest(admin_client, brief):
    scene_create(brief=brief, title="Arrival", prompt="the ferry docks")
    chosen = list(brief.scenes.filter(position__lte=2).values_list("pk", flat=True))
    response = admin_client.post(
        "/admin/briefs/scene/", {"action": "delete_selected", "_selected_action": chosen, "post": "yes"}
    )
    assert response.status_code == 302
    assert list(brief.scenes.values_list("position", "title")) == [(1, "Arrival")]

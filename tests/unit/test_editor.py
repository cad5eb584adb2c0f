import pytest

from briefs.models import Brief, Scene


@pytest.fixture
def signed_in(client, staff_user):
    client.force_login(staff_user)
    return client


@pytest.mark.django_db
def test_the_editor_asks_for_a_login(client, brief):
    response = client.get(f"/briefs/{brief.uuid}/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


@pytest.mark.django_db
def test_the_editor_lists_scenes_with_render_buttons(signed_in, brief):
    page = signed_in.get(f"/briefs/{brief.uuid}/").content.decode()
    assert page.count('data-testid="render-scene"') == 2
    assert 'data-testid="render-all"' in page
    assert "a ferry leaving a foggy harbour" in page


@pytest.mark.django_db
def test_a_scene_without_a_prompt_gets_a_field_error_and_keeps_the_saved_text(signed_in, brief):
    scene = brief.scenes.first()
    prefix = f"s{scene.pk}"
    response = signed_in.post(
        f"/scenes/{scene.uuid}/", {f"{prefix}-title": "Harbour at dawn", f"{prefix}-prompt": "   "}
    )
    assert response.status_code == 400
    assert "a scene needs a prompt to render" in response.content.decode()
    # What the user typed is still in the form, and nothing saved was touched.
    assert "Harbour at dawn" in response.content.decode()
    scene.refresh_from_db()
    assert (scene.title, scene.prompt) == ("Harbour", "a ferry leaving a foggy harbour")


@pytest.mark.django_db
def test_a_new_brief_without_a_title_is_refused(signed_in):
    response = signed_in.post("/", {"title": "", "idea": "kept idea"})
    assert response.status_code == 400
    assert "kept idea" in response.content.decode()
    assert Brief.objects.count() == 0


@pytest.mark.django_db
def test_adding_a_scene_appends_it(signed_in, brief):
    response = signed_in.post(
        f"/briefs/{brief.uuid}/scenes/", {"new-title": "Arrival", "new-prompt": "a pier at dawn"}
    )
    assert response.status_code == 302
    assert brief.scenes.order_by("position").last().title == "Arrival"


@pytest.mark.django_db(transaction=True)
def test_render_from_the_editor_answers_json_for_the_page_script(signed_in, brief, template, backend):
    scene = brief.scenes.first()
    response = signed_in.post(f"/scenes/{scene.uuid}/render/", HTTP_ACCEPT="application/json")
    assert response.status_code == 202
    assert response.json()["job"]["state"] == "queued"


@pytest.mark.django_db
def test_render_refused_in_the_editor_says_why(signed_in, brief, backend):
    response = signed_in.post(f"/briefs/{brief.uuid}/render/", HTTP_ACCEPT="application/json")
    assert response.status_code == 409
    assert "No workflow template" in response.json()["error"]


@pytest.mark.django_db
def test_a_get_cannot_render(signed_in, brief):
    assert signed_in.get(f"/scenes/{brief.scenes.first().uuid}/render/").status_code == 405
    assert Scene.objects.get(pk=brief.scenes.first().pk).render_jobs.count() == 0

"""The story bible: characters, style, palette, setting; scenes that name their cast and carry a
shot (type, camera, lens, lighting, mood, duration, transition). Through the services, the editor,
the API and the admin; a render sends the composed prompt and records the bible's version."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from briefs import services
from briefs.models import Brief, Character, Scene
from briefs.selectors import composed_for
from generation import services as render_services


@pytest.fixture
def cast(brief):
    ada = services.character_create(
        brief=brief, name="Ada", look="white braid", prompt_words="old woman lighthouse keeper"
    )
    return brief, ada


@pytest.mark.django_db
def test_each_change_to_the_bible_is_a_new_version(cast):
    brief, ada = cast
    assert Brief.objects.get(pk=brief.pk).bible_version == 2  # the character added
    services.brief_update(brief=Brief.objects.get(pk=brief.pk), palette="slate and amber")
    services.character_update(character=ada, look="white braid, oilskin coat")
    services.character_update(character=Character.objects.get(pk=ada.pk), look="white braid, oilskin coat")
    services.brief_update(brief=Brief.objects.get(pk=brief.pk), title="Night ferry, second cut")
    assert (
        Brief.objects.get(pk=brief.pk).bible_version == 4
    )  # palette, look; an unchanged look and the title are not


@pytest.mark.django_db
def test_a_scene_names_its_cast_and_its_prompt_carries_them(cast):
    brief, ada = cast
    scene = brief.scenes.first()
    scene = services.scene_update(
        scene=scene, characters=["ada"], shot_type="close-up", lighting="lantern light"
    )
    assert scene.version == 2
    assert list(scene.characters.all()) == [ada]
    composed = composed_for(scene)
    assert composed.prompt.startswith(
        "close-up, a ferry leaving a foggy harbour, Ada (old woman lighthouse keeper"
    )
    assert "lantern light" in composed.prompt and composed.prompt.endswith("ink wash")


@pytest.mark.django_db
def test_an_unknown_or_doubled_character_is_refused_by_name(cast):
    brief, _ = cast
    with pytest.raises(services.CharacterRefused, match="There is no character named Bea"):
        services.scene_update(scene=brief.scenes.first(), characters=["Bea"])
    with pytest.raises(services.CharacterRefused, match="already has a character named ada"):
        services.character_create(brief=brief, name="ada")
    with pytest.raises(services.CharacterRefused, match="Give the character a name"):
        services.character_create(brief=brief, name="  ")
    assert Brief.objects.get(pk=brief.pk).bible_version == 2  # nothing refused changed the bible


@pytest.mark.django_db
def test_removing_a_character_changes_the_scenes_they_were_in(cast):
    brief, ada = cast
    scene = services.scene_update(scene=brief.scenes.first(), characters=["Ada"])
    services.character_delete(character=ada)
    scene.refresh_from_db()
    assert scene.version == 3 and not scene.characters.exists()
    assert Brief.objects.get(pk=brief.pk).bible_version == 3


@pytest.mark.django_db
def test_a_render_sends_the_composed_prompt_and_records_the_bible_version(
    cast, template, backend, staff_user
):
    brief, _ = cast
    scene = services.scene_update(scene=brief.scenes.first(), characters=["Ada"], mood="tense")
    job = render_services.render_job_submit(scene=scene, user=staff_user, template=template)
    composed = composed_for(scene)
    assert job.params["prompt"] == composed.prompt
    assert "Ada (old woman lighthouse keeper; white braid)" in job.params["prompt"]
    assert job.params["bible_version"] == 2
    assert job.scene_version == scene.version


@pytest.mark.django_db
def test_the_editor_adds_a_character_and_shows_what_a_render_sends(client, cast, staff_user):
    brief, _ = cast
    client.force_login(staff_user)
    response = client.post(
        f"/briefs/{brief.uuid}/characters/", {"newc-name": "Tom", "newc-prompt_words": "young fisherman"}
    )
    assert response.status_code == 302
    assert brief.characters.get(name="Tom").prompt_words == "young fisherman"
    scene = brief.scenes.first()
    response = client.post(
        f"/scenes/{scene.uuid}/",
        {
            f"s{scene.pk}-title": scene.title,
            f"s{scene.pk}-prompt": scene.prompt,
            f"s{scene.pk}-characters": [str(brief.characters.get(name="Tom").pk)],
            f"s{scene.pk}-shot_type": "wide",
            f"s{scene.pk}-duration_s": "4.5",
            f"s{scene.pk}-transition": "dissolve",
        },
    )
    assert response.status_code == 302
    page = client.get(f"/briefs/{brief.uuid}/").content.decode()
    assert "wide shot, a ferry leaving a foggy harbour, Tom (young fisherman), ink wash" in page
    assert "Story bible" in page and 'data-testid="bible-version">3<' in page


@pytest.mark.django_db
def test_the_editor_says_what_was_wrong_with_a_character_and_keeps_the_rest(client, cast, staff_user):
    brief, _ = cast
    client.force_login(staff_user)
    response = client.post(f"/briefs/{brief.uuid}/characters/", {"newc-name": "ADA", "newc-look": "kept"})
    assert response.status_code == 400
    assert "This brief already has a character named ADA." in response.content.decode()
    assert brief.characters.count() == 1


@pytest.mark.django_db
def test_a_shot_longer_than_ten_minutes_is_refused_next_to_the_field(client, brief, staff_user):
    client.force_login(staff_user)
    scene = brief.scenes.first()
    response = client.post(
        f"/scenes/{scene.uuid}/",
        {f"s{scene.pk}-title": "T", f"s{scene.pk}-prompt": "p", f"s{scene.pk}-duration_s": "900"},
    )
    assert response.status_code == 400
    assert "A shot holds between 0.1 and 600 seconds." in response.content.decode()
    assert Scene.objects.get(pk=scene.pk).prompt == "a ferry leaving a foggy harbour"


@pytest.mark.django_db
def test_the_api_takes_a_bible_and_scenes_that_name_their_cast(staff_user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=staff_user).key}")
    body = {
        "title": "Night ferry",
        "logline": "Two strangers, one crossing.",
        "palette": "teal and amber",
        "negative_style": "text, watermark",
        "characters": [{"name": "Mara", "prompt_words": "woman in a red scarf"}],
        "scenes": [
            {
                "title": "Deck",
                "prompt": "two strangers at the rail",
                "characters": ["Mara"],
                "shot_type": "two-shot",
            }
        ],
    }
    response = client.post("/api/v1/briefs/", body, format="json")
    assert response.status_code == 201, response.json()
    scene = response.json()["scenes"][0]
    assert scene["characters"] == ["Mara"]
    assert scene["composed"] == {
        "prompt": "two-shot, two strangers at the rail, Mara (woman in a red scarf), palette: teal and amber",
        "negative_prompt": "text, watermark",
    }
    assert response.json()["characters"][0]["name"] == "Mara"

    body["scenes"][0]["characters"] = ["Nobody"]
    refused = client.post("/api/v1/briefs/", body, format="json")
    assert refused.status_code == 400
    assert refused.json()["scenes"]["0"]["characters"] == ["Not in the story bible: Nobody."]
    assert Brief.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_the_old_one_per_line_characters_become_the_bible(staff_user):
    executor = MigrationExecutor(connection)
    executor.migrate([("briefs", "0005_brief_team_required")])
    old = executor.loader.project_state([("briefs", "0005_brief_team_required")]).apps
    team = old.get_model("briefs", "Team").objects.create(name="Old films")
    brief = old.get_model("briefs", "Brief").objects.create(
        title="Old",
        team=team,
        characters="Ada: the keeper, seventy\n\n- Tom - a young fisherman\nAda: again\nLone",
    )
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    kept = list(Character.objects.filter(brief_id=brief.pk).values_list("name", "description"))
    assert kept == [("Ada", "the keeper, seventy"), ("Tom", "a young fisherman"), ("Lone", "")]

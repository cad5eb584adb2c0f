"""From an idea to a brief: the editor's "New brief from an idea" starts an expansion that a Celery
task runs (here its body, as the worker would); the outline lands in the brief all at once, says
which expander wrote it, and a failure leaves the brief as it was with the reason on the page."""

from datetime import timedelta

import pytest
from django.utils import timezone

from briefs import services
from briefs.models import Brief, OutlineRequest, OutlineState
from briefs.outline import (
    BuiltinExpander,
    LlmExpander,
    OutlineError,
    OutlineErrorCode,
    expand_idea,
    outline_to_json,
)
from tests.app_thread import AppThread
from tests.fakes.openai_server import FakeOpenAI, answer

IDEA = (
    "On her last night before the light is automated, Ada, an old lighthouse keeper, sees a fishing boat "
    "lost in a storm and climbs the tower one more time to guide it home."
)


class Refusing:
    name = "test model"

    def expand(self, idea: str, **options: object) -> object:
        raise OutlineError(OutlineErrorCode.TIMEOUT, "the model did not answer within 60 s")

    def refine(self, *args: object, **kwargs: object) -> object:
        raise AssertionError("not asked")


@pytest.mark.django_db
def test_an_idea_becomes_a_brief_with_a_bible_and_scenes(staff_user, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as enqueued:
        brief, request = services.brief_from_idea(user=staff_user, idea=IDEA, target_seconds=30)
    assert len(enqueued) == 1  # the task, sent once the brief is saved
    assert request.state == OutlineState.QUEUED
    assert brief.title == "On her last night before the light is…"
    assert not brief.scenes.exists()

    done = services.outline_run(request_id=request.pk, expander=BuiltinExpander())

    assert (done.state, done.expander, done.error) == (OutlineState.SUCCEEDED, "built-in", "")
    brief = Brief.objects.get(pk=brief.pk)
    outline = expand_idea(IDEA, target_seconds=30, aspect="16:9")
    assert brief.logline == outline.logline
    assert [c.name for c in brief.characters.all()] == [c.name for c in outline.bible.characters]
    scenes = list(brief.scenes.order_by("position"))
    assert 5 <= len(scenes) <= 8
    assert [s.title for s in scenes] == [s.title for s in outline.scenes]
    assert sum(s.duration_s for s in scenes) == 30
    assert len({s.shot_type for s in scenes}) >= 3 and all(s.shot_type for s in scenes)
    ada = brief.characters.get(name="Ada")
    assert any(ada in s.characters.all() for s in scenes)


@pytest.mark.django_db
def test_a_failed_expansion_leaves_the_brief_as_it_was_and_says_why(staff_user, client):
    brief, request = services.brief_from_idea(user=staff_user, idea=IDEA, title="Keeper")
    before = Brief.objects.get(pk=brief.pk)

    done = services.outline_run(request_id=request.pk, expander=Refusing())

    assert (done.state, done.error) == (OutlineState.FAILED, "the model did not answer within 60 s")
    after = Brief.objects.get(pk=brief.pk)
    assert (after.logline, after.bible_version, after.scenes.count()) == ("", before.bible_version, 0)
    client.force_login(staff_user)
    page = client.get(f"/briefs/{brief.uuid}/").content.decode()
    assert "The outline could not be written: the model did not answer within 60 s" in page
    assert "Try again" in page
    # Trying again starts a new request; the old one stays as the record of the failure.
    assert client.post(f"/briefs/{brief.uuid}/outline/").status_code == 302
    assert list(brief.outline_requests.values_list("state", flat=True)) == ["queued", "failed"]


@pytest.mark.django_db
def test_the_editor_starts_from_an_idea_and_says_which_expander_wrote_it(staff_user, client):
    client.force_login(staff_user)
    response = client.post(
        "/briefs/from-idea/", {"idea": IDEA, "title": "", "aspect_ratio": "9:16", "target_seconds": "24"}
    )
    assert response.status_code == 302
    brief = Brief.objects.get()
    assert (brief.aspect_ratio, brief.target_seconds) == ("9:16", 24)
    page = client.get(response.url).content.decode()
    assert "Waiting for a worker" in page and "this page fills in when it is done" in page
    request = brief.outline_requests.get()
    assert client.get(f"/outlines/{request.uuid}/").json() == {
        "state": "queued",
        "label": "Waiting for a worker",
        "expander": "",
        "error": "",
        "kind": "expand",
        "scene": None,
        "note": "",
        "summary": [],
    }

    services.outline_run(request_id=request.pk, expander=BuiltinExpander())

    page = client.get(response.url).content.decode()
    assert "Outline written from the idea by the built-in expander (no model endpoint is configured)." in page
    assert page.count('data-testid="scene"') == brief.scenes.count() >= 5
    assert client.get(f"/outlines/{request.uuid}/").json()["state"] == "succeeded"


@pytest.mark.django_db
def test_an_empty_idea_is_refused_next_to_the_field_and_nothing_is_made(staff_user, client):
    client.force_login(staff_user)
    response = client.post("/briefs/from-idea/", {"idea": "   ", "aspect_ratio": "16:9"})
    assert response.status_code == 400
    assert "Write the idea first: a few sentences of what happens, and to whom." in response.content.decode()
    assert not Brief.objects.exists()


@pytest.mark.django_db
def test_a_brief_with_scenes_is_not_outlined_over(brief, staff_user):
    with pytest.raises(services.OutlineRefused, match="already has scenes"):
        services.outline_request_start(brief=brief, user=staff_user)


@pytest.mark.django_db
def test_the_model_path_writes_the_brief_through_a_real_chat_completions_endpoint(staff_user):
    fake = FakeOpenAI(api_key="sk-studio-test")
    thread = AppThread(fake.app).start()
    try:
        fake.replies = [answer(outline_to_json(expand_idea(IDEA, aspect="16:9")))]
        brief, request = services.brief_from_idea(user=staff_user, idea=IDEA)
        expander = LlmExpander(f"http://127.0.0.1:{thread.port}/v1", "sk-studio-test", "story-model", 10)
        done = services.outline_run(request_id=request.pk, expander=expander)
    finally:
        fake.release()
        thread.stop()
    assert (done.state, done.expander) == (OutlineState.SUCCEEDED, "story-model")
    assert Brief.objects.get(pk=brief.pk).scenes.count() == len(expand_idea(IDEA, aspect="16:9").scenes)
    assert len(fake.requests) == 1


@pytest.mark.django_db
def test_requests_left_behind_by_a_lost_message_or_a_dead_worker_run_again(staff_user):
    _, lost = services.brief_from_idea(user=staff_user, idea=IDEA)
    _, dead = services.brief_from_idea(user=staff_user, idea=IDEA + " Again.")
    _, fresh = services.brief_from_idea(user=staff_user, idea=IDEA + " Fresh.")
    long_ago = timezone.now() - timedelta(minutes=10)
    OutlineRequest.objects.filter(pk=lost.pk).update(created_at=long_ago)
    OutlineRequest.objects.filter(pk=dead.pk).update(created_at=long_ago, state=OutlineState.RUNNING)

    again = services.outline_requests_left_behind(older_than_s=180)

    assert sorted(again) == sorted([lost.pk, dead.pk])
    assert OutlineRequest.objects.get(pk=dead.pk).state == OutlineState.QUEUED
    assert OutlineRequest.objects.get(pk=fresh.pk).state == OutlineState.QUEUED

"""Refining a brief's outline from a note: the request a writer starts, the task body a worker runs
(here called as the worker would), and what lands in the brief — only what the note changed, through
`scene_update` (so only a changed scene gets a new version), all at once, or nothing at all."""

import copy

import pytest

from briefs import services
from briefs.models import Brief, OutlineKind, OutlineState, Scene
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
KEY = "sk-studio-test"


class Refusing:
    name = "test model"

    def expand(self, *args: object, **kwargs: object) -> object:
        raise AssertionError("not asked")

    def refine(self, *args: object, **kwargs: object) -> object:
        raise OutlineError(OutlineErrorCode.TIMEOUT, "the model did not answer within 60 s")


class EditingMeanwhile(BuiltinExpander):
    """A writer saves scene 1 while the expander works on the note."""

    def refine(self, outline, note, *, scene_index=None):
        scene = Scene.objects.filter(brief__title="Keeper").order_by("position").first()
        services.scene_update(scene=scene, title="Saved meanwhile")
        return super().refine(outline, note, scene_index=scene_index)


@pytest.fixture
def seven(staff_user) -> Brief:
    """A brief written from a seven-scene outline: room for an answer with fewer or more."""
    brief = services.brief_create(user=staff_user, title="Keeper")
    services.brief_apply_outline(brief=brief, outline=expand_idea(IDEA, scenes=7))
    return Brief.objects.get(pk=brief.pk)


@pytest.fixture
def expanded(staff_user) -> Brief:
    brief, request = services.brief_from_idea(user=staff_user, idea=IDEA, title="Keeper")
    assert services.outline_run(request_id=request.pk, expander=BuiltinExpander()).state == "succeeded"
    return Brief.objects.get(pk=brief.pk)


def snapshot(brief: Brief) -> dict:
    brief = Brief.objects.get(pk=brief.pk)
    return {
        "brief": (brief.logline, brief.style, brief.palette, brief.setting, brief.bible_version),
        "characters": list(brief.characters.values_list("name", "description", "look", "prompt_words")),
        "scenes": list(
            brief.scenes.order_by("position").values_list(
                "title",
                "action",
                "prompt",
                "shot_type",
                "camera_move",
                "lens",
                "lighting",
                "mood",
                "duration_s",
                "version",
            )
        ),
    }


def versions(brief: Brief) -> list[int]:
    return list(brief.scenes.order_by("position").values_list("version", flat=True))


def refine(brief, user, note, scene=None, expander=None):
    request = services.outline_refine_start(brief=brief, user=user, note=note, scene=scene)
    return services.outline_run(request_id=request.pk, expander=expander or BuiltinExpander())


@pytest.mark.django_db
def test_refining_one_scene_changes_only_that_scene_and_bumps_only_its_version(
    expanded, staff_user, django_capture_on_commit_callbacks
):
    before = snapshot(expanded)
    third = expanded.scenes.get(position=3)
    assert not third.lighting.startswith("golden hour")
    with django_capture_on_commit_callbacks() as enqueued:
        request = services.outline_refine_start(
            brief=expanded, user=staff_user, note="golden hour", scene=third
        )
    assert len(enqueued) == 1  # the task, sent once the request is saved
    assert (request.kind, request.state, request.scene, request.note) == (
        "refine",
        "queued",
        third,
        "golden hour",
    )

    done = services.outline_run(request_id=request.pk, expander=BuiltinExpander())

    assert (done.state, done.expander, done.error) == (OutlineState.SUCCEEDED, "built-in", "")
    after = snapshot(expanded)
    assert versions(expanded) == [v + (i == 2) for i, v in enumerate(versions_of(before))]
    assert after["brief"] == before["brief"] and after["characters"] == before["characters"]
    assert [s for i, s in enumerate(after["scenes"]) if i != 2] == [
        s for i, s in enumerate(before["scenes"]) if i != 2
    ]
    third.refresh_from_db()
    assert third.lighting.startswith("golden hour, ") and "warm low golden sun" in third.lighting
    assert "at golden hour" in third.prompt
    lines = done.summary.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Scene 3: time of day night → golden hour")


def versions_of(snap: dict) -> list[int]:
    return [row[-1] for row in snap["scenes"]]


@pytest.mark.django_db
def test_scene_3_named_in_the_note_is_the_one_rewritten(expanded, staff_user):
    before = versions(expanded)
    done = refine(expanded, staff_user, "make scene 3 a close-up")
    assert done.state == "succeeded", done.error
    assert versions(expanded) == [v + (i == 2) for i, v in enumerate(before)]
    assert expanded.scenes.get(position=3).shot_type == "close-up"


@pytest.mark.django_db
def test_a_note_for_the_whole_outline_rewrites_every_scene_it_changes(expanded, staff_user):
    before = snapshot(expanded)
    done = refine(expanded, staff_user, "make it rain")
    assert done.state == "succeeded", done.error
    scenes = list(expanded.scenes.order_by("position"))
    assert all(", rain, " in s.lighting and "in the rain" in s.prompt for s in scenes)
    assert all(s.version == v + 1 for s, v in zip(scenes, versions_of(before), strict=True))
    assert snapshot(expanded)["brief"] == before["brief"]  # the bible did not move
    assert len(done.summary.splitlines()) == len(scenes)


@pytest.mark.django_db
def test_words_the_built_in_expander_does_not_understand_reach_the_action(expanded, staff_user):
    second = expanded.scenes.get(position=2)
    action = second.action
    done = refine(expanded, staff_user, "add a dragon circling the tower", scene=second)
    second.refresh_from_db()
    assert second.action == f"{action} Add a dragon circling the tower."
    assert "added to the action: 'Add a dragon circling the tower.'" in done.summary


@pytest.mark.django_db
def test_a_hand_written_scene_keeps_its_own_words(brief, staff_user):
    """The fixture's scenes have no shot, lighting or mood: a refine invents none of them."""
    harbour = brief.scenes.get(position=1)
    done = refine(brief, staff_user, "rain, handheld", scene=harbour)
    assert done.state == "succeeded", done.error
    harbour.refresh_from_db()
    assert (harbour.lighting, harbour.camera_move, harbour.shot_type, harbour.mood) == (
        "rain, wet reflective surfaces",
        "handheld",
        "",
        "",
    )
    assert (
        harbour.prompt
        == "a ferry leaving a foggy harbour, in the rain, wet reflective surfaces, handheld camera"
    )
    assert brief.scenes.get(position=2).version == 1


@pytest.mark.django_db
def test_a_failure_leaves_the_brief_exactly_as_it_was_and_says_why(expanded, staff_user):
    before = snapshot(expanded)
    done = refine(expanded, staff_user, "night", expander=Refusing())
    assert (done.state, done.error, done.summary) == ("failed", "the model did not answer within 60 s", "")
    assert snapshot(expanded) == before


@pytest.mark.django_db
def test_a_brief_changed_while_the_note_was_applied_is_not_written_over(expanded, staff_user):
    before = snapshot(expanded)
    done = refine(expanded, staff_user, "dawn", expander=EditingMeanwhile())
    assert done.state == "failed"
    assert "The brief changed while the note was being applied, so nothing was changed" in done.error
    after = snapshot(expanded)
    assert after["scenes"][1:] == before["scenes"][1:] and after["brief"] == before["brief"]
    assert after["scenes"][0][0] == "Saved meanwhile" and after["scenes"][0][2] == before["scenes"][0][2]


@pytest.mark.django_db
def test_a_refine_is_refused_while_another_request_of_the_brief_runs(expanded, staff_user):
    first = services.outline_refine_start(brief=expanded, user=staff_user, note="night")
    with pytest.raises(services.OutlineBusy, match="still being written"):
        services.outline_refine_start(brief=expanded, user=staff_user, note="dawn")
    services.outline_run(request_id=first.pk, expander=BuiltinExpander())
    assert services.outline_refine_start(brief=expanded, user=staff_user, note="dawn").state == "queued"


@pytest.mark.django_db
def test_bad_notes_and_scenes_are_refused_by_field(expanded, brief, staff_user):
    cases = [
        ("   ", None, "note", "Write a note first"),
        ("n" * 1001, None, "note", "The note is 1001 characters long; at most 1000."),
        ("night", brief.scenes.first(), "scene", "That scene is not in this brief."),
        ("scene 9 at night", None, "note", "The note names scene 9, but the brief has"),
        (
            "scene 2 at night",
            expanded.scenes.get(position=4),
            "note",
            "The note names scene 2, but scene 4 was chosen.",
        ),
    ]
    for note, scene, field, message in cases:
        with pytest.raises(services.OutlineRefused) as caught:
            services.outline_refine_start(brief=expanded, user=staff_user, note=note, scene=scene)
        assert caught.value.field == field and message in str(caught.value), note
    assert not expanded.outline_requests.filter(kind=OutlineKind.REFINE).exists()


@pytest.mark.django_db
def test_a_brief_without_scenes_has_nothing_to_refine(staff_user):
    empty = services.brief_create(user=staff_user, title="Empty")
    with pytest.raises(services.OutlineRefused, match="has no scenes yet"):
        services.outline_refine_start(brief=empty, user=staff_user, note="night")


# -- a model behind a chat-completions endpoint ---------------------------------------
@pytest.fixture
def fake():
    server = FakeOpenAI(api_key=KEY)
    thread = AppThread(server.app).start()
    server.base_url = f"http://127.0.0.1:{thread.port}/v1"
    yield server
    server.release()
    thread.stop()


def model(fake, timeout: float = 10) -> LlmExpander:
    return LlmExpander(fake.base_url, KEY, "story-model", timeout)


def current(brief: Brief) -> dict:
    outline, _ = services.outline_of_brief(brief=brief)
    return outline_to_json(outline)


@pytest.mark.django_db
def test_a_model_rewrites_one_scene_and_only_that_scene_changes(expanded, staff_user, fake):
    now = current(expanded)
    night = copy.deepcopy(now["scenes"][1]) | {"time_of_day": "night", "lighting": "moonlight on wet stone"}
    fake.replies = [answer(night)]
    before = versions(expanded)

    done = refine(expanded, staff_user, "night", scene=expanded.scenes.get(position=2), expander=model(fake))

    assert (done.state, done.expander) == ("succeeded", "story-model"), done.error
    assert versions(expanded) == [v + (i == 1) for i, v in enumerate(before)]
    assert expanded.scenes.get(position=2).lighting.startswith("night, ")
    assert expanded.scenes.get(position=2).lighting.endswith("moonlight on wet stone")
    assert fake.requests[0]["json"]["response_format"]["json_schema"]["name"] == "outline_scene"


@pytest.mark.django_db
def test_a_model_answer_that_does_not_match_is_repaired_once(expanded, staff_user, fake):
    now = current(expanded)
    wrong = copy.deepcopy(now["scenes"][0]) | {"shot": "drone", "mood": "tense"}
    right = copy.deepcopy(now["scenes"][0]) | {"shot": "aerial", "mood": "tense"}
    fake.replies = [answer(wrong), answer(right)]

    done = refine(
        expanded, staff_user, "from above, tense", scene=expanded.scenes.get(position=1), expander=model(fake)
    )

    assert done.state == "succeeded", done.error
    assert len(fake.requests) == 2
    assert "$.scenes[0].shot: 'drone' is not one of" in fake.requests[1]["json"]["messages"][-1]["content"]
    first = expanded.scenes.get(position=1)
    assert (first.shot_type, first.mood) == ("aerial", "tense")


@pytest.mark.django_db
def test_a_model_answer_that_never_matches_changes_nothing(expanded, staff_user, fake):
    before = snapshot(expanded)
    fake.replies = [answer({"title": "only a title"}), answer("not even JSON")]

    done = refine(expanded, staff_user, "night", expander=model(fake))

    assert done.state == "failed"
    assert "did not answer with a valid outline, even after one repair round" in done.error
    assert snapshot(expanded) == before


@pytest.mark.django_db
def test_a_model_that_does_not_answer_in_time_changes_nothing(expanded, staff_user, fake):
    before = snapshot(expanded)
    fake.replies = [answer(current(expanded), delay=30)]

    done = refine(expanded, staff_user, "night", expander=model(fake, timeout=0.5))

    assert done.state == "failed" and "did not answer within 0.5 s" in done.error
    assert snapshot(expanded) == before


@pytest.mark.django_db
def test_a_whole_outline_answer_updates_in_place_by_position_and_never_deletes(seven, staff_user, fake):
    expanded = seven
    now = current(expanded)
    count = len(now["scenes"])
    shorter = copy.deepcopy(now)
    shorter["logline"] = "A keeper's last night, told in the rain."
    shorter["scenes"] = shorter["scenes"][: count - 1]
    shorter["scenes"][0]["title"] = "The lamp room"
    ada = next(c for c in shorter["bible"]["characters"] if c["name"] == "Ada")
    ada["look"] = "grey braid, oilskin coat"
    fake.replies = [answer(shorter)]
    before = versions(expanded)
    bible_before = expanded.bible_version

    done = refine(expanded, staff_user, "tighter story", expander=model(fake))

    assert done.state == "succeeded", done.error
    brief = Brief.objects.get(pk=expanded.pk)
    assert brief.logline == "A keeper's last night, told in the rain."
    assert brief.characters.get(name="Ada").look == "grey braid, oilskin coat"
    assert brief.bible_version > bible_before
    assert brief.scenes.count() == count  # the last scene was not in the answer, and stays
    assert versions(brief) == [before[0] + 1, *before[1:]]
    assert brief.scenes.get(position=1).title == "The lamp room"
    assert (
        done.summary.splitlines()[-1]
        == f"Scene {count} stays as it was: the new outline has {count - 1} scenes."
    )


@pytest.mark.django_db
def test_a_longer_whole_outline_answer_appends_new_scenes(seven, staff_user, fake):
    brief = seven
    now = current(brief)
    count = len(now["scenes"])
    assert count < 8
    longer = copy.deepcopy(now)
    longer["scenes"].append(copy.deepcopy(now["scenes"][-1]) | {"title": "Morning after"})
    fake.replies = [answer(longer)]

    done = refine(brief, staff_user, "add an epilogue", expander=model(fake))

    assert done.state == "succeeded", done.error
    assert brief.scenes.count() == count + 1
    assert brief.scenes.get(position=count + 1).title == "Morning after"
    assert f"New scenes: {count + 1}." in done.summary

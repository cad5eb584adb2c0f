"""Refining an outline from a note with the built-in expander: one scene or all, a fixed vocabulary,
and whatever it does not understand added to the action, so nothing the writer wrote is dropped."""

from dataclasses import replace

import pytest

from briefs.outline import OutlineError, OutlineErrorCode, expand_idea, outline_changes, refine_outline
from briefs.outline.builtin import BuiltinExpander, NoteReading, read_note

IDEA = "An old lighthouse keeper named Elias spots a ship in distress during a storm and rows out alone to save the crew."


@pytest.fixture(scope="module")
def outline():
    return expand_idea(IDEA)


def changed(before, after) -> list[int]:
    return [i for i, (a, b) in enumerate(zip(before.scenes, after.scenes, strict=True)) if a != b]


def test_a_note_naming_a_scene_changes_only_that_scene(outline):
    refined = refine_outline(outline, "make scene 3 a night shot")

    assert changed(outline, refined) == [2]
    scene = refined.scenes[2]
    assert scene.time_of_day == "night"
    assert scene.lighting.startswith("moonlight")
    assert "at night" in scene.prompt and "at golden hour" not in scene.prompt
    assert outline.scenes[2].lighting.split(",")[0] not in scene.prompt
    assert "old lighthouse keeper" in scene.prompt  # the character's anchor stays


def test_the_scene_may_be_chosen_by_index_instead(outline):
    assert refine_outline(outline, "night", scene_index=2) == refine_outline(
        outline, "make scene 3 a night shot"
    )


def test_without_a_scene_the_note_applies_to_every_scene(outline):
    refined = refine_outline(outline, "make it rain")

    assert {s.weather for s in refined.scenes} == {"rain"}
    assert all("in the rain" in s.prompt and "raging storm" not in s.prompt for s in refined.scenes)
    assert all("wet reflective surfaces" in s.lighting for s in refined.scenes)


def test_closer_and_wider_change_the_shot_and_its_lens(outline):
    closer = refine_outline(outline, "closer", scene_index=0)
    assert (closer.scenes[0].shot, closer.scenes[0].lens) == ("close-up", "85mm")
    assert closer.scenes[0].prompt.startswith("close-up, ") and "85mm lens" in closer.scenes[0].prompt
    assert "24mm lens" not in closer.scenes[0].prompt

    extreme = refine_outline(outline, "an extreme close-up", scene_index=0)
    assert extreme.scenes[0].shot == "extreme close-up"  # not read a second time as "close-up"

    wide = refine_outline(closer, "pull back to a wide", scene_index=0)
    assert (wide.scenes[0].shot, wide.scenes[0].lens) == ("wide", "24mm")


def test_slower_and_faster_change_durations(outline):
    slower = refine_outline(outline, "slower")
    assert all(
        b.duration_seconds > a.duration_seconds for a, b in zip(outline.scenes, slower.scenes, strict=True)
    )
    faster = refine_outline(outline, "faster", scene_index=1)
    assert faster.scenes[1].duration_seconds < outline.scenes[1].duration_seconds
    assert faster.scenes[1].transition == "cut"
    shortest = replace(outline, scenes=(replace(outline.scenes[0], duration_seconds=1), *outline.scenes[1:]))
    assert refine_outline(shortest, "faster", scene_index=0).scenes[0].duration_seconds == 1


def test_darker_and_brighter_set_the_key_of_the_light(outline):
    darker = refine_outline(outline, "darker", scene_index=0)
    assert darker.scenes[0].lighting.startswith("low-key ")
    assert darker.scenes[0].time_of_day == outline.scenes[0].time_of_day
    brighter = refine_outline(darker, "brighter", scene_index=0)
    assert brighter.scenes[0].lighting.startswith("high-key ")
    assert "low-key" not in brighter.scenes[0].prompt


def test_several_directives_in_one_note(outline):
    scene = refine_outline(outline, "scene 2: dawn, handheld, dissolve and no rain").scenes[1]
    assert (scene.time_of_day, scene.camera, scene.transition, scene.weather) == (
        "dawn",
        "handheld",
        "dissolve",
        "clear",
    )
    assert "raging storm" not in scene.prompt and "handheld camera" in scene.prompt


def test_a_note_on_a_model_written_prompt_adds_what_it_cannot_swap(outline):
    free = replace(
        outline.scenes[0],
        prompt="Elias, old lighthouse keeper, looks out to sea",
        lighting="cold lantern glow",
    )
    outline = replace(outline, scenes=(free, *outline.scenes[1:]))

    scene = refine_outline(outline, "night, darker", scene_index=0).scenes[0]

    assert (
        scene.prompt
        == "Elias, old lighthouse keeper, looks out to sea, at night, low-key moonlight and warm practical lamps, deep shadows, flashes of lightning, churning clouds"
    )


def test_refining_is_deterministic(outline):
    assert refine_outline(outline, "night and slower") == refine_outline(outline, "night and slower")


def test_words_it_does_not_understand_are_added_to_the_action(outline):
    refined = refine_outline(outline, "add a dragon circling the tower", scene_index=1)

    assert changed(outline, refined) == [1]
    scene = refined.scenes[1]
    assert scene.action == outline.scenes[1].action + " Add a dragon circling the tower."
    assert scene.prompt == outline.scenes[1].prompt  # nothing it could swap


def test_a_note_mixing_directives_and_free_words_applies_both_and_keeps_the_words(outline):
    refined = refine_outline(outline, "make scene 3 a night shot where Elias lights a lantern")

    scene = refined.scenes[2]
    assert scene.time_of_day == "night"
    assert scene.action.endswith(" Make a night shot where Elias lights a lantern.")
    # Parts that are only directives or filler are applied, not copied into the action.
    plain = refine_outline(outline, "scene 3: night, and please make it handheld")
    assert plain.scenes[2].action == outline.scenes[2].action


def test_a_note_that_asks_for_nothing_says_what_the_built_in_expander_understands(outline):
    with pytest.raises(OutlineError) as caught:
        refine_outline(outline, "make it so, please")
    assert caught.value.code == OutlineErrorCode.UNKNOWN_NOTE
    assert "asks for nothing the built-in expander can change" in caught.value.message
    assert "It understands: night, day, dawn" in caught.value.message
    assert "slower, faster" in caught.value.message and "rain" in caught.value.message


def test_golden_hour_sets_the_time_its_light_and_the_prompt_words(outline):
    assert outline.scenes[0].time_of_day == "day" and "in daylight" in outline.scenes[0].prompt

    scene = refine_outline(outline, "golden hour", scene_index=0).scenes[0]

    assert scene.time_of_day == "golden hour"
    assert scene.lighting.startswith("warm low golden sun, long shadows")
    assert "at golden hour" in scene.prompt and "in daylight" not in scene.prompt


@pytest.mark.parametrize(
    ("note", "shot", "lens"),
    [
        ("aerial", "aerial", "14mm"),
        ("over the shoulder", "over-the-shoulder", "50mm"),
        ("a wide", "wide", "24mm"),
    ],
)
def test_shot_types(outline, note, shot, lens):
    scene = refine_outline(outline, note, scene_index=2).scenes[2]
    assert (scene.shot, scene.lens) == (shot, lens)
    assert f"{lens} lens" in scene.prompt


@pytest.mark.parametrize(
    ("note", "camera", "words"),
    [
        ("dolly in", "dolly in", "dolly in"),
        ("pan across", "pan", "slow pan"),
        ("handheld", "handheld", "handheld camera"),
    ],
)
def test_camera_moves(outline, note, camera, words):
    scene = refine_outline(outline, note, scene_index=3).scenes[3]
    assert scene.camera == camera and words in scene.prompt


def test_mood_words_set_the_mood_and_its_prompt_words(outline):
    scene = refine_outline(outline, "more eerie", scene_index=0).scenes[0]
    assert scene.mood == "eerie"
    assert "eerie mood" in scene.prompt and f"{outline.scenes[0].mood} mood" not in scene.prompt


def test_a_duration_in_seconds_and_shorter(outline):
    assert refine_outline(outline, "make it 5 seconds", scene_index=1).scenes[1].duration_seconds == 5
    assert refine_outline(outline, "a 12-second shot", scene_index=1).scenes[1].duration_seconds == 12
    shorter = refine_outline(outline, "shorter")
    assert all(
        b.duration_seconds < a.duration_seconds or a.duration_seconds == 1
        for a, b in zip(outline.scenes, shorter.scenes, strict=True)
    )
    with pytest.raises(OutlineError, match="A scene runs 1 to 60 seconds; the note asks for 90"):
        refine_outline(outline, "make it 90 seconds")


def test_an_outline_of_any_length_can_be_refined(outline):
    # A brief may hold more scenes than an outline would; a refine touches only the ones it names.
    long = replace(outline, scenes=outline.scenes * 2)
    refined = refine_outline(long, "scene 9: add fireflies")
    assert changed(long, refined) == [8]


def test_what_changed_is_said_in_words(outline):
    refined = refine_outline(outline, "make scene 3 a night shot, add a lantern")
    said = outline_changes(outline, refined)
    assert len(said) == 1 and said[0].startswith("Scene 3: time of day ")
    assert "→ night" in said[0] and "prompt rewritten" in said[0]
    assert "added to the action: 'Add a lantern.'" in said[0]
    assert outline_changes(outline, outline) == ["Nothing changed: the scenes already were as the note asks."]
    shorter = replace(outline, scenes=outline.scenes[:3])
    assert (
        outline_changes(outline, shorter)[-1]
        == "Scenes 4 to 5 stay as they were: the new outline has 3 scenes."
    )


@pytest.mark.parametrize(
    ("note", "scene_index", "message"),
    [
        ("", None, "The note is empty"),
        ("night and day", None, "The note asks for both night and day"),
        ("night", 5, "There is no scene 5: the outline has scenes 0 to 4"),
        ("scene 9 at night", None, "The note names scene 9, but the outline has 5 scenes"),
        ("scene 2 at night", 3, "The note names scene 2, but scene 4 was chosen"),
        ("night " * 200, None, "at most 1000"),
    ],
)
def test_bad_notes_are_clear_errors(outline, note, scene_index, message):
    with pytest.raises(OutlineError) as caught:
        refine_outline(outline, note, scene_index=scene_index)
    assert caught.value.code == OutlineErrorCode.INVALID_INPUT
    assert message in caught.value.message


def test_reading_a_note():
    assert read_note("Make scene 3 a slower, darker night shot") == NoteReading(
        {"time": "night", "pace": "slower", "light": "low-key"}, 2, ()
    )
    assert read_note("stop the rain").asked == {"weather": "clear"}
    assert read_note("golden hour please").asked == {"time": "golden hour"}
    assert read_note("night, Elias and Mara argue by the lamp").kept == ("Elias and Mara argue by the lamp",)


def test_the_built_in_expander_refines_the_same_way(outline):
    assert BuiltinExpander().refine(outline, "night", scene_index=1) == refine_outline(
        outline, "night", scene_index=1
    )

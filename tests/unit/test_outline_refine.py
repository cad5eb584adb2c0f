"""Refining an outline from a note with the built-in expander: one scene or all, a fixed vocabulary."""

from dataclasses import replace

import pytest

from briefs.outline import OutlineError, OutlineErrorCode, expand_idea, refine_outline
from briefs.outline.builtin import BuiltinExpander, read_note

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


def test_an_unknown_note_says_what_the_built_in_expander_understands(outline):
    with pytest.raises(OutlineError) as caught:
        refine_outline(outline, "add a dragon")
    assert caught.value.code == OutlineErrorCode.UNKNOWN_NOTE
    assert "does not understand the note 'add a dragon'" in caught.value.message
    assert "It understands: night, day, dawn" in caught.value.message
    assert "slower, faster" in caught.value.message and "rain" in caught.value.message


@pytest.mark.parametrize(
    ("note", "scene_index", "message"),
    [
        ("", None, "The note is empty"),
        ("night and day", None, "The note asks for both night and day"),
        ("night", 5, "There is no scene 5: the outline has scenes 0 to 4"),
        ("scene 9 at night", None, "The note names scene 9, but the outline has 5 scenes"),
        ("scene 2 at night", 3, "The note names scene 2, but scene 4 was chosen"),
        ("night " * 100, None, "at most 500"),
    ],
)
def test_bad_notes_are_clear_errors(outline, note, scene_index, message):
    with pytest.raises(OutlineError) as caught:
        refine_outline(outline, note, scene_index=scene_index)
    assert caught.value.code == OutlineErrorCode.INVALID_INPUT
    assert message in caught.value.message


def test_reading_a_note():
    assert read_note("Make scene 3 a slower, darker night shot") == (
        {"time": "night", "pace": "slower", "light": "low-key"},
        2,
    )
    assert read_note("stop the rain")[0] == {"weather": "clear"}
    assert read_note("golden hour please")[0] == {"time": "golden hour"}


def test_the_built_in_expander_refines_the_same_way(outline):
    assert BuiltinExpander().refine(outline, "night", scene_index=1) == refine_outline(
        outline, "night", scene_index=1
    )

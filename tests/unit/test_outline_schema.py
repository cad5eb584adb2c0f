"""The outline's schema and `outline_from_json`: each problem is named with its JSON path."""

import copy

import pytest

from briefs.outline import (
    OutlineError,
    OutlineErrorCode,
    expand_idea,
    outline_from_json,
    outline_to_json,
)
from briefs.outline.model import PROMPT_MAX, SHOT_TYPES

IDEA = "Mara, a young fisherwoman in a yellow raincoat, finds a map in the attic and sails to the island with her brother Tomas."


@pytest.fixture(scope="module")
def valid() -> dict:
    return outline_to_json(expand_idea(IDEA))


def problems_of(data: object) -> tuple[str, ...]:
    with pytest.raises(OutlineError) as caught:
        outline_from_json(data)
    assert caught.value.code == OutlineErrorCode.INVALID_OUTLINE
    return caught.value.problems


def test_a_valid_outline_round_trips(valid):
    outline = outline_from_json(valid)
    assert outline_to_json(outline) == valid
    assert outline.bible.character("Mara").anchors == ("young fisherwoman", "yellow raincoat")


def test_each_problem_is_listed_with_its_json_path(valid):
    data = copy.deepcopy(valid)
    data["scenes"][2]["shot"] = "drone"
    data["scenes"][0]["duration_seconds"] = 0
    del data["bible"]["setting"]
    data["scenes"][4]["prompt"] = "x" * (PROMPT_MAX + 1)
    data["logline"] = "   "
    data["extra"] = True

    found = problems_of(data)

    assert "$.scenes[2].shot: 'drone' is not one of: " + ", ".join(SHOT_TYPES) in found
    assert "$.scenes[0].duration_seconds: is 0; the minimum is 1" in found
    assert "$.bible: is missing 'setting'" in found
    assert f"$.scenes[4].prompt: is {PROMPT_MAX + 1} characters long; at most {PROMPT_MAX}" in found
    assert "$.logline: is empty" in found
    assert "$: has unknown fields 'extra'" in found


def test_too_few_or_too_many_scenes_are_refused(valid):
    few = copy.deepcopy(valid)
    few["scenes"] = few["scenes"][:4]
    assert problems_of(few) == ("$.scenes: has 4 items; at least 5",)
    many = copy.deepcopy(valid)
    many["scenes"] = many["scenes"] * 2
    assert problems_of(many)[0].startswith("$.scenes: has 10 items; at most 8")


def test_a_scene_may_name_only_characters_of_the_bible(valid):
    data = copy.deepcopy(valid)
    data["scenes"][1]["characters"] = ["Mara", "Nobody", "Mara"]

    assert problems_of(data) == (
        "$.scenes[1].characters[1]: 'Nobody' is not a character of the story bible",
        "$.scenes[1].characters[2]: 'Mara' is listed twice",
    )


def test_a_scene_prompt_carries_the_anchors_of_its_characters(valid):
    data = copy.deepcopy(valid)
    scene = next(i for i, s in enumerate(data["scenes"]) if "Mara" in s["characters"])
    data["scenes"][scene]["prompt"] = "a boat on the sea"

    assert problems_of(data) == (
        f"$.scenes[{scene}].prompt: lacks 'young fisherwoman', an anchor of Mara, who is in the scene",
        f"$.scenes[{scene}].prompt: lacks 'yellow raincoat', an anchor of Mara, who is in the scene",
    )


def test_character_names_are_unique(valid):
    data = copy.deepcopy(valid)
    data["bible"]["characters"].append(copy.deepcopy(data["bible"]["characters"][0]) | {"name": "MARA"})
    assert problems_of(data) == ("$.bible.characters[2].name: 'MARA' is named twice",)


def test_something_that_is_not_an_object_is_refused():
    assert problems_of([1, 2]) == ("$: should be an object, not [1, 2]",)
    assert problems_of(None) == ("$: should be an object, not None",)


def test_the_error_message_lists_the_problems(valid):
    data = copy.deepcopy(valid)
    data["aspect"] = "3:1"
    with pytest.raises(OutlineError) as caught:
        outline_from_json(data)
    assert str(caught.value).splitlines() == [
        "The outline does not match the schema.",
        "- $.aspect: '3:1' is not one of: 16:9, 9:16, 1:1, 4:5, 4:3, 21:9, 2.39:1",
    ]

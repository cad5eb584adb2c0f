"""The built-in expander: any idea with words in it becomes a valid outline, the same every time."""

import re

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from briefs.outline import (
    ASPECTS,
    BUILTIN_NAME,
    BuiltinExpander,
    OutlineError,
    OutlineErrorCode,
    expand_idea,
    expander_from_config,
    outline_to_json,
)
from briefs.outline.model import IDEA_MAX_CHARS, outline_problems
from briefs.outline.reading import (
    GENRE_CUES,
    MOOD_CUES,
    PLACE_NOUNS,
    ROLE_NOUNS,
    STARTERS,
    TIME_CUES,
    TITLES,
    WEATHER_CUES,
    normalise,
    read_idea,
)

PLACEHOLDER = re.compile(
    r"\bscene \d+\b|lorem|ipsum|placeholder|\btodo\b|\btbd\b|untitled|\{\w*\}", re.IGNORECASE
)
ORDINARY = (
    STARTERS
    | ROLE_NOUNS
    | PLACE_NOUNS
    | TITLES
    | set(TIME_CUES)
    | set(WEATHER_CUES)
    | set(MOOD_CUES)
    | set(GENRE_CUES)
)

# Words as the expander reads them: a list marker alone ("0)") is none.
ideas = st.text(min_size=1, max_size=600).filter(lambda text: any(ch.isalnum() for ch in normalise(text)))
names = st.from_regex(r"[A-Z][a-z]{3,9}", fullmatch=True).filter(lambda name: name.casefold() not in ORDINARY)
roles = st.sampled_from(
    ["lighthouse keeper", "retired detective", "young pilot", "baker", "old sailor", "robot"]
)
places = st.sampled_from(
    ["in a small fishing village", "on the night train", "at the harbour", "in the desert"]
)
verbs = st.sampled_from(["finds a map", "loses a letter", "hears a song", "chases a shadow", "builds a boat"])


@st.composite
def ideas_with_names(draw: st.DrawFn) -> tuple[str, list[str]]:
    """An idea in the ways people name characters: "a <role> named X", "X, a <role>,", "X <verb>"."""
    people = draw(st.lists(names, min_size=1, max_size=3, unique_by=str.casefold))
    assume(len({p[:4].casefold() for p in people}) == len(people))
    forms = [
        "A {role} named {name} {verb} {place}.",
        "{name}, a {role}, {verb} {place}.",
        "One day {name} {verb} {place}.",
        "Then {name} {verb}.",
    ]
    sentences = [
        draw(st.sampled_from(forms)).format(name=name, role=draw(roles), verb=draw(verbs), place=draw(places))
        for name in people
    ]
    return " ".join(sentences), people


def text_of(outline_json: dict) -> list[str]:
    texts = [outline_json["title"], outline_json["logline"], outline_json["bible"]["setting"]]
    for scene in outline_json["scenes"]:
        texts += [scene["title"], scene["action"], scene["prompt"], scene["lighting"], scene["mood"]]
    return texts


@settings(deadline=None, max_examples=150)
@given(ideas)
def test_any_idea_with_words_becomes_a_valid_outline_the_same_every_time(idea):
    outline = expand_idea(idea)
    data = outline_to_json(outline)

    assert outline_problems(data) == []
    assert 5 <= len(outline.scenes) <= 8
    assert expand_idea(idea) == outline
    # Placeholder words or template slots appear only where the idea itself has them.
    assert [
        m for text in text_of(data) for m in PLACEHOLDER.findall(text) if m.casefold() not in idea.casefold()
    ] == []
    assert all(a.shot != b.shot for a, b in zip(outline.scenes, outline.scenes[1:], strict=False))
    assert len({s.shot for s in outline.scenes}) >= 3
    assert len({s.camera for s in outline.scenes}) >= 3


@settings(deadline=None, max_examples=150)
@given(ideas, st.data())
def test_durations_sum_to_the_target_and_the_scene_count_is_kept(idea, data):
    scenes = data.draw(st.none() | st.integers(5, 8))
    low, high = (scenes, scenes * 60) if scenes else (5, 480)
    target = data.draw(st.integers(low, high))
    aspect = data.draw(st.sampled_from(ASPECTS))

    outline = expand_idea(idea, scenes=scenes, target_seconds=target, aspect=aspect)

    assert outline.duration_seconds == target
    assert all(1 <= s.duration_seconds <= 60 for s in outline.scenes)
    assert len(outline.scenes) == (scenes or len(outline.scenes))
    assert outline.aspect == aspect


@settings(deadline=None, max_examples=150)
@given(ideas)
def test_every_character_found_in_the_idea_is_in_the_bible(idea):
    found = {member.name for member in read_idea(idea).cast}
    bible = {character.name for character in expand_idea(idea).bible.characters}
    assert found <= bible


@settings(deadline=None, max_examples=150)
@given(ideas_with_names())
def test_characters_named_in_the_idea_are_found_and_cast(named):
    idea, people = named
    outline = expand_idea(idea)
    bible = {c.name for c in outline.bible.characters}
    assert set(people) <= bible, idea
    appearing = {name for scene in outline.scenes for name in scene.characters}
    assert set(people) <= appearing, idea


def test_an_idea_becomes_an_outline_in_its_own_words():
    idea = (
        "Mara, a young fisherwoman in a yellow raincoat, finds a message in a bottle on the beach at dawn. "
        "She sails to the island with her brother Tomas. A storm hits when they reach the reef, "
        "but they survive and return home at sunset."
    )
    outline = expand_idea(idea)

    mara, tomas = outline.bible.characters
    assert (mara.name, mara.anchors) == ("Mara", ("young fisherwoman", "yellow raincoat"))
    assert "yellow raincoat" in mara.look
    assert (tomas.name, tomas.anchors) == ("Tomas", ("brother",))
    assert outline.bible.setting.startswith("The beach, the island")
    assert "yellow" in outline.bible.style.palette
    assert len(outline.scenes) == 7  # five clauses, an opening image and one beat more
    assert outline.scenes[0].characters == ()  # an opening image of the place
    assert outline.scenes[1].action.startswith(
        "Mara, a young fisherwoman in a yellow raincoat, finds a message"
    )
    assert outline.scenes[1].time_of_day == "dawn"
    assert any(s.weather == "storm" and "A storm hits" in s.action for s in outline.scenes)
    assert outline.scenes[-1].action == "Mara and Tomas survive and return home at sunset."
    assert outline.scenes[-1].time_of_day == "golden hour"
    assert outline.scenes[-1].transition == "fade"
    for scene in outline.scenes:
        for name in scene.characters:
            assert all(anchor in scene.prompt for anchor in outline.bible.character(name).anchors)


def test_roles_without_names_become_characters_and_places_do_not():
    outline = expand_idea(
        "In Lisbon, a retired detective with silver hair hunts a thief across the rooftops at night."
    )
    assert [c.name for c in outline.bible.characters] == ["The Detective", "The Thief"]
    assert outline.bible.character("The Detective").anchors == ("retired detective", "silver hair")
    assert outline.bible.setting == "Lisbon, the rooftops"
    assert {s.time_of_day for s in outline.scenes} == {"night"}
    assert "film noir" in outline.bible.style.notes


def test_a_short_idea_is_told_from_setup_to_resolution():
    outline = expand_idea("An old lighthouse keeper named Elias spots a ship in distress during a storm.")
    titles = [s.title for s in outline.scenes]
    assert len(titles) == 5 and len(set(titles)) == 5
    assert outline.scenes[1].title == "Elias spots a ship in distress"
    assert outline.bible.characters[0].anchors == ("old lighthouse keeper",)
    assert outline.scenes[0].shot in ("wide", "establishing", "full")
    assert outline.scenes[-1].transition == "fade"


def test_with_no_time_of_day_in_the_idea_the_day_moves_on():
    outline = expand_idea("A robot learns to paint.")
    assert [s.time_of_day for s in outline.scenes] == ["day", "day", "golden hour", "night", "dawn"]
    assert outline.bible.characters[0].name == "The Robot"


def test_a_tall_frame_gets_no_wide_landscapes():
    outline = expand_idea("A caravan crosses the desert to reach the oasis city.", aspect="9:16", scenes=8)
    assert not {"wide", "aerial"} & {s.shot for s in outline.scenes}
    assert all("vertical 9:16 frame" in s.prompt for s in outline.scenes)


@pytest.mark.parametrize(
    ("idea", "kwargs", "message"),
    [
        ("", {}, "The idea is empty"),
        ("   \n\t", {}, "The idea is empty"),
        ("?! … —", {}, "The idea has no words in it"),
        ("0)\x1b", {}, "The idea has no words in it"),
        ("word " * (IDEA_MAX_CHARS // 4), {}, f"at most {IDEA_MAX_CHARS}"),
        ("A fox.", {"scenes": 4}, "The number of scenes must be 5 to 8, not 4"),
        ("A fox.", {"scenes": True}, "The number of scenes must be 5 to 8"),
        ("A fox.", {"target_seconds": 4}, "The target length must be 5 to 480 seconds, not 4"),
        (
            "A fox.",
            {"scenes": 5, "target_seconds": 301},
            "5 scenes of 1 to 60 seconds cannot last 301 seconds",
        ),
        ("A fox.", {"aspect": "3:1"}, "The aspect ratio must be one of 16:9"),
    ],
)
def test_bad_input_is_a_clear_error(idea, kwargs, message):
    with pytest.raises(OutlineError) as caught:
        expand_idea(idea, **kwargs)
    assert caught.value.code == OutlineErrorCode.INVALID_INPUT
    assert message in caught.value.message


def test_with_no_endpoint_configured_the_built_in_expander_does_the_job():
    expander = expander_from_config("", "", "", 30)
    assert isinstance(expander, BuiltinExpander)
    assert expander.name == BUILTIN_NAME == "built-in"
    assert expander.expand("A fox steals the moon.", scenes=6) == expand_idea(
        "A fox steals the moon.", scenes=6
    )

"""Prompt composition (briefs.composition): the same rule for every shot, so characters and style
stay consistent. Properties over any bible, cast and shot: every character reaches the prompt with
their fixed words, no enhancer is lost, the style's negative terms reach the negative prompt, and
the same inputs always give the same words."""

from hypothesis import given, settings
from hypothesis import strategies as st

from briefs.composition import (
    CAMERA_PHRASES,
    SHOT_PHRASES,
    CharacterSpec,
    ShotSpec,
    StyleSpec,
    character_phrase,
    compose,
)

# Words as writers type them: letters, digits and the punctuation prompts use, never only spaces.
words = st.text(
    alphabet=st.characters(whitelist_categories=("L", "N"), whitelist_characters=" -'.:,"),
    min_size=1,
    max_size=40,
).filter(lambda text: text.strip(" -'.:,"))
maybe = st.one_of(st.just(""), words)
characters = st.lists(
    st.builds(CharacterSpec, name=words, description=maybe, look=maybe, prompt_words=maybe),
    max_size=4,
    unique_by=lambda c: c.name.strip().lower(),
)
shots = st.builds(
    ShotSpec,
    shot_type=st.sampled_from(sorted(SHOT_PHRASES)),
    camera_move=st.sampled_from(sorted(CAMERA_PHRASES)),
    lens=maybe,
    lighting=maybe,
    mood=maybe,
)
styles = st.builds(StyleSpec, notes=maybe, palette=maybe, negative_terms=maybe)


def _norm(text: str) -> str:
    return " ".join(text.split()).lower()


@settings(max_examples=300, deadline=None)
@given(prompt=words, negative=maybe, cast=characters, shot=shots, style=styles, setting=maybe)
def test_every_character_reaches_the_prompt_with_their_fixed_words(
    prompt, negative, cast, shot, style, setting
):
    composed = _norm(
        compose(
            prompt=prompt, negative_prompt=negative, characters=cast, shot=shot, style=style, setting=setting
        ).prompt
    )
    for character in cast:
        assert _norm(character.name.strip(" ,")) in composed
        if character.prompt_words.strip(" ,"):
            assert _norm(character.prompt_words.strip(" ,")) in composed


@settings(max_examples=300, deadline=None)
@given(prompt=words, negative=maybe, cast=characters, shot=shots, style=styles, setting=maybe)
def test_no_enhancer_and_no_part_of_the_bible_is_lost(prompt, negative, cast, shot, style, setting):
    result = compose(
        prompt=prompt, negative_prompt=negative, characters=cast, shot=shot, style=style, setting=setting
    )
    composed = _norm(result.prompt)
    for given_text in (prompt, shot.lens, shot.lighting, shot.mood, style.notes, style.palette, setting):
        # Each term is said, once, where it is first given: a term two pieces share is not lost.
        for term in given_text.split(","):
            if term.strip(" ,"):
                assert _norm(term.strip(" ,")) in composed
    if shot.shot_type:
        assert SHOT_PHRASES[shot.shot_type] in composed
    if shot.camera_move:
        assert CAMERA_PHRASES[shot.camera_move] in composed
    negatives = _norm(result.negative_prompt)
    for given_text in (negative, style.negative_terms):
        for term in given_text.split(","):
            if term.strip(" ,"):
                assert _norm(term.strip(" ,")) in negatives


@settings(max_examples=200, deadline=None)
@given(prompt=words, cast=characters, shot=shots, style=styles, setting=maybe)
def test_the_same_inputs_always_give_the_same_words(prompt, cast, shot, style, setting):
    first = compose(prompt=prompt, characters=cast, shot=shot, style=style, setting=setting)
    again = compose(prompt=prompt, characters=list(cast), shot=shot, style=style, setting=setting)
    assert first == again


def test_a_shot_reads_framing_first_and_style_last():
    composed = compose(
        prompt="an old keeper climbing a spiral staircase",
        negative_prompt="text",
        characters=[
            CharacterSpec(name="Ada", look="white braid", prompt_words="old woman lighthouse keeper")
        ],
        shot=ShotSpec(
            shot_type="medium", camera_move="tracking", lens="35mm", lighting="lantern light", mood="tense"
        ),
        style=StyleSpec(
            notes="storyboard sketch", palette="slate and amber", negative_terms="blurry, watermark"
        ),
        setting="a rocky island lighthouse",
    )
    assert composed.prompt == (
        "medium shot, tracking shot, 35mm lens, an old keeper climbing a spiral staircase, "
        "Ada (old woman lighthouse keeper; white braid), a rocky island lighthouse, lantern light, "
        "tense mood, storyboard sketch, palette: slate and amber"
    )
    assert composed.negative_prompt == "text, blurry, watermark"
    assert [source for source, _ in composed.parts] == [
        "shot",
        "camera",
        "lens",
        "scene",
        "character",
        "setting",
        "lighting",
        "mood",
        "style",
        "palette",
    ]


def test_a_piece_said_twice_is_said_once():
    composed = compose(prompt="golden hour", shot=ShotSpec(lighting="Golden hour"))
    assert composed.prompt == "golden hour"


def test_a_term_the_scene_prompt_already_says_is_not_said_again():
    composed = compose(
        prompt="full shot, Mara on the beach, cinematic film still",
        characters=[CharacterSpec(name="Mara", look="red coat, grey scarf")],
        shot=ShotSpec(shot_type="full"),
        style=StyleSpec(notes="cinematic film still, 35mm grain"),
    )
    assert composed.prompt == (
        "full shot, Mara on the beach, cinematic film still, Mara (red coat, grey scarf), 35mm grain"
    )


def test_a_character_with_no_details_is_named_alone():
    assert character_phrase(CharacterSpec(name="  Tom  ")) == "Tom"

"""Prompt composition: the story bible, a scene's cast, its shot and its own prompt become the prompt
and negative prompt that are rendered, the same way for every shot, so that characters and style
stay consistent from frame to frame.

Pure: no Django. The editor shows what `compose` returns on each card before a render, and the job
stores it as what was sent, so a take can always say exactly which words made it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

# Said once, in this order, as a shot list would: framing, then movement, then glass.
SHOT_PHRASES = {
    "": "",
    "establishing": "establishing shot",
    "aerial": "aerial shot",
    "extreme-wide": "extreme wide shot",
    "wide": "wide shot",
    "full": "full shot",
    "medium": "medium shot",
    "medium-close-up": "medium close-up",
    "close-up": "close-up",
    "extreme-close-up": "extreme close-up",
    "over-the-shoulder": "over-the-shoulder shot",
    "point-of-view": "point-of-view shot",
    "insert": "insert shot",
    "two-shot": "two-shot",
}
CAMERA_PHRASES = {
    "": "",
    "static": "static camera",
    "pan": "camera pans",
    "tilt": "camera tilts",
    "dolly-in": "slow dolly in",
    "dolly-out": "dolly out",
    "tracking": "tracking shot",
    "crane": "crane shot",
    "handheld": "handheld camera",
    "zoom": "slow zoom",
    "orbit": "camera orbits the subject",
}


@dataclass(frozen=True)
class CharacterSpec:
    name: str
    description: str = ""
    look: str = ""
    # The words that must appear whenever the character is in a shot (a costume, a face, a token a
    # LoRA was trained on): what keeps them the same person from shot to shot.
    prompt_words: str = ""


@dataclass(frozen=True)
class StyleSpec:
    notes: str = ""
    palette: str = ""
    negative_terms: str = ""


@dataclass(frozen=True)
class ShotSpec:
    shot_type: str = ""
    camera_move: str = ""
    lens: str = ""
    lighting: str = ""
    mood: str = ""


@dataclass(frozen=True)
class ComposedPrompt:
    prompt: str
    negative_prompt: str
    # Which part of the prompt came from where, for the card's "why these words" view.
    parts: tuple[tuple[str, str], ...] = field(default=())


NO_SHOT = ShotSpec()
NO_STYLE = StyleSpec()


def _clean(text: str) -> str:
    """One line, single spaces, no dangling commas: the pieces are joined with ", "."""
    return re.sub(r"\s+", " ", text).strip().strip(",").strip()


def _terms(text: str) -> list[str]:
    """A piece's comma-separated terms; commas inside parentheses (a character's details) stay."""
    terms, depth, start = [], 0, 0
    for at, char in enumerate(text):
        if char == "(":
            depth += 1
        elif char == ")":
            depth = max(0, depth - 1)
        elif char == "," and depth == 0:
            terms.append(text[start:at])
            start = at + 1
    terms.append(text[start:])
    return [term for term in (_clean(t) for t in terms) if term]


def _unique(pieces: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The pieces with every term said once, where it is first said: a scene prompt that already
    names its framing or the brief's style does not get them twice."""
    seen: set[str] = set()
    kept = []
    for source, text in pieces:
        fresh = []
        # A character is one term, whatever their name holds: they are never cut in two.
        for term in [_clean(text)] if source == "character" else _terms(_clean(text)):
            if term.lower() not in seen:
                seen.add(term.lower())
                fresh.append(term)
        if fresh and fresh != [""]:
            kept.append((source, ", ".join(fresh)))
    return kept


def character_phrase(character: CharacterSpec) -> str:
    """How a character is named in a prompt: their name, then their fixed words, then their look."""
    details = [d for d in (_clean(character.prompt_words), _clean(character.look)) if d]
    name = _clean(character.name)
    return f"{name} ({'; '.join(details)})" if details else name


def compose(
    *,
    prompt: str,
    negative_prompt: str = "",
    characters: Sequence[CharacterSpec] = (),
    shot: ShotSpec = NO_SHOT,
    style: StyleSpec = NO_STYLE,
    setting: str = "",
) -> ComposedPrompt:
    """The prompt and negative prompt a scene renders with.

    Order: framing and camera first (models weigh early words most), then what the scene shows, who
    is in it, where, the light and mood, and the brief's style last. A piece already said is not
    said twice; nothing given is ever dropped.
    """
    pieces = _unique(
        [
            ("shot", SHOT_PHRASES.get(shot.shot_type, shot.shot_type.replace("-", " "))),
            ("camera", CAMERA_PHRASES.get(shot.camera_move, shot.camera_move.replace("-", " "))),
            (
                "lens",
                f"{_clean(shot.lens)} lens"
                if _clean(shot.lens) and "lens" not in shot.lens.lower()
                else shot.lens,
            ),
            ("scene", prompt),
            *(("character", character_phrase(c)) for c in characters),
            ("setting", setting),
            ("lighting", shot.lighting),
            (
                "mood",
                f"{_clean(shot.mood)} mood"
                if _clean(shot.mood) and "mood" not in shot.mood.lower()
                else shot.mood,
            ),
            ("style", style.notes),
            ("palette", f"palette: {_clean(style.palette)}" if _clean(style.palette) else ""),
        ]
    )
    negatives = _unique([("scene", negative_prompt), ("style", style.negative_terms)])
    return ComposedPrompt(
        prompt=", ".join(text for _, text in pieces),
        negative_prompt=", ".join(text for _, text in negatives),
        parts=tuple(pieces),
    )

"""Outline expansion: an idea becomes a logline, a story bible and 5 to 8 scenes.

Pure core (no Django): the outline and its schema (`model`).
"""

from briefs.outline.model import (
    ASPECTS,
    CAMERA_MOVES,
    LENSES,
    OUTLINE_SCHEMA,
    SHOT_TYPES,
    TIMES_OF_DAY,
    TRANSITIONS,
    WEATHER,
    Character,
    Expander,
    Outline,
    OutlineError,
    OutlineErrorCode,
    Scene,
    StoryBible,
    Style,
    outline_from_json,
    outline_to_json,
)

__all__ = [
    "ASPECTS",
    "CAMERA_MOVES",
    "LENSES",
    "OUTLINE_SCHEMA",
    "SHOT_TYPES",
    "TIMES_OF_DAY",
    "TRANSITIONS",
    "WEATHER",
    "Character",
    "Expander",
    "Outline",
    "OutlineError",
    "OutlineErrorCode",
    "Scene",
    "StoryBible",
    "Style",
    "outline_from_json",
    "outline_to_json",
]

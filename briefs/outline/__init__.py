"""Outline expansion: an idea becomes a logline, a story bible and 5 to 8 scenes.

Pure core (no Django): the outline and its schema (`model`), the built-in deterministic expander
(`reading`, `builtin`) and the expander that asks a model behind an OpenAI-compatible endpoint
(`llm`), and what a refine changed, in words (`changes`). `expander_from_config` picks one from settings; every expander has a `name` that says
which did the work.
"""

from briefs.outline.builtin import BUILTIN_NAME, BuiltinExpander, expand_idea, refine_outline, scene_named_in
from briefs.outline.changes import outline_changes
from briefs.outline.llm import LlmExpander, expander_from_config
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
    "BUILTIN_NAME",
    "CAMERA_MOVES",
    "LENSES",
    "OUTLINE_SCHEMA",
    "SHOT_TYPES",
    "TIMES_OF_DAY",
    "TRANSITIONS",
    "WEATHER",
    "BuiltinExpander",
    "Character",
    "Expander",
    "LlmExpander",
    "Outline",
    "OutlineError",
    "OutlineErrorCode",
    "Scene",
    "StoryBible",
    "Style",
    "expand_idea",
    "expander_from_config",
    "outline_changes",
    "outline_from_json",
    "outline_to_json",
    "refine_outline",
    "scene_named_in",
]

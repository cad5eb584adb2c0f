"""An outline: what an idea becomes before it is a brief. Typed, bounded, and checked by one schema.

`OUTLINE_SCHEMA` is the contract for every source of outlines (the built-in expander, a model behind
a chat-completions endpoint, a saved copy); `outline_from_json` is the one way in from JSON.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Protocol

from jsonschema import Draft202012Validator, ValidationError

SHOT_TYPES = (
    "establishing",
    "aerial",
    "wide",
    "full",
    "medium",
    "medium close-up",
    "close-up",
    "extreme close-up",
    "over-the-shoulder",
    "two-shot",
    "point-of-view",
    "insert",
)
CAMERA_MOVES = (
    "static",
    "pan",
    "tilt up",
    "tilt down",
    "dolly in",
    "dolly out",
    "tracking",
    "crane up",
    "crane down",
    "handheld",
    "orbit",
    "zoom in",
    "zoom out",
)
LENSES = ("14mm", "24mm", "35mm", "50mm", "85mm", "100mm macro", "135mm")
TIMES_OF_DAY = ("dawn", "morning", "day", "golden hour", "dusk", "night")
WEATHER = ("clear", "overcast", "rain", "storm", "snow", "fog")
# How a scene gives way to the next one; the last scene's is how the film ends.
TRANSITIONS = ("cut", "dissolve", "fade")
ASPECTS = ("16:9", "9:16", "1:1", "4:5", "4:3", "21:9", "2.39:1")

MIN_SCENES = 5
MAX_SCENES = 8
MAX_CHARACTERS = 8
MIN_SCENE_SECONDS = 1
MAX_SCENE_SECONDS = 60
MIN_TARGET_SECONDS = MIN_SCENES * MIN_SCENE_SECONDS
MAX_TARGET_SECONDS = MAX_SCENES * MAX_SCENE_SECONDS
IDEA_MAX_CHARS = 4000
NOTE_MAX_CHARS = 1000

# Longest text per field, in characters.
TITLE_MAX = 120
LOGLINE_MAX = 400
SETTING_MAX = 300
NAME_MAX = 60
DESCRIPTION_MAX = 300
ANCHOR_MAX = 60
MAX_ANCHORS = 4
STYLE_NOTES_MAX = 300
PALETTE_ITEM_MAX = 40
MAX_PALETTE = 8
NEGATIVE_ITEM_MAX = 60
MAX_NEGATIVE = 16
SCENE_TITLE_MAX = 100
ACTION_MAX = 600
PROMPT_MAX = 1000
LIGHTING_MAX = 160
MOOD_MAX = 80


class OutlineErrorCode(enum.StrEnum):
    """Why an outline could not be made or changed; the message says it in words."""

    INVALID_INPUT = "invalid_input"  # the idea, note, scene number or options
    UNKNOWN_NOTE = "unknown_note"  # the built-in expander does not understand the note
    INVALID_OUTLINE = "invalid_outline"  # an outline that does not match the schema
    INVALID_ANSWER = "invalid_answer"  # the model's answer never matched, even after the repair round
    CONFIG = "config"  # the endpoint's settings are unusable
    UNREACHABLE = "unreachable"
    TIMEOUT = "timeout"
    AUTH = "auth"
    RATE_LIMITED = "rate_limited"
    REFUSED = "refused"  # the endpoint refused the request (4xx) or the model declined
    SERVER_ERROR = "server_error"


class OutlineError(Exception):
    """An outline could not be made or changed. `message` is for a person; `problems` lists each
    mismatch (with its JSON path) when the cause was an outline that does not match the schema."""

    def __init__(self, code: OutlineErrorCode, message: str, problems: tuple[str, ...] = ()) -> None:
        self.code = code
        self.message = message
        self.problems = problems
        super().__init__(message if not problems else message + "\n" + "\n".join(f"- {p}" for p in problems))


@dataclass(frozen=True)
class Character:
    name: str
    description: str
    look: str
    # Words that go into the prompt of every shot this character is in, so renders keep them alike.
    anchors: tuple[str, ...]


@dataclass(frozen=True)
class Style:
    notes: str
    palette: tuple[str, ...]
    negative: tuple[str, ...]


@dataclass(frozen=True)
class StoryBible:
    characters: tuple[Character, ...]
    style: Style
    setting: str

    def character(self, name: str) -> Character:
        return next(c for c in self.characters if c.name == name)


@dataclass(frozen=True)
class Scene:
    title: str
    action: str
    prompt: str
    shot: str
    camera: str
    lens: str
    lighting: str
    mood: str
    time_of_day: str
    weather: str
    duration_seconds: int
    transition: str
    characters: tuple[str, ...]


@dataclass(frozen=True)
class Outline:
    title: str
    logline: str
    aspect: str
    bible: StoryBible
    scenes: tuple[Scene, ...]

    @property
    def duration_seconds(self) -> int:
        return sum(scene.duration_seconds for scene in self.scenes)


class Expander(Protocol):
    """What turns an idea into an outline and rewrites one from a note. `name` says which one did
    the work ("built-in", or the model's name) so the page can tell the user."""

    @property
    def name(self) -> str: ...

    def expand(
        self,
        idea: str,
        *,
        scenes: int | None = None,
        target_seconds: int | None = None,
        aspect: str | None = None,
    ) -> Outline: ...

    def refine(self, outline: Outline, note: str, *, scene_index: int | None = None) -> Outline: ...


def _text(max_length: int, description: str) -> dict[str, Any]:
    # "\S": at least one character that is not a space.
    return {
        "type": "string",
        "minLength": 1,
        "maxLength": max_length,
        "pattern": r"\S",
        "description": description,
    }


def _texts(max_items: int, max_length: int, description: str, *, min_items: int = 0) -> dict[str, Any]:
    return {
        "type": "array",
        "minItems": min_items,
        "maxItems": max_items,
        "items": _text(max_length, description),
    }


def _object(properties: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "type": "object",
        "description": description,
        "additionalProperties": False,
        "required": list(properties),
        "properties": properties,
    }


def _choice(values: tuple[str, ...], description: str) -> dict[str, Any]:
    return {"type": "string", "enum": list(values), "description": description}


CHARACTER_SCHEMA = _object(
    {
        "name": _text(NAME_MAX, "How the story names this character; scenes list characters by it."),
        "description": _text(DESCRIPTION_MAX, "Who they are in the story: role, age, what they want."),
        "look": _text(DESCRIPTION_MAX, "How they look on screen: face, hair, build, clothes."),
        "anchors": _texts(
            MAX_ANCHORS,
            ANCHOR_MAX,
            "Words that must appear in the prompt of every scene this character is in.",
            min_items=1,
        ),
    },
    "One character of the story bible.",
)

SCENE_SCHEMA = _object(
    {
        "title": _text(SCENE_TITLE_MAX, "A short title for the scene."),
        "action": _text(ACTION_MAX, "What happens in the scene, in a sentence or two."),
        "prompt": _text(
            PROMPT_MAX,
            "A self-contained image-generation prompt for the scene's frame: subject, action, place, "
            "time of day, light, shot and style, including every anchor of the characters in it.",
        ),
        "shot": _choice(SHOT_TYPES, "The shot type."),
        "camera": _choice(CAMERA_MOVES, "The camera move."),
        "lens": _choice(LENSES, "The lens."),
        "lighting": _text(LIGHTING_MAX, "The lighting, in a few words."),
        "mood": _text(MOOD_MAX, "The mood, in a few words."),
        "time_of_day": _choice(TIMES_OF_DAY, "When the scene happens."),
        "weather": _choice(WEATHER, "The weather."),
        "duration_seconds": {
            "type": "integer",
            "minimum": MIN_SCENE_SECONDS,
            "maximum": MAX_SCENE_SECONDS,
            "description": "How long the scene runs on screen, in whole seconds.",
        },
        "transition": _choice(
            TRANSITIONS, "How this scene gives way to the next (the last: how the film ends)."
        ),
        "characters": _texts(
            MAX_CHARACTERS, NAME_MAX, "Names, exactly as in the story bible, of the characters in the scene."
        ),
    },
    "One scene: one shot of the film.",
)

OUTLINE_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    **_object(
        {
            "title": _text(TITLE_MAX, "A working title for the film."),
            "logline": _text(LOGLINE_MAX, "The story in one or two sentences."),
            "aspect": _choice(ASPECTS, "The frame's aspect ratio."),
            "bible": _object(
                {
                    "characters": {
                        "type": "array",
                        "minItems": 0,
                        "maxItems": MAX_CHARACTERS,
                        "items": CHARACTER_SCHEMA,
                    },
                    "style": _object(
                        {
                            "notes": _text(STYLE_NOTES_MAX, "The visual style every scene shares."),
                            "palette": _texts(MAX_PALETTE, PALETTE_ITEM_MAX, "A colour of the palette."),
                            "negative": _texts(
                                MAX_NEGATIVE,
                                NEGATIVE_ITEM_MAX,
                                "A term for the negative prompt: what to avoid.",
                            ),
                        },
                        "The look shared by every scene.",
                    ),
                    "setting": _text(SETTING_MAX, "Where and when the story takes place."),
                },
                "The story bible: who is in the story, how it looks, where it happens.",
            ),
            "scenes": {
                "type": "array",
                "minItems": MIN_SCENES,
                "maxItems": MAX_SCENES,
                "items": SCENE_SCHEMA,
            },
        },
        "A story outline: logline, story bible and scenes, from setup to resolution.",
    ),
}

_OUTLINE_VALIDATOR = Draft202012Validator(OUTLINE_SCHEMA)
_SCENE_VALIDATOR = Draft202012Validator(SCENE_SCHEMA)
MAX_PROBLEMS = 20


def json_path(parts: Any) -> str:
    """`$.scenes[2].shot` for the path ["scenes", 2, "shot"]."""
    path = "$"
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _quoted(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "…" + text[-1]


def _describe(error: ValidationError) -> str:
    value = error.instance
    if error.validator == "required":
        missing = [name for name in error.validator_value if isinstance(value, dict) and name not in value]
        return "is missing " + ", ".join(f"'{name}'" for name in missing)
    if error.validator == "additionalProperties" and isinstance(value, dict):
        known = error.schema.get("properties", {})
        unknown = [str(name) for name in value if name not in known]
        return "has unknown fields " + ", ".join(f"'{name}'" for name in unknown)
    if error.validator == "enum":
        return f"{_quoted(value)} is not one of: " + ", ".join(str(v) for v in error.validator_value)
    if error.validator == "maxLength" and isinstance(value, str):
        return f"is {len(value)} characters long; at most {error.validator_value}"
    if error.validator in ("minLength", "pattern"):
        return "is empty"
    if error.validator == "maxItems" and isinstance(value, list):
        return f"has {len(value)} items; at most {error.validator_value}"
    if error.validator == "minItems" and isinstance(value, list):
        return f"has {len(value)} items; at least {error.validator_value}"
    if error.validator == "type":
        expected = str(error.validator_value)
        return f"should be {'an' if expected[0] in 'aeiou' else 'a'} {expected}, not {_quoted(value)}"
    if error.validator in ("minimum", "maximum"):
        return f"is {_quoted(value)}; the {error.validator} is {error.validator_value}"
    return error.message[:200]


def _schema_problems(validator: Draft202012Validator, data: object, prefix: tuple[Any, ...]) -> list[str]:
    errors = sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path])
    return [f"{json_path((*prefix, *error.absolute_path))}: {_describe(error)}" for error in errors]


def _cast_problems(data: dict[str, Any]) -> list[str]:
    """Rules across fields that a schema cannot say."""
    problems = []
    names = [c["name"] for c in data["bible"]["characters"]]
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name.casefold() in seen:
            problems.append(f"$.bible.characters[{i}].name: '{name}' is named twice")
        seen.add(name.casefold())
    anchors = {c["name"]: c["anchors"] for c in data["bible"]["characters"]}
    for i, scene in enumerate(data["scenes"]):
        problems.extend(scene_cast_problems(scene, anchors, i))
    return problems


def scene_cast_problems(scene: dict[str, Any], anchors: dict[str, list[str]], index: int) -> list[str]:
    """A scene names only characters of the bible, each once, and its prompt carries their anchors."""
    problems = []
    prompt = scene["prompt"].casefold()
    for j, name in enumerate(scene["characters"]):
        path = f"$.scenes[{index}].characters[{j}]"
        if name not in anchors:
            problems.append(f"{path}: '{name}' is not a character of the story bible")
        elif name in scene["characters"][:j]:
            problems.append(f"{path}: '{name}' is listed twice")
        else:
            problems.extend(
                f"$.scenes[{index}].prompt: lacks '{anchor}', an anchor of {name}, who is in the scene"
                for anchor in anchors[name]
                if anchor.casefold() not in prompt
            )
    return problems


def _raise(problems: list[str], what: str) -> None:
    if problems:
        shown = problems[:MAX_PROBLEMS]
        if len(problems) > MAX_PROBLEMS:
            shown.append(f"… and {len(problems) - MAX_PROBLEMS} more")
        raise OutlineError(
            OutlineErrorCode.INVALID_OUTLINE, f"The {what} does not match the schema.", tuple(shown)
        )


def outline_problems(data: object) -> list[str]:
    """Every way `data` falls short of an outline, each with its JSON path; empty when it is one."""
    problems = _schema_problems(_OUTLINE_VALIDATOR, data, ())
    if problems:
        return problems
    assert isinstance(data, dict)
    return _cast_problems(data)


def outline_from_json(data: object) -> Outline:
    """An `Outline` from parsed JSON; `OutlineError` listing each problem with its JSON path."""
    _raise(outline_problems(data), "outline")
    assert isinstance(data, dict)
    bible = data["bible"]
    return Outline(
        title=data["title"],
        logline=data["logline"],
        aspect=data["aspect"],
        bible=StoryBible(
            characters=tuple(
                Character(
                    name=c["name"], description=c["description"], look=c["look"], anchors=tuple(c["anchors"])
                )
                for c in bible["characters"]
            ),
            style=Style(
                notes=bible["style"]["notes"],
                palette=tuple(bible["style"]["palette"]),
                negative=tuple(bible["style"]["negative"]),
            ),
            setting=bible["setting"],
        ),
        scenes=tuple(scene_from_json(s) for s in data["scenes"]),
    )


def scene_problems(data: object, index: int) -> list[str]:
    """Every way `data` falls short of one scene, with paths as if it were `$.scenes[index]`."""
    return _schema_problems(_SCENE_VALIDATOR, data, ("scenes", index))


def scene_from_json(data: dict[str, Any]) -> Scene:
    """A `Scene` from JSON that `scene_problems` passed."""
    return Scene(
        title=data["title"],
        action=data["action"],
        prompt=data["prompt"],
        shot=data["shot"],
        camera=data["camera"],
        lens=data["lens"],
        lighting=data["lighting"],
        mood=data["mood"],
        time_of_day=data["time_of_day"],
        weather=data["weather"],
        duration_seconds=data["duration_seconds"],
        transition=data["transition"],
        characters=tuple(data["characters"]),
    )


def scene_to_json(scene: Scene) -> dict[str, Any]:
    return {
        "title": scene.title,
        "action": scene.action,
        "prompt": scene.prompt,
        "shot": scene.shot,
        "camera": scene.camera,
        "lens": scene.lens,
        "lighting": scene.lighting,
        "mood": scene.mood,
        "time_of_day": scene.time_of_day,
        "weather": scene.weather,
        "duration_seconds": scene.duration_seconds,
        "transition": scene.transition,
        "characters": list(scene.characters),
    }


def outline_to_json(outline: Outline) -> dict[str, Any]:
    return {
        "title": outline.title,
        "logline": outline.logline,
        "aspect": outline.aspect,
        "bible": {
            "characters": [
                {"name": c.name, "description": c.description, "look": c.look, "anchors": list(c.anchors)}
                for c in outline.bible.characters
            ],
            "style": {
                "notes": outline.bible.style.notes,
                "palette": list(outline.bible.style.palette),
                "negative": list(outline.bible.style.negative),
            },
            "setting": outline.bible.setting,
        },
        "scenes": [scene_to_json(s) for s in outline.scenes],
    }


def checked(outline: Outline) -> Outline:
    """The same outline, after checking it against the schema (what leaves an expander always is)."""
    return outline_from_json(outline_to_json(outline))

"""Outlines from a model behind any OpenAI-compatible chat-completions endpoint (OpenAI, OpenRouter,
Ollama, LM Studio, vLLM, …), through the `openai` package with a configurable base URL.

The answer is asked for as Structured Outputs (`response_format` `json_schema`, strict), checked
against `OUTLINE_SCHEMA` here whatever the server promised, and repaired once: the validation
problems go back to the model in a second request, and an answer that still does not match is an
`OutlineError` that lists them. A server that refuses `json_schema` (a 400 or 422 naming
`response_format`) is asked again with `json_object` and the schema in the system message, and
then with no `response_format` at all; the expander remembers what the server took.

Failures are an `OutlineError` with a short reason a person can act on; the API key is never in
it, and what the server said only as one bounded line. The client makes no retries of its own
(`max_retries=0`), so one call waits at most about `timeout` per request: a repair round or a
format fallback is one more request. `timeout` bounds each network step (connect, each read), as
httpx does, not the whole answer.
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal
from urllib.parse import urlsplit

import openai
from openai.types.chat import (
    ChatCompletionAssistantMessageParam,
    ChatCompletionMessageParam,
    ChatCompletionSystemMessageParam,
    ChatCompletionUserMessageParam,
)
from openai.types.chat.completion_create_params import ResponseFormat

from briefs.outline.builtin import (
    BuiltinExpander,
    check_idea,
    check_note,
    check_options,
    scene_named_in,
    spread_seconds,
)
from briefs.outline.model import (
    MAX_SCENES,
    MIN_SCENES,
    OUTLINE_SCHEMA,
    PROMPT_MAX,
    SCENE_SCHEMA,
    Expander,
    Outline,
    OutlineError,
    OutlineErrorCode,
    checked,
    outline_from_json,
    outline_problems,
    outline_to_json,
    scene_cast_problems,
    scene_from_json,
    scene_problems,
)

Mode = Literal["json_schema", "json_object", "prompt"]
MODES: tuple[Mode, ...] = ("json_schema", "json_object", "prompt")
MAX_TIMEOUT = 600.0
ANSWER_ECHO_CHARS = 20_000  # how much of an invalid answer goes back to the model in the repair round
REASON_CHARS = 200

SYSTEM_PROMPT = """\
You are the story editor of a storyboard studio. You turn a story idea into an outline for a short \
film: a logline, a story bible (characters, visual style, setting) and 5 to 8 scenes that go from \
setup through the inciting incident, rising action and climax to the resolution. Each scene is one \
shot. Its prompt is a self-contained prompt for an image model: who and what is in the frame, the \
place, time of day, weather, lighting, shot type, camera and lens, mood and the style notes. A \
scene's prompt contains every anchor of every character in the scene, word for word. Scenes name \
only characters of the story bible, by their exact names. Vary shot types and camera moves. Use the \
idea's own names, places and details; never write placeholder text. Answer with one JSON object only."""


@dataclass(frozen=True)
class _Answer:
    """What a chat completion carries that we use, parsed once from its JSON."""

    content: str
    cut_off: bool


def wire_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema as sent to the server: the keywords strict Structured Outputs rejects
    (string lengths, `$schema`) and regex patterns (which some local servers cannot turn into a
    grammar) are moved into the descriptions; lengths are still checked here on the answer."""
    wire = copy.deepcopy(schema)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            node.pop("$schema", None)
            node.pop("pattern", None)
            node.pop("minLength", None)
            longest = node.pop("maxLength", None)
            if longest is not None:
                node["description"] = (
                    f"{node.get('description', '').rstrip()} At most {longest} characters.".strip()
                )
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(wire)
    return wire


def _plain(text: object, limit: int = REASON_CHARS) -> str:
    flat = " ".join("".join(ch if ch.isprintable() else " " for ch in str(text)).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _json_from(content: str) -> object:
    """The JSON object in a model's answer, allowing for a Markdown fence or words around it."""
    text = content.strip()
    fenced = re.fullmatch(r"```[a-zA-Z]*\s*(.*?)\s*```", text, re.DOTALL)
    if fenced:
        text = fenced.group(1)
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        start, end = text.find("{"), text.rfind("}")
        if 0 <= start < end:
            return json.loads(text[start : end + 1])
        raise


def _fill_anchors(data: object) -> None:
    """Add a character's missing anchors to the prompts of the scenes they are in (models often
    paraphrase them); what still does not fit is left to validation."""
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("bible"), dict)
        or not isinstance(data.get("scenes"), list)
    ):
        return
    characters = data["bible"].get("characters")
    anchors = {
        c["name"]: [a for a in c["anchors"] if isinstance(a, str)]
        for c in characters or []
        if isinstance(c, dict) and isinstance(c.get("name"), str) and isinstance(c.get("anchors"), list)
    }
    for scene in data["scenes"]:
        _fill_scene_anchors(scene, anchors)


def _fill_scene_anchors(scene: object, anchors: dict[str, list[str]]) -> None:
    if (
        not isinstance(scene, dict)
        or not isinstance(scene.get("prompt"), str)
        or not isinstance(scene.get("characters"), list)
    ):
        return
    prompt = scene["prompt"]
    for name in scene["characters"]:
        for anchor in anchors.get(name, []) if isinstance(name, str) else []:
            if anchor.casefold() not in prompt.casefold() and len(prompt) + len(anchor) + 2 <= PROMPT_MAX:
                prompt = f"{prompt}, {anchor}"
    scene["prompt"] = prompt


class LlmExpander:
    """Expands and refines outlines with a model behind an OpenAI-compatible endpoint."""

    def __init__(self, base_url: str, api_key: str, model: str, timeout: float) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise OutlineError(
                OutlineErrorCode.CONFIG,
                "The model endpoint's base URL must be an http(s) URL such as https://api.openai.com/v1.",
            )
        if not model.strip():
            raise OutlineError(OutlineErrorCode.CONFIG, "No model is named for the model endpoint.")
        if not (isinstance(timeout, int | float) and math.isfinite(timeout) and 0 < timeout <= MAX_TIMEOUT):
            raise OutlineError(
                OutlineErrorCode.CONFIG,
                f"The model endpoint's timeout must be over 0 and at most {MAX_TIMEOUT:g} s.",
            )
        self._base_url = base_url
        self._api_key = api_key
        self._model = model.strip()
        self._timeout = float(timeout)
        self._host = parts.hostname + (f":{parts.port}" if parts.port else "")
        self._mode: Mode = "json_schema"

    def __repr__(self) -> str:
        return f"LlmExpander(host={self._host!r}, model={self._model!r})"

    @property
    def name(self) -> str:
        return self._model

    # --- the two operations ---------------------------------------------------------------------

    def expand(
        self,
        idea: str,
        *,
        scenes: int | None = None,
        target_seconds: int | None = None,
        aspect: str | None = None,
    ) -> Outline:
        idea = check_idea(idea)
        aspect = check_options(scenes, target_seconds, aspect)
        count = f"exactly {scenes}" if scenes is not None else f"{MIN_SCENES} to {MAX_SCENES}"
        asks = [f"- {count} scenes", f"- aspect ratio {aspect}"]
        if target_seconds is not None:
            asks.append(f"- scene durations (whole seconds) that add up to {target_seconds} seconds")
        request = f"Idea:\n{idea}\n\nMake the outline with:\n" + "\n".join(asks)

        def problems(data: object) -> list[str]:
            _fill_anchors(data)
            found = outline_problems(data)
            if not found and scenes is not None and isinstance(data, dict) and len(data["scenes"]) != scenes:
                found.append(f"$.scenes: has {len(data['scenes'])} scenes; {scenes} were asked for")
            return found

        data = self._ask(request, "story_outline", OUTLINE_SCHEMA, problems)
        outline = replace(outline_from_json(data), aspect=aspect)
        if target_seconds is not None and outline.duration_seconds != target_seconds:
            # Models add up poorly; keep their proportions and make the total exact.
            weights = [float(s.duration_seconds) for s in outline.scenes]
            seconds = spread_seconds(weights, target_seconds)
            outline = replace(
                outline,
                scenes=tuple(
                    replace(s, duration_seconds=n) for s, n in zip(outline.scenes, seconds, strict=True)
                ),
            )
        return checked(outline)

    def refine(self, outline: Outline, note: str, *, scene_index: int | None = None) -> Outline:
        """The outline with the note applied: to one scene (asked for alone, against the scene's
        schema) or to the whole outline (asked for whole). The other scenes come back as they were,
        and the outline sent may hold any number of scenes (a brief's)."""
        note = check_note(note)
        count = len(outline.scenes)
        if scene_index is not None and (type(scene_index) is not int or not 0 <= scene_index < count):
            raise OutlineError(
                OutlineErrorCode.INVALID_INPUT,
                f"There is no scene {scene_index!r}: the outline has scenes 0 to {count - 1}.",
            )
        named = scene_named_in(note)
        if scene_index is None and named is not None and 0 <= named < count:
            scene_index = named
        current = json.dumps(outline_to_json(outline), ensure_ascii=False)
        if scene_index is None:
            request = (
                f"Here is the outline as JSON:\n{current}\n\nRewrite the outline following this note: {note.strip()}\n"
                "Keep what the note does not ask to change. Answer with the whole outline."
            )
            return checked(
                outline_from_json(self._ask(request, "story_outline", OUTLINE_SCHEMA, _outline_problems))
            )
        scene = outline.scenes[scene_index]
        request = (
            f"Here is the outline as JSON:\n{current}\n\nRewrite scene {scene_index + 1} ({scene.title!r}) following "
            f"this note: {note.strip()}\nKeep what the note does not ask to change. Answer with that one scene "
            "only, as a JSON object."
        )
        anchors = {c.name: list(c.anchors) for c in outline.bible.characters}
        names = list(anchors)
        schema = copy.deepcopy(SCENE_SCHEMA)
        # Only the bible's characters may be in the scene: say so in the schema itself.
        schema["properties"]["characters"]["items"] = (
            {"type": "string", "enum": names} if names else {"type": "string"}
        )
        if not names:
            schema["properties"]["characters"]["maxItems"] = 0

        index = scene_index

        def problems(data: object) -> list[str]:
            _fill_scene_anchors(data, anchors)
            found = scene_problems(data, index)
            if found or not isinstance(data, dict):
                return found
            return scene_cast_problems(data, anchors, index)

        data = self._ask(request, "outline_scene", schema, problems)
        scenes = list(outline.scenes)
        scenes[index] = scene_from_json(data)
        return replace(outline, scenes=tuple(scenes))

    # --- one validated answer, with one repair round ---------------------------------------------

    def _ask(
        self,
        request: str,
        schema_name: str,
        schema: dict[str, Any],
        problems_of: Callable[[object], list[str]],
    ) -> Any:
        messages: list[ChatCompletionMessageParam] = [
            ChatCompletionUserMessageParam(role="user", content=request)
        ]
        answer = self._complete(messages, schema_name, schema)
        data, problems = self._check(answer, problems_of)
        if not problems:
            return data
        messages += [
            ChatCompletionAssistantMessageParam(role="assistant", content=answer.content[:ANSWER_ECHO_CHARS]),
            ChatCompletionUserMessageParam(
                role="user",
                content="Your answer does not match the schema:\n"
                + "\n".join(f"- {p}" for p in problems)
                + "\nAnswer again with the whole corrected JSON object only.",
            ),
        ]
        answer = self._complete(messages, schema_name, schema)
        data, problems = self._check(answer, problems_of)
        if problems:
            raise OutlineError(
                OutlineErrorCode.INVALID_ANSWER,
                f"The model {self._model!r} did not answer with a valid outline, even after one repair round.",
                tuple(_plain(self._scrub(p), 300) for p in problems[:20]),
            )
        return data

    def _check(self, answer: _Answer, problems_of: Callable[[object], list[str]]) -> tuple[object, list[str]]:
        cut = ["$: the answer was cut off at the model's output limit"] if answer.cut_off else []
        try:
            data = _json_from(answer.content)
        except json.JSONDecodeError as exc:
            return None, [
                *cut,
                f"$: the answer is not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})",
            ]
        found = problems_of(data)
        return data, [*cut, *found] if found else []

    # --- one request ------------------------------------------------------------------------------

    def _complete(
        self, messages: list[ChatCompletionMessageParam], schema_name: str, schema: dict[str, Any]
    ) -> _Answer:
        while True:
            mode = self._mode
            system = SYSTEM_PROMPT
            if mode != "json_schema":
                system += "\nThe JSON object must match this JSON Schema:\n" + json.dumps(wire_schema(schema))
            sent = [ChatCompletionSystemMessageParam(role="system", content=system), *messages]
            try:
                return self._send(sent, _response_format(mode, schema_name, schema))
            except openai.APIStatusError as exc:
                if mode != MODES[-1] and _refuses_format(exc):
                    self._mode = MODES[MODES.index(mode) + 1]
                    continue
                raise self._failure(exc) from None
            except openai.OpenAIError as exc:
                raise self._failure(exc) from None

    def _send(
        self, messages: list[ChatCompletionMessageParam], response_format: ResponseFormat | None
    ) -> _Answer:
        with openai.OpenAI(
            base_url=self._base_url,
            # Local servers (Ollama, LM Studio) take no key, but the client insists on one.
            api_key=self._api_key or "no-key",
            timeout=self._timeout,
            max_retries=0,
        ) as client:
            if response_format is None:
                raw = client.chat.completions.with_raw_response.create(model=self._model, messages=messages)
            else:
                raw = client.chat.completions.with_raw_response.create(
                    model=self._model, messages=messages, response_format=response_format
                )
            text = raw.text
        return self._answer(text)

    def _answer(self, text: str) -> _Answer:
        try:
            body = json.loads(text)
            choice = body["choices"][0]
            message = choice["message"]
            content = message.get("content") or ""
            if isinstance(content, list):  # content parts, as some servers send
                content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
            if not isinstance(content, str):
                raise TypeError("content")
            refusal = message.get("refusal") or ""
            finish = choice.get("finish_reason")
        except (ValueError, LookupError, TypeError, AttributeError):
            raise OutlineError(
                OutlineErrorCode.INVALID_ANSWER,
                f"The model endpoint at {self._host} did not answer with a chat completion "
                f"(it sent {_plain(self._scrub(text), 80)!r}).",
            ) from None
        if refusal or (finish == "content_filter" and not content):
            reason = f": {_plain(self._scrub(refusal)).rstrip('.')}" if refusal else " (content filter)"
            raise OutlineError(OutlineErrorCode.REFUSED, f"The model {self._model!r} declined{reason}.")
        return _Answer(content=content, cut_off=finish == "length")

    # --- failures ---------------------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        return text.replace(self._api_key, "[key]") if len(self._api_key) >= 4 else text

    def _failure(self, exc: openai.OpenAIError) -> OutlineError:
        where = f"the model endpoint at {self._host}"
        if isinstance(exc, openai.APITimeoutError):
            return OutlineError(
                OutlineErrorCode.TIMEOUT, f"{_upper(where)} did not answer within {self._timeout:g} s."
            )
        if isinstance(exc, openai.APIConnectionError):
            return OutlineError(
                OutlineErrorCode.UNREACHABLE,
                f"Could not connect to {where}: is it running, and is the base URL right?",
            )
        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            said = self._server_said(exc)
            if status in (401, 403):
                # Never the server's words here: OpenAI's 401 quotes part of the key.
                return OutlineError(
                    OutlineErrorCode.AUTH,
                    f"{_upper(where)} refused the API key (HTTP {status}); check the key.",
                )
            if status == 429:
                return OutlineError(
                    OutlineErrorCode.RATE_LIMITED,
                    f"{_upper(where)} is rate limiting or out of quota (HTTP 429); try again later.{said}",
                )
            if status == 404:
                return OutlineError(
                    OutlineErrorCode.REFUSED,
                    f"{_upper(where)} answered 404: is the model {self._model!r} right, and does the base URL end in /v1?{said}",
                )
            if status >= 500:
                return OutlineError(
                    OutlineErrorCode.SERVER_ERROR,
                    f"{_upper(where)} failed (HTTP {status}); try again later.{said}",
                )
            return OutlineError(
                OutlineErrorCode.REFUSED, f"{_upper(where)} refused the request (HTTP {status}).{said}"
            )
        return OutlineError(
            OutlineErrorCode.INVALID_ANSWER, f"{_upper(where)} sent an answer that could not be read."
        )

    def _server_said(self, exc: openai.APIStatusError) -> str:
        body = exc.body
        message = body.get("message") if isinstance(body, dict) else body
        return f" It said: {_plain(self._scrub(str(message)))}" if message else ""


def _outline_problems(data: object) -> list[str]:
    _fill_anchors(data)
    return outline_problems(data)


def _upper(text: str) -> str:
    return text[:1].upper() + text[1:]


def _response_format(mode: Mode, name: str, schema: dict[str, Any]) -> ResponseFormat | None:
    if mode == "json_schema":
        return {
            "type": "json_schema",
            "json_schema": {"name": name, "schema": wire_schema(schema), "strict": True},
        }
    if mode == "json_object":
        return {"type": "json_object"}
    return None


def _refuses_format(exc: openai.APIStatusError) -> bool:
    """A 400/422 about `response_format`: the server does not take this way of asking for JSON."""
    if exc.status_code not in (400, 422):
        return False
    body = exc.body
    said = json.dumps(body) if isinstance(body, dict | list) else str(body or "")
    return exc.param == "response_format" or any(
        word in said.casefold()
        for word in ("response_format", "json_schema", "structured output", "json_object")
    )


def expander_from_config(base_url: str, api_key: str, model: str, timeout: float) -> Expander:
    """The built-in expander when no base URL is set, else the model behind it."""
    if not base_url.strip():
        return BuiltinExpander()
    return LlmExpander(base_url.strip(), api_key, model, timeout)

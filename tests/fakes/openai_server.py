"""A fake OpenAI-compatible chat-completions server, for tests over real sockets.

It follows OpenAI's public chat-completions API: `POST /v1/chat/completions` with bearer-key auth,
the request checks OpenAI makes (model and messages present, `response_format` of type `text`,
`json_object` — which needs the word "JSON" in the messages — or `json_schema`, whose strict
schemas must close every object and require every property and may not use the keywords
Structured Outputs does not support), the `chat.completion` answer with `id`, `object`, `created`,
`model`, `choices[].message` and `usage`, and the `{"error": {message, type, param, code}}` bodies
OpenAI sends with 4xx and 5xx. `GET /v1/models` lists the model.

What it answers is scripted: each request takes the next `Reply` (content, an error, a delay, or
a body that is not a chat completion), and every request is recorded for the test to inspect.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

STRICT_UNSUPPORTED = (
    "minLength",
    "maxLength",
    "patternProperties",
    "unevaluatedProperties",
    "propertyNames",
    "minProperties",
    "maxProperties",
    "$schema",
)
_ids = itertools.count(1)


@dataclass
class Reply:
    """One scripted answer. `content` becomes `choices[0].message.content`; `status` >= 400 sends
    `error` as OpenAI's error object; `body` replaces the whole answer (garbage); `delay` waits first."""

    content: str | None = None
    status: int = 200
    error: dict[str, Any] | None = None
    body: str | None = None
    content_type: str = "application/json"
    delay: float = 0.0
    finish_reason: str = "stop"
    refusal: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


def answer(content: object, **kwargs: Any) -> Reply:
    """A reply whose message content is `content` (JSON-encoded unless it is already text)."""
    return Reply(content=content if isinstance(content, str) else json.dumps(content), **kwargs)


def error(
    status: int, message: str, *, type_: str, code: str | None = None, param: str | None = None, **kwargs: Any
) -> Reply:
    return Reply(
        status=status, error={"message": message, "type": type_, "param": param, "code": code}, **kwargs
    )


def rate_limited() -> Reply:
    return error(
        429,
        "Rate limit reached for gpt-4o-mini in organization org-test on requests per min (RPM): Limit 3, Used 3, "
        "Requested 1. Please try again in 20s.",
        type_="requests",
        code="rate_limit_exceeded",
        headers={"retry-after": "20", "x-ratelimit-remaining-requests": "0"},
    )


def server_error() -> Reply:
    return error(
        500, "The server had an error while processing your request. Sorry about that!", type_="server_error"
    )


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


class FakeOpenAI:
    """The scripted server. `app` is its aiohttp application factory (for `tests.app_thread.AppThread`)."""

    def __init__(
        self,
        replies: list[Reply] | None = None,
        *,
        api_key: str | None = "sk-test-key-0123456789",
        refuse_json_schema: bool = False,
    ) -> None:
        self.replies = list(replies or [])
        self.api_key = api_key
        self.refuse_json_schema = refuse_json_schema
        self.requests: list[dict[str, Any]] = []
        self._released = threading.Event()

    def release(self) -> None:
        """Ends every delay early, so a server held by a slow reply stops at once."""
        self._released.set()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat_completions)
        app.router.add_get("/v1/models", self._models)
        return app

    @staticmethod
    def _error(
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> web.Response:
        body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
        return web.json_response(body, status=status, headers=headers)

    def _auth(self, request: web.Request) -> web.Response | None:
        if self.api_key is None:
            return None
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer ") or not header[7:].strip():
            return self._error(
                401,
                "You didn't provide an API key. You need to provide your API key in an Authorization header using "
                "Bearer auth (i.e. Authorization: Bearer YOUR_KEY). You can obtain an API key from "
                "https://platform.openai.com/account/api-keys.",
            )
        key = header[7:].strip()
        if key != self.api_key:
            masked = key[:3] + "*" * max(0, len(key) - 7) + key[-4:]
            return self._error(
                401,
                f"Incorrect API key provided: {masked}. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
                code="invalid_api_key",
            )
        return None

    async def _models(self, request: web.Request) -> web.Response:
        refused = self._auth(request)
        if refused is not None:
            return refused
        return web.json_response(
            {
                "object": "list",
                "data": [
                    {"id": "gpt-4o-mini", "object": "model", "created": 1721172741, "owned_by": "system"}
                ],
            }
        )

    async def _chat_completions(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        self.requests.append({"headers": dict(request.headers), "json": body})
        refused = self._auth(request)
        if refused is not None:
            return refused
        if not isinstance(body, dict):
            return self._error(
                400,
                "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your "
                "HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.",
            )
        invalid = self._check_request(body)
        if invalid is not None:
            return invalid
        reply = self.replies.pop(0) if self.replies else server_error()
        if reply.delay:
            deadline = time.monotonic() + reply.delay
            while time.monotonic() < deadline and not self._released.is_set():
                await asyncio.sleep(0.02)
        if reply.body is not None:
            return web.Response(text=reply.body, content_type=reply.content_type, headers=reply.headers)
        if reply.status >= 400:
            return web.json_response({"error": reply.error}, status=reply.status, headers=reply.headers)
        return web.json_response(
            self._completion(body, reply),
            headers={
                "x-request-id": f"req_{next(_ids):024x}",
                "openai-processing-ms": "412",
                **reply.headers,
            },
        )

    def _check_request(self, body: dict[str, Any]) -> web.Response | None:
        for name in ("model", "messages"):
            if name not in body:
                return self._error(
                    400,
                    f"Missing required parameter: '{name}'.",
                    param=name,
                    code="missing_required_parameter",
                )
        if not isinstance(body["model"], str) or not body["model"]:
            return self._error(
                400, "Invalid type for 'model': expected a string.", param="model", code="invalid_type"
            )
        messages = body["messages"]
        if not isinstance(messages, list) or not messages:
            return self._error(
                400,
                "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
                param="messages",
                code="empty_array",
            )
        for i, message in enumerate(messages):
            if not isinstance(message, dict) or message.get("role") not in (
                "system",
                "developer",
                "user",
                "assistant",
                "tool",
            ):
                return self._error(
                    400,
                    f"Invalid value for 'messages[{i}].role'.",
                    param=f"messages.[{i}].role",
                    code="invalid_value",
                )
            if message["role"] != "assistant" and not isinstance(message.get("content"), str | list):
                return self._error(
                    400,
                    f"Missing required parameter: 'messages[{i}].content'.",
                    param=f"messages.[{i}].content",
                    code="missing_required_parameter",
                )
        response_format = body.get("response_format")
        if response_format is None:
            return None
        kind = response_format.get("type") if isinstance(response_format, dict) else None
        if kind not in ("text", "json_object", "json_schema"):
            return self._error(
                400,
                "Invalid value: 'response_format.type'. Supported values are: 'text', 'json_object' and 'json_schema'.",
                param="response_format.type",
                code="invalid_value",
            )
        if kind == "json_object" and not any(
            "json" in json.dumps(m.get("content", "")).casefold() for m in messages
        ):
            return self._error(
                400,
                "'messages' must contain the word 'json' in some form, to use 'response_format' of type 'json_object'.",
                param="messages",
            )
        if kind == "json_schema":
            if self.refuse_json_schema:
                return self._error(
                    400,
                    "Invalid parameter: 'response_format' of type 'json_schema' is not supported with this model. "
                    "Learn more about supported models at the Structured Outputs guide: "
                    "https://platform.openai.com/docs/guides/structured-outputs",
                    param="response_format",
                )
            spec = response_format.get("json_schema")
            if not isinstance(spec, dict) or not re.fullmatch(
                r"[a-zA-Z0-9_-]{1,64}", str(spec.get("name", ""))
            ):
                return self._error(
                    400,
                    "Invalid 'response_format.json_schema.name': string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'.",
                    param="response_format.json_schema.name",
                    code="invalid_value",
                )
            if spec.get("strict"):
                problem = _strict_problem(spec.get("schema"), ())
                if problem:
                    return self._error(
                        400,
                        f"Invalid schema for response_format '{spec['name']}': {problem}",
                        param="response_format",
                    )
        return None

    def _completion(self, request: dict[str, Any], reply: Reply) -> dict[str, Any]:
        prompt = _tokens(json.dumps(request["messages"]))
        completion = _tokens(reply.content or reply.refusal or "")
        return {
            "id": f"chatcmpl-{next(_ids):029d}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": f"{request['model']}-2024-07-18"
            if request["model"] == "gpt-4o-mini"
            else request["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": reply.content,
                        "refusal": reply.refusal,
                        "annotations": [],
                    },
                    "logprobs": None,
                    "finish_reason": reply.finish_reason,
                }
            ],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
                "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                "completion_tokens_details": {
                    "reasoning_tokens": 0,
                    "audio_tokens": 0,
                    "accepted_prediction_tokens": 0,
                    "rejected_prediction_tokens": 0,
                },
            },
            "service_tier": "default",
            "system_fingerprint": "fp_0aa8d3e20b",
        }


def _strict_problem(schema: object, context: tuple[str, ...]) -> str:
    """What Structured Outputs' strict mode would refuse in `schema` (the first thing), or ''."""
    where = f"In context={context!r}, "
    if not isinstance(schema, dict):
        return (
            f"{where}schema must be a JSON Schema of 'type: \"object\"', got 'type: \"None\"'."
            if not context
            else ""
        )
    if not context and schema.get("type") != "object":
        return f"{where}schema must be a JSON Schema of 'type: \"object\"', got 'type: \"{schema.get('type')}\"'."
    for keyword in STRICT_UNSUPPORTED:
        if keyword in schema:
            return f"{where}'{keyword}' is not permitted."
    if schema.get("type") == "object":
        if schema.get("additionalProperties") is not False:
            return f"{where}'additionalProperties' is required to be supplied and to be false."
        properties = schema.get("properties", {})
        missing = [name for name in properties if name not in schema.get("required", [])]
        if missing:
            return f"{where}'required' is required to be supplied and to be an array including every key in properties. Missing '{missing[0]}'."
        for name, sub in properties.items():
            problem = _strict_problem(sub, (*context, "properties", name))
            if problem:
                return problem
    if schema.get("type") == "array" and "items" in schema:
        return _strict_problem(schema["items"], (*context, "items"))
    return ""

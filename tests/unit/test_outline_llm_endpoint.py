"""The model expander against a fake OpenAI-compatible server on loopback, over real HTTP, through
the real `openai` package: valid answers, a repair round, answers that never validate, timeouts,
refusals of the key, of the rate and of `json_schema`."""

import copy
import json
import socket
import time

import pytest
from openai.types.chat import ChatCompletion

from briefs.outline import (
    OUTLINE_SCHEMA,
    LlmExpander,
    OutlineError,
    OutlineErrorCode,
    expand_idea,
    expander_from_config,
    outline_from_json,
    outline_to_json,
)
from briefs.outline.llm import wire_schema
from tests.app_thread import AppThread
from tests.fakes.openai_server import FakeOpenAI, Reply, answer, error, rate_limited, server_error

KEY = "sk-test-key-0123456789"
MODEL = "gpt-4o-mini"
IDEA = "Mara, a young fisherwoman in a yellow raincoat, finds a map in the attic and sails to the island with her brother Tomas."


@pytest.fixture
def fake():
    server = FakeOpenAI(api_key=KEY)
    thread = AppThread(server.app).start()
    server.base_url = f"http://127.0.0.1:{thread.port}/v1"
    yield server
    server.release()
    thread.stop()


@pytest.fixture(scope="module")
def valid() -> dict:
    return outline_to_json(expand_idea(IDEA))


def expander(fake: FakeOpenAI, *, key: str = KEY, timeout: float = 10) -> LlmExpander:
    return LlmExpander(fake.base_url, key, MODEL, timeout)


def sent(fake: FakeOpenAI, n: int) -> dict:
    return fake.requests[n]["json"]


def failure(call) -> OutlineError:
    with pytest.raises(OutlineError) as caught:
        call()
    return caught.value


def test_a_valid_answer_becomes_the_outline(fake, valid):
    fake.replies = [answer(valid)]

    outline = expander(fake).expand(IDEA, scenes=len(valid["scenes"]), aspect="16:9")

    assert outline == outline_from_json(valid)
    assert len(fake.requests) == 1
    body = sent(fake, 0)
    assert body["model"] == MODEL
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert IDEA in body["messages"][1]["content"]
    assert f"exactly {len(valid['scenes'])} scenes" in body["messages"][1]["content"]
    # Structured Outputs, with a schema strict mode accepts (the fake checks it as OpenAI does).
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["name"] == "story_outline"
    assert body["response_format"]["json_schema"]["strict"] is True
    assert fake.requests[0]["headers"]["Authorization"] == f"Bearer {KEY}"


def test_the_expander_says_which_model_did_the_work(fake):
    built = expander_from_config(fake.base_url, KEY, MODEL, 30)
    assert isinstance(built, LlmExpander)
    assert built.name == MODEL


def test_an_invalid_answer_is_repaired_with_its_validation_errors(fake, valid):
    invalid = copy.deepcopy(valid)
    invalid["scenes"][2]["shot"] = "drone"
    del invalid["logline"]
    fake.replies = [answer(invalid), answer(valid)]

    outline = expander(fake).expand(IDEA)

    assert outline == outline_from_json(valid)
    assert len(fake.requests) == 2
    repair = sent(fake, 1)["messages"]
    assert [m["role"] for m in repair] == ["system", "user", "assistant", "user"]
    assert json.loads(repair[2]["content"]) == invalid
    assert "$.scenes[2].shot: 'drone' is not one of: establishing" in repair[3]["content"]
    assert "$: is missing 'logline'" in repair[3]["content"]


def test_an_answer_that_never_validates_fails_after_exactly_two_requests(fake, valid):
    invalid = copy.deepcopy(valid)
    invalid["scenes"] = invalid["scenes"][:3]
    fake.replies = [answer(invalid), answer(invalid), answer(valid)]

    error_ = failure(lambda: expander(fake).expand(IDEA))

    assert len(fake.requests) == 2
    assert error_.code == OutlineErrorCode.INVALID_ANSWER
    assert "did not answer with a valid outline, even after one repair round" in error_.message
    assert error_.problems == ("$.scenes: has 3 items; at least 5",)


def test_garbage_that_is_not_json_gets_a_repair_round_and_a_message(fake):
    fake.replies = [answer("Sure! Here is your story: once upon a time…"), answer("```json\n{not json\n```")]

    error_ = failure(lambda: expander(fake).expand(IDEA))

    assert len(fake.requests) == 2
    assert "the answer is not JSON" in sent(fake, 1)["messages"][-1]["content"]
    assert error_.code == OutlineErrorCode.INVALID_ANSWER
    assert error_.problems[0].startswith("$: the answer is not JSON (")


def test_json_in_a_markdown_fence_is_accepted(fake, valid):
    fake.replies = [answer(f"Here you go:\n```json\n{json.dumps(valid)}\n```")]
    assert expander(fake).expand(IDEA) == outline_from_json(valid)


def test_a_body_that_is_not_a_chat_completion_is_an_error_without_a_repair(fake):
    fake.replies = [Reply(body="<html><body>502 Bad Gateway</body></html>", content_type="text/html")]

    error_ = failure(lambda: expander(fake).expand(IDEA))

    assert len(fake.requests) == 1
    assert error_.code == OutlineErrorCode.INVALID_ANSWER
    assert "did not answer with a chat completion" in error_.message


def test_a_timeout_is_a_clear_error_within_bounded_time(fake, valid):
    fake.replies = [answer(valid, delay=30)]

    started = time.monotonic()
    error_ = failure(lambda: expander(fake, timeout=0.5).expand(IDEA))
    took = time.monotonic() - started

    assert error_.code == OutlineErrorCode.TIMEOUT
    assert (
        error_.message
        == f"The model endpoint at 127.0.0.1:{fake.base_url.split(':')[2].split('/')[0]} did not answer within 0.5 s."
    )
    assert took < 5  # one request, no retries by the client
    assert len(fake.requests) == 1


def test_a_refused_connection_is_a_clear_error():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    error_ = failure(lambda: LlmExpander(f"http://127.0.0.1:{port}/v1", KEY, MODEL, 5).expand(IDEA))
    assert error_.code == OutlineErrorCode.UNREACHABLE
    assert f"Could not connect to the model endpoint at 127.0.0.1:{port}" in error_.message


def test_a_refused_key_is_named_and_never_shown(fake):
    wrong = "sk-wrong-secret-key-987654"
    error_ = failure(lambda: expander(fake, key=wrong).expand(IDEA))

    assert error_.code == OutlineErrorCode.AUTH
    assert "refused the API key (HTTP 401)" in error_.message
    assert wrong not in str(error_) and wrong[-4:] not in str(error_)
    assert "Incorrect API key provided" not in str(error_)  # OpenAI's text quotes part of the key
    assert wrong not in repr(expander(fake, key=wrong))


@pytest.mark.parametrize(
    ("reply", "code", "words"),
    [
        (
            rate_limited(),
            OutlineErrorCode.RATE_LIMITED,
            "is rate limiting or out of quota (HTTP 429); try again later. It said: Rate limit reached for gpt-4o-mini",
        ),
        (
            server_error(),
            OutlineErrorCode.SERVER_ERROR,
            "failed (HTTP 500); try again later. It said: The server had an error",
        ),
        (
            error(503, "x" * 5000, type_="server_error"),
            OutlineErrorCode.SERVER_ERROR,
            "It said: " + "x" * 190,
        ),
        (
            error(
                404,
                f"The model `{MODEL}` does not exist or you do not have access to it.",
                type_="invalid_request_error",
                code="model_not_found",
            ),
            OutlineErrorCode.REFUSED,
            f"answered 404: is the model '{MODEL}' right",
        ),
        (
            error(
                400,
                "This model's maximum context length is 128000 tokens.",
                type_="invalid_request_error",
                code="context_length_exceeded",
                param="messages",
            ),
            OutlineErrorCode.REFUSED,
            "refused the request (HTTP 400). It said: This model's maximum context length",
        ),
    ],
)
def test_http_errors_become_short_readable_reasons(fake, reply, code, words):
    fake.replies = [reply]

    error_ = failure(lambda: expander(fake).expand(IDEA))

    assert error_.code == code
    assert words in error_.message
    assert len(error_.message) < 400
    assert len(fake.requests) == 1  # the client makes no retries of its own


def test_the_key_is_scrubbed_from_anything_the_server_says(fake):
    fake.replies = [server_error()]
    fake.replies[0].error["message"] = f"upstream failed for key {KEY}"
    error_ = failure(lambda: expander(fake).expand(IDEA))
    assert KEY not in str(error_) and "upstream failed for key [key]" in error_.message


def test_a_model_that_declines_says_so(fake):
    fake.replies = [Reply(content=None, refusal="I'm sorry, I can't help with that.")]
    error_ = failure(lambda: expander(fake).expand(IDEA))
    assert error_.code == OutlineErrorCode.REFUSED
    assert error_.message == f"The model '{MODEL}' declined: I'm sorry, I can't help with that."


def test_a_server_without_json_schema_is_asked_for_json_object_with_the_schema_in_the_prompt(fake, valid):
    fake.refuse_json_schema = True
    fake.replies = [answer(valid), answer(valid)]
    llm = expander(fake)

    assert llm.expand(IDEA) == outline_from_json(valid)

    assert [sent(fake, n).get("response_format", {}).get("type") for n in range(2)] == [
        "json_schema",
        "json_object",
    ]
    system = sent(fake, 1)["messages"][0]["content"]
    assert (
        "must match this JSON Schema" in system and '"story_outline"' not in system and '"logline"' in system
    )
    # The expander remembers: the next call asks for json_object straight away.
    llm.expand(IDEA)
    assert sent(fake, 2)["response_format"]["type"] == "json_object"


def test_durations_are_fitted_to_the_target_and_missing_anchors_added(fake, valid):
    answered = copy.deepcopy(valid)
    for scene in answered["scenes"]:
        scene["duration_seconds"] = 4
    mara = next(s for s in answered["scenes"] if "Mara" in s["characters"])
    mara["prompt"] = mara["prompt"].replace("yellow raincoat", "raincoat")
    fake.replies = [answer(answered)]

    outline = expander(fake).expand(IDEA, target_seconds=60, aspect="9:16")

    assert len(fake.requests) == 1
    assert outline.duration_seconds == 60
    assert outline.aspect == "9:16"
    assert all("yellow raincoat" in s.prompt for s in outline.scenes if "Mara" in s.characters)


def test_the_wrong_number_of_scenes_is_repaired(fake, valid):
    fake.replies = [answer(valid), answer(valid)]
    asked = 6 if len(valid["scenes"]) != 6 else 7
    failure(lambda: expander(fake).expand(IDEA, scenes=asked))
    assert (
        f"$.scenes: has {len(valid['scenes'])} scenes; {asked} were asked for"
        in sent(fake, 1)["messages"][-1]["content"]
    )


def test_refining_one_scene_asks_for_that_scene_only(fake, valid):
    outline = outline_from_json(valid)
    night = copy.deepcopy(valid["scenes"][2]) | {"time_of_day": "night", "lighting": "moonlight on wet stone"}
    night["prompt"] += ", at night"
    fake.replies = [answer(night)]

    refined = expander(fake).refine(outline, "make scene 3 a night shot")

    assert refined.scenes[2].time_of_day == "night" and refined.scenes[2].lighting == "moonlight on wet stone"
    assert refined.scenes[:2] == outline.scenes[:2] and refined.scenes[3:] == outline.scenes[3:]
    body = sent(fake, 0)
    assert (
        "Rewrite scene 3" in body["messages"][1]["content"]
        and "make scene 3 a night shot" in body["messages"][1]["content"]
    )
    schema = body["response_format"]["json_schema"]
    assert schema["name"] == "outline_scene"
    assert schema["schema"]["properties"]["characters"]["items"]["enum"] == ["Mara", "Tomas"]


def test_refining_a_scene_with_a_stranger_in_it_is_repaired(fake, valid):
    outline = outline_from_json(valid)
    stranger = copy.deepcopy(valid["scenes"][1]) | {"characters": ["Mara", "Zed"]}
    fake.replies = [answer(stranger), answer(valid["scenes"][1])]

    refined = expander(fake).refine(outline, "add a stranger", scene_index=1)

    assert refined == outline
    assert (
        "$.scenes[1].characters[1]: 'Zed' is not a character of the story bible"
        in sent(fake, 1)["messages"][-1]["content"]
    )


def test_refining_the_whole_outline(fake, valid):
    outline = outline_from_json(valid)
    rewritten = copy.deepcopy(valid) | {"logline": "A darker tale of the sea."}
    fake.replies = [answer(rewritten)]

    refined = expander(fake).refine(outline, "make it darker")

    assert refined.logline == "A darker tale of the sea."
    assert (
        "Rewrite the outline following this note: make it darker" in sent(fake, 0)["messages"][1]["content"]
    )


def test_a_failed_refine_leaves_the_outline_as_it_was(fake, valid):
    outline = outline_from_json(valid)
    fake.replies = [rate_limited()]
    error_ = failure(lambda: expander(fake).refine(outline, "darker"))
    assert error_.code == OutlineErrorCode.RATE_LIMITED
    assert outline == outline_from_json(valid)


def test_the_fakes_answers_are_chat_completions_by_the_openai_packages_own_types(fake, valid):
    import httpx

    fake.replies = [answer(valid)]
    response = httpx.post(
        f"{fake.base_url}/chat/completions",
        json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]},
        headers={"Authorization": f"Bearer {KEY}"},
    )
    completion = ChatCompletion.model_validate(response.json())
    assert completion.object == "chat.completion" and completion.usage is not None
    assert json.loads(completion.choices[0].message.content or "") == valid


@pytest.mark.parametrize(
    ("base_url", "model", "timeout", "message"),
    [
        ("ftp://example.com/v1", MODEL, 10, "must be an http(s) URL"),
        ("http:///v1", MODEL, 10, "must be an http(s) URL"),
        ("http://127.0.0.1:1/v1", " ", 10, "No model is named"),
        ("http://127.0.0.1:1/v1", MODEL, 0, "timeout must be over 0"),
        ("http://127.0.0.1:1/v1", MODEL, float("nan"), "timeout must be over 0"),
    ],
)
def test_unusable_settings_are_a_config_error(base_url, model, timeout, message):
    error_ = failure(lambda: expander_from_config(base_url, KEY, model, timeout))
    assert error_.code == OutlineErrorCode.CONFIG
    assert message in error_.message


def test_the_wire_schema_keeps_the_structure_and_moves_lengths_into_descriptions():
    wire = wire_schema(OUTLINE_SCHEMA)
    text = str(wire)
    assert (
        "maxLength" not in text
        and "minLength" not in text
        and "pattern" not in text
        and "$schema" not in text
    )
    assert wire["properties"]["scenes"]["minItems"] == 5 and wire["properties"]["scenes"]["maxItems"] == 8
    assert wire["properties"]["title"]["description"].endswith("At most 120 characters.")
    # The schema itself is unchanged.
    assert OUTLINE_SCHEMA["properties"]["title"]["maxLength"] == 120

"""The replay server the provider tests stand on: recorded bytes out, unrecorded requests flagged."""

from __future__ import annotations

import json

import httpx
from websockets.sync.client import connect

from .conftest import recording
from .replay_server import ReplayServer

ENDPOINTS = "get_endpoints.json"
EMPTYIMAGE = "prompt_emptyimage_save_preview.json"


def test_recorded_answers_come_back_byte_for_byte_with_their_status_and_headers() -> None:
    with ReplayServer(ENDPOINTS) as replay, httpx.Client(base_url=replay.base_url) as http:
        for step in recording(ENDPOINTS)["steps"]:
            recorded = step["response"]
            response = http.get(step["request"]["path"])
            assert (response.status_code, response.reason_phrase) == (recorded["status"], recorded["reason"])
            if "raw_body" in recorded:
                assert response.content == recorded["raw_body"].encode()
            for name in ("content-type", "content-length", "date", "server"):
                # A recorded empty chunked body goes out with Content-Length: 0 instead.
                if name in recorded["headers"]:
                    assert response.headers[name] == recorded["headers"][name], (step["label"], name)
        assert replay.unmatched == []


def test_frames_that_followed_a_post_wait_for_it_and_then_arrive_exactly_as_recorded() -> None:
    socket = recording(EMPTYIMAGE)["websocket_client"]
    post = recording(EMPTYIMAGE)["steps"][0]
    recorded = [frame["raw"] for frame in socket["received"]]
    with (
        ReplayServer(EMPTYIMAGE) as replay,
        connect(f"{replay.base_url.replace('http', 'ws')}/ws?clientId={socket['client_id_in_url']}") as ws,
    ):
        before = []
        try:
            while True:
                before.append(ws.recv(timeout=0.3))
        except TimeoutError:
            pass
        # Only the greeting: everything else came after the first POST /prompt.
        assert before == recorded[:1]
        response = httpx.post(f"{replay.base_url}/prompt", json=post["request"]["json"])
        assert response.content == post["response"]["raw_body"].encode()
        first_run_done = json.dumps(
            {"type": "executing", "data": {"node": None, "prompt_id": response.json()["prompt_id"]}}
        )
        after = []
        while not after or after[-1] != first_run_done:
            after.append(ws.recv(timeout=5))
        assert before + after == recorded[: len(before) + len(after)]
        assert replay.unmatched == []


def test_a_request_the_recording_does_not_have_gets_599_naming_it_and_is_reported() -> None:
    with ReplayServer(ENDPOINTS) as replay:
        response = httpx.post(f"{replay.base_url}/interrupt", json={"prompt_id": "x"})
        assert response.status_code == 599
        assert "POST /interrupt" in response.text and ENDPOINTS in response.text
        assert len(replay.unmatched) == 1 and "POST /interrupt" in replay.unmatched[0]

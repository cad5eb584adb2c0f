"""A WebSocket client subscribed to a brief sees a render's life, in order."""

import asyncio
import json

import httpx
import pytest
import websockets

pytestmark = pytest.mark.integration


async def _follow(studio, brief_uuid: str, scene_uuid: str) -> list[dict]:
    stack = studio["stack"]
    ws_url = stack.web_url.replace("http://", "ws://") + f"/ws/briefs/{brief_uuid}/"
    headers = {"Authorization": f"Token {studio['token']}"}
    received: list[dict] = []
    async with websockets.connect(ws_url, additional_headers=headers, origin=stack.web_url) as socket:
        received.append(json.loads(await asyncio.wait_for(socket.recv(), 10)))
        async with httpx.AsyncClient(base_url=stack.web_url, headers=headers) as api:
            response = await api.post(f"/api/v1/scenes/{scene_uuid}/renders/", json={})
            assert response.status_code == 202
        while True:
            message = json.loads(await asyncio.wait_for(socket.recv(), 30))
            received.append(message)
            if message["data"]["state"] in ("succeeded", "failed", "cancelled"):
                return received


def test_a_subscriber_receives_progress_and_completion_in_order(studio):
    with httpx.Client(
        base_url=studio["stack"].web_url, headers={"Authorization": f"Token {studio['token']}"}
    ) as api:
        brief = api.post(
            "/api/v1/briefs/", json={"title": "Owl", "scenes": [{"title": "S", "prompt": "an owl"}]}
        ).json()
    messages = asyncio.run(_follow(studio, brief["uuid"], brief["scenes"][0]["uuid"]))
    snapshot, updates = messages[0], messages[1:]
    assert snapshot["type"] == "snapshot"
    assert [m["seq"] for m in updates] == list(range(snapshot["seq"] + 1, snapshot["seq"] + 1 + len(updates)))
    states = [m["data"]["state"] for m in updates]
    # States only move forward; progress is reported while running.
    order = ["queued", "dispatched", "running", "fetching", "succeeded"]
    assert [s for i, s in enumerate(states) if i == 0 or states[i - 1] != s] == order
    running = [m["data"]["progress"] for m in updates if m["data"]["state"] == "running"]
    assert len(running) >= 2  # entering running, then at least one progress step
    assert running == sorted(running)
    assert 0 < max(running) <= 100
    final = updates[-1]["data"]
    assert final["progress"] == 100
    assert final["artifact_url"].startswith("/artifacts/")


def test_a_socket_without_credentials_is_closed(studio):
    stack = studio["stack"]

    async def attempt() -> int:
        url = stack.web_url.replace("http://", "ws://") + "/ws/briefs/00000000-0000-0000-0000-000000000000/"
        async with websockets.connect(url, origin=stack.web_url) as socket:
            try:
                await asyncio.wait_for(socket.recv(), 5)
            except websockets.ConnectionClosed as closed:
                return closed.rcvd.code if closed.rcvd else -1
        return 0

    try:
        code = asyncio.run(attempt())
    except websockets.exceptions.InvalidStatus as refused:
        code = refused.response.status_code
    assert code in (4403, 403)

"""A WebSocket client subscribed to a brief sees a render's life, in order."""

import asyncio
import json
import time
from dataclasses import dataclass, field

import httpx
import pytest
import websockets

from briefs.models import Brief
from generation.events import job_payload
from generation.models import TERMINAL_STATES
from generation.selectors import latest_job_per_scene

pytestmark = pytest.mark.integration
# Three hundred sockets on one brief measure the numbered stream; preview frames, which go to every
# socket, only load the machine here (tests/integration/test_live_previews.py follows them).
STACK_PREVIEW_METHOD = "none"


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
            if message["type"] == "job.preview":
                continue  # a picture, outside the numbered stream
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


WATCHERS = 300
SCENES = 20
TERMINAL = {str(state) for state in TERMINAL_STATES}


@dataclass
class _Watcher:
    """What one socket saw: its snapshots, its numbered updates, and how it ended."""

    snapshots: list[dict] = field(default_factory=list)
    updates: list[dict] = field(default_factory=list)
    stream: list[dict] = field(default_factory=list)  # every message, in the order it came
    jobs: dict[str, dict] = field(default_factory=dict)
    dropped: str | None = None

    def done(self, count: int) -> bool:
        return len(self.jobs) == count and all(job["state"] in TERMINAL for job in self.jobs.values())


async def _watch(
    url: str,
    headers: dict,
    origin: str,
    gate: asyncio.Semaphore,
    watcher: _Watcher,
    opened: asyncio.Event,
    stop: asyncio.Event,
) -> None:
    async with gate:
        socket = await websockets.connect(
            url, additional_headers=headers, origin=origin, open_timeout=30, ping_interval=None
        )
    try:
        reading = asyncio.ensure_future(_read(socket, watcher, opened))
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait([reading, stopping], return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if reading.done():
            reading.result()
        reading.cancel()
    finally:
        await socket.close()


async def _read(socket, watcher: _Watcher, opened: asyncio.Event) -> None:
    try:
        async for raw in socket:
            message = json.loads(raw)
            if message["type"] == "job.preview":
                continue  # a picture, outside the numbered stream
            watcher.stream.append(message)
            if message["type"] == "snapshot":
                watcher.snapshots.append(message)
                watcher.jobs.update((job["job"], job) for job in message["jobs"])
                opened.set()
            else:
                watcher.updates.append(message)
                watcher.jobs[message["data"]["job"]] = message["data"]
    except websockets.ConnectionClosed as closed:
        watcher.dropped = repr(closed)
        return
    watcher.dropped = "closed by the server"


async def _until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
        await asyncio.sleep(0.1)


async def _render_all_watched_by_many(studio, brief_uuid: str) -> list[_Watcher]:
    stack = studio["stack"]
    url = stack.web_url.replace("http://", "ws://") + f"/ws/briefs/{brief_uuid}/"
    headers = {"Authorization": f"Token {studio['token']}"}
    watchers = [_Watcher() for _ in range(WATCHERS)]
    opened = [asyncio.Event() for _ in watchers]
    stop = asyncio.Event()
    gate = asyncio.Semaphore(25)  # handshakes in flight at once
    tasks = [
        asyncio.ensure_future(_watch(url, headers, stack.web_url, gate, watcher, event, stop))
        for watcher, event in zip(watchers, opened, strict=True)
    ]
    try:
        await _until(
            lambda: all(event.is_set() or task.done() for event, task in zip(opened, tasks, strict=True)),
            60,
            "every watcher's snapshot",
        )
        assert all(event.is_set() for event in opened), [t.exception() for t in tasks if t.done()][:3]
        async with httpx.AsyncClient(base_url=stack.web_url, headers=headers, timeout=30) as api:
            response = await api.post(f"/api/v1/briefs/{brief_uuid}/renders/", json={})
            assert response.status_code == 202, response.text

            async def all_terminal() -> bool:
                jobs = (await api.get(f"/api/v1/briefs/{brief_uuid}/jobs/", params={"limit": 100})).json()
                return len(jobs["results"]) == SCENES and all(j["state"] in TERMINAL for j in jobs["results"])

            deadline = time.monotonic() + 90
            while not await all_terminal():
                assert time.monotonic() < deadline, "the batch did not finish within 90 s"
                await asyncio.sleep(0.5)
        await _until(
            lambda: all(w.done(SCENES) or w.dropped for w in watchers), 30, "every watcher's last event"
        )
        # Anything still held past a hole would surface as a resync snapshot within the window.
        await asyncio.sleep(float(stack.env.get("LIVE_EVENTS_REORDER_WINDOW", 2.0)) + 0.5)
    finally:
        stop.set()
        await asyncio.wait(tasks, timeout=30)
    for task in tasks:
        task.result()
    return watchers


def test_three_hundred_watchers_see_render_all_in_order_without_a_reconnect(studio):
    started = time.monotonic()
    with httpx.Client(
        base_url=studio["stack"].web_url, headers={"Authorization": f"Token {studio['token']}"}
    ) as api:
        brief = api.post(
            "/api/v1/briefs/",
            json={
                "title": "Crowd",
                "scenes": [{"title": f"S{i}", "prompt": f"frame {i}"} for i in range(SCENES)],
            },
        ).json()
    watchers = asyncio.run(_render_all_watched_by_many(studio, brief["uuid"]))
    truth = {
        str(job.uuid): job_payload(job)
        for job in latest_job_per_scene(Brief.objects.get(uuid=brief["uuid"])).values()
    }
    assert len(truth) == SCENES
    assert all(job["state"] == "succeeded" for job in truth.values())
    resynced = 0
    for number, watcher in enumerate(watchers):
        assert watcher.dropped is None, f"watcher {number} was disconnected: {watcher.dropped}"
        assert watcher.stream[0]["type"] == "snapshot"
        # In order: each update is the one after the last message's seq; a resync snapshot (an event
        # that did not come within the reorder window, under load) restarts the count where it says.
        last = -1
        for message in watcher.stream:
            if message["type"] == "snapshot":
                assert message["seq"] >= last, f"watcher {number}: a snapshot went back to {message['seq']}"
            else:
                assert message["seq"] == last + 1, f"watcher {number}: {message['seq']} after {last}"
            last = message["seq"]
        resynced += len(watcher.snapshots) > 1
        assert watcher.jobs == truth, f"watcher {number} ended with another view than the database"
    print(f"{WATCHERS} watchers: {resynced} needed a resync snapshot, none reconnected")
    # The watchers that needed no resync all saw the same stream: every event of the batch.
    whole = [w for w in watchers if len(w.snapshots) == 1]
    assert whole, "every watcher needed a resync: the reorder window is too short for this machine"
    assert len({tuple(m["seq"] for m in w.updates) for w in whole}) == 1
    assert sum(m["data"]["state"] == "queued" for m in whole[0].updates) >= SCENES
    assert time.monotonic() - started < 120

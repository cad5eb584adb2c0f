"""The editor in a real browser: render a scene and watch the image arrive without a reload."""

import asyncio
import json
import re
import threading
import time

import pytest
from channels_redis.pubsub import RedisPubSubChannelLayer
from django.db import transaction
from playwright.sync_api import expect

from briefs.services import brief_create
from generation import events
from tests.browser.conftest import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.integration]


def test_rendering_a_scene_shows_progress_and_the_image_live(studio, page, shot):
    web_url = studio["stack"].web_url
    brief = brief_create(
        user=studio["user"],
        title="Harbour lights",
        scenes=[
            {"title": "Dusk", "prompt": "harbour lights at dusk"},
            {"title": "Night", "prompt": "an empty pier at night"},
        ],
    )
    sign_in(page, web_url)
    page.goto(f"{web_url}/briefs/{brief.uuid}/")
    expect(page.get_by_test_id("live-status")).to_have_text("Live updates: on")
    first = page.get_by_test_id("scene").nth(0)
    second = page.get_by_test_id("scene").nth(1)
    url_before = page.url
    first.get_by_test_id("render-scene").click()
    expect(first.locator('[data-role="state"]')).to_have_text("Succeeded", timeout=30_000)
    image = first.locator('img[data-role="image"]')
    expect(image).to_have_attribute("src", re.compile(r"^/artifacts/"))
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
    assert image.evaluate("img => img.naturalWidth") == 512
    assert page.url == url_before  # no reload, no navigation
    download = first.get_by_test_id("download")
    expect(download).to_be_visible()
    with page.expect_download() as saved:
        download.click()
    assert saved.value.suggested_filename.startswith("scene-1-")
    expect(second.locator('[data-role="state"]')).to_have_text("Not rendered")
    shot("after-render")


def test_render_all_fills_every_scene(studio, page):
    web_url = studio["stack"].web_url
    brief = brief_create(
        user=studio["user"],
        title="Three frames",
        scenes=[{"title": f"F{i}", "prompt": f"frame {i}"} for i in range(1, 4)],
    )
    sign_in(page, web_url)
    page.goto(f"{web_url}/briefs/{brief.uuid}/")
    expect(page.get_by_test_id("live-status")).to_have_text("Live updates: on")
    page.get_by_test_id("render-all").click()
    for index in range(3):
        scene = page.get_by_test_id("scene").nth(index)
        expect(scene.locator('[data-role="state"]')).to_have_text("Succeeded", timeout=60_000)
        expect(scene.locator('img[data-role="image"]')).to_be_visible()


def _publish_through_the_stack(redis_url: str, group: str, message: dict) -> None:
    """One live event through the stack's Valkey, as a sender in another process would send it."""

    async def publish() -> None:
        layer = RedisPubSubChannelLayer(hosts=[{"address": redis_url}])
        await layer.group_send(group, {"type": "brief.event", "message": message})
        await layer.flush()

    # Playwright's sync API holds this thread's event loop.
    thread = threading.Thread(target=asyncio.run, args=(publish(),))
    thread.start()
    thread.join(10)


def test_a_lost_event_is_mended_by_a_snapshot_on_the_same_socket(studio, page):
    stack = studio["stack"]
    brief = brief_create(
        user=studio["user"],
        title="Lost and found",
        scenes=[{"title": "Only", "prompt": "a lighthouse in the rain"}],
    )
    sockets, frames = [], []

    def follow(socket) -> None:
        sockets.append(socket)
        socket.on("framereceived", lambda payload: frames.append(json.loads(payload)))

    page.on("websocket", follow)
    sign_in(page, stack.web_url)
    page.goto(f"{stack.web_url}/briefs/{brief.uuid}/")
    expect(page.get_by_test_id("live-status")).to_have_text("Live updates: on")
    # Two events commit; only the second is ever sent.
    with transaction.atomic():
        last = events._next_seq(brief.id, 2)
    lost_at = time.monotonic()
    _publish_through_the_stack(
        stack.redis_url,
        events.brief_group(brief.uuid),
        {"type": "job.updated", "seq": last, "brief": str(brief.uuid), "data": {}},
    )
    while len([f for f in frames if f["type"] == "snapshot"]) < 2:
        assert time.monotonic() - lost_at < 10, "no fresh snapshot after a lost event"
        page.wait_for_timeout(100)
    assert [f["seq"] for f in frames if f["type"] == "snapshot"][1] == last
    # The page took the snapshot's seq: the next events apply, with no reconnect.
    scene = page.get_by_test_id("scene").nth(0)
    scene.get_by_test_id("render-scene").click()
    expect(scene.locator('[data-role="state"]')).to_have_text("Succeeded", timeout=30_000)
    expect(page.get_by_test_id("live-status")).to_have_text("Live updates: on")
    assert len(sockets) == 1
    assert not any(f.get("seq") == last for f in frames if f["type"] == "job.updated")

"""The editor in a real browser with renders on the local RunPod-compatible endpoint: the same
live states and images as on the preview server, without a reload."""

import pytest
from playwright.sync_api import expect

from briefs.services import brief_create
from generation.models import Attempt, Backend
from tests.browser.conftest import sign_in

# The RunPod endpoint process and its key, shared with the RunPod integration tests.
from tests.integration.test_runpod_render_path import (  # noqa: F401
    RUNPOD,
    _key_in_the_environment,
    endpoint,
    runpod,
)

pytestmark = [pytest.mark.browser, pytest.mark.integration]


def test_render_all_on_runpod_shows_states_and_images_live(runpod, page):  # noqa: F811 (a fixture)
    web_url = runpod["stack"].web_url
    # Only the RunPod backend takes work, as for a team without GPUs of its own.
    Backend.objects.exclude(pk=runpod["backend"].pk).update(enabled=False)
    brief = brief_create(
        user=runpod["user"],
        title="Cloud frames",
        scenes=[
            {"title": "Pier", "prompt": "a pier in fog"},
            {"title": "Gulls", "prompt": "gulls over a pier"},
        ],
    )
    sign_in(page, web_url)
    page.goto(f"{web_url}/briefs/{brief.uuid}/")
    expect(page.get_by_test_id("live-status")).to_have_text("Live updates: on")
    url_before = page.url
    page.get_by_test_id("render-all").click()
    for index in range(2):
        scene = page.get_by_test_id("scene").nth(index)
        expect(scene.locator('[data-role="state"]')).to_have_text("Succeeded", timeout=60_000)
        image = scene.locator('img[data-role="image"]')
        expect(image).to_be_visible()
        assert image.evaluate("img => img.complete && img.naturalWidth") == 512
    assert page.url == url_before
    backends = set(Attempt.objects.filter(job__brief=brief).values_list("backend__name", flat=True))
    assert backends == {RUNPOD}

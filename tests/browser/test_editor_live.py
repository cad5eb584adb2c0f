"""The editor in a real browser: render a scene and watch the image arrive without a reload."""

import pytest
from playwright.sync_api import expect

from briefs.services import brief_create

pytestmark = [pytest.mark.browser, pytest.mark.integration]


def _sign_in(page, web_url: str) -> None:
    page.goto(f"{web_url}/accounts/login/")
    page.fill("input[name=username]", "director")
    page.fill("input[name=password]", "a-long-password-3")
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Briefs")


def test_rendering_a_scene_shows_progress_and_the_image_live(studio, page):
    web_url = studio["stack"].web_url
    brief = brief_create(
        user=studio["user"],
        title="Harbour lights",
        scenes=[
            {"title": "Dusk", "prompt": "harbour lights at dusk"},
            {"title": "Night", "prompt": "an empty pier at night"},
        ],
    )
    _sign_in(page, web_url)
    page.goto(f"{web_url}/briefs/{brief.uuid}/")
    expect(page.get_by_test_id("live-status")).to_have_text("Live updates: on")
    first = page.get_by_test_id("scene").nth(0)
    second = page.get_by_test_id("scene").nth(1)
    url_before = page.url
    first.get_by_test_id("render-scene").click()
    expect(first.locator('[data-role="state"]')).to_have_text("Succeeded", timeout=30_000)
    image = first.locator('img[data-role="image"]')
    expect(image).to_be_visible()
    assert image.evaluate("img => img.complete && img.naturalWidth") == 512
    assert page.url == url_before  # no reload, no navigation
    download = first.get_by_test_id("download")
    expect(download).to_be_visible()
    with page.expect_download() as saved:
        download.click()
    assert saved.value.suggested_filename.startswith("scene-1-")
    expect(second.locator('[data-role="state"]')).to_have_text("Not rendered")
    page.screenshot(path=str(studio["stack"].log_dir / "editor-after-render.png"), full_page=True)


def test_render_all_fills_every_scene(studio, page):
    web_url = studio["stack"].web_url
    brief = brief_create(
        user=studio["user"],
        title="Three frames",
        scenes=[{"title": f"F{i}", "prompt": f"frame {i}"} for i in range(1, 4)],
    )
    _sign_in(page, web_url)
    page.goto(f"{web_url}/briefs/{brief.uuid}/")
    expect(page.get_by_test_id("live-status")).to_have_text("Live updates: on")
    page.get_by_test_id("render-all").click()
    for index in range(3):
        scene = page.get_by_test_id("scene").nth(index)
        expect(scene.locator('[data-role="state"]')).to_have_text("Succeeded", timeout=60_000)
        expect(scene.locator('img[data-role="image"]')).to_be_visible()

"""Deliverables in a real browser, on the real stack: each kind is built by the stack's worker, its
progress bar moves to done over the live socket, and the file downloads and reads back."""

from __future__ import annotations

import csv
import io
import json
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor

import av
import pytest
from PIL import Image
from playwright.sync_api import expect

from briefs.models import Scene
from briefs.services import brief_create
from generation import services as render_services
from generation.models import JobState, RenderJob
from tests.browser.conftest import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.integration]

BUILD_WAIT_MS = 60_000

# Records every value each progress bar takes, so the test can see it move, not just end.
WATCH_BARS = """
() => {
  window.barValues = {};
  document.querySelectorAll('[data-testid="deliverable"]').forEach((row) => {
    const bar = row.querySelector('[data-role="bar"]');
    const kind = row.dataset.kind;
    window.barValues[kind] = [];
    new MutationObserver(() => window.barValues[kind].push(Number(bar.value)))
      .observe(bar, { attributes: true, attributeFilter: ["value"] });
  });
}
"""


def _rendered_brief(studio):
    brief = brief_create(
        user=studio["user"],
        title="Harbour at dawn",
        scenes=[
            {"title": "Fog", "prompt": "a ferry in fog", "duration_s": "1.5", "transition": "dissolve"},
            {"title": "Deck", "prompt": "two strangers on deck", "duration_s": "1", "transition": "fade"},
            {"title": "Light", "prompt": "first light on the water", "duration_s": "1.25"},
        ],
    )
    with ThreadPoolExecutor(max_workers=1) as pool:
        _, jobs = pool.submit(render_services.render_brief_submit, brief=brief, user=studio["user"]).result(
            30
        )
    deadline = time.monotonic() + 60
    while RenderJob.objects.filter(pk__in=[j.pk for j in jobs], state=JobState.SUCCEEDED).count() < len(jobs):
        assert time.monotonic() < deadline, "the renders never finished"
        failed = RenderJob.objects.filter(pk__in=[j.pk for j in jobs], state=JobState.FAILED).first()
        assert failed is None, failed.error_message
        time.sleep(0.1)
    # Picked as finals the way the pick does it: the scene's final is one of its takes.
    for job in jobs:
        Scene.objects.filter(pk=job.scene_id).update(final=job)
    return brief


def _build_and_download(page, kind: str) -> bytes:
    row = page.locator(f'[data-testid="deliverable"][data-kind="{kind}"]')
    page.get_by_test_id(f"build-{kind}").click()
    expect(page.get_by_test_id(f"state-{kind}")).to_have_text("Ready", timeout=BUILD_WAIT_MS)
    expect(page.get_by_test_id(f"bar-{kind}")).to_have_attribute("value", "100")
    values = page.evaluate(f"window.barValues[{json.dumps(kind)}]")
    assert values[-1] == 100
    assert any(0 < value < 100 for value in values), f"the {kind} bar went {values}"
    assert values == sorted(values), f"the {kind} bar went back: {values}"
    link = row.get_by_test_id(f"download-{kind}")
    expect(link).to_be_visible()
    with page.expect_download() as download:
        link.click()
    return open(download.value.path(), "rb").read()


def test_each_deliverable_is_built_live_and_downloaded(studio, page, shot):
    brief = _rendered_brief(studio)
    sign_in(page, studio["stack"].web_url)
    page.goto(f"{studio['stack'].web_url}/briefs/{brief.uuid}/")
    expect(page.get_by_test_id("live-status")).to_have_text("Live updates: on")
    page.evaluate(WATCH_BARS)
    page.get_by_test_id("burn-titles").check()

    finals = _build_and_download(page, "zip")
    with zipfile.ZipFile(io.BytesIO(finals)) as archive:
        table = json.loads(archive.read("manifest.json"))
        assert [scene["title"] for scene in table["scenes"]] == ["Fog", "Deck", "Light"]
        assert all(scene["source"] == "final" for scene in table["scenes"])

    sheet = Image.open(io.BytesIO(_build_and_download(page, "contact_png")))
    assert sheet.format == "PNG" and sheet.width > 3 * 320

    assert _build_and_download(page, "contact_pdf").startswith(b"%PDF")

    rows = list(csv.DictReader(io.StringIO(_build_and_download(page, "shotlist").decode())))
    assert [row["title"] for row in rows] == ["Fog", "Deck", "Light"]

    animatic = _build_and_download(page, "animatic")
    with av.open(io.BytesIO(animatic)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (1280, 720)
        frames = sum(1 for _ in container.decode(stream))
    assert abs(frames / 24 - 3.75) <= 1 / 24
    shot("deliverables-built")


def test_scenes_without_a_final_are_named_and_latest_builds_from_their_takes(studio, page, shot):
    brief = _rendered_brief(studio)
    Scene.objects.filter(brief=brief, title="Deck").update(final=None)
    sign_in(page, studio["stack"].web_url)
    page.goto(f"{studio['stack'].web_url}/briefs/{brief.uuid}/")
    expect(page.get_by_test_id("live-status")).to_have_text("Live updates: on")
    page.get_by_test_id("build-zip").click()
    expect(page.get_by_test_id("deliverables-error")).to_contain_text("No final picked for scene 2 (Deck)")
    shot("missing-final")
    page.get_by_test_id("missing-latest").check()
    page.get_by_test_id("build-zip").click()
    expect(page.get_by_test_id("state-zip")).to_have_text("Ready", timeout=BUILD_WAIT_MS)
    row = page.locator('[data-testid="deliverable"][data-kind="zip"]')
    expect(row.locator('[data-role="notes"]')).to_contain_text("scene 2 (Deck): used the latest take")

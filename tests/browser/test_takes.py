"""Takes in a real browser, on the real stack: three renders make three takes, an edit marks them
stale, two are compared, one is picked as final, a take is rendered again with its seed and its
text restored, and review plays the brief's picks in story order."""

import pytest
from playwright.sync_api import expect

from briefs.models import Scene
from briefs.services import brief_create
from generation.models import JobState, RenderJob
from tests.browser.conftest import sign_in
from tests.browser.test_storyboard import RENDER_WAIT_MS, _board, _open_editor

pytestmark = [pytest.mark.browser, pytest.mark.integration]


def _two_short_scenes(studio):
    return brief_create(
        user=studio["user"],
        title="Two takes",
        style="charcoal sketch",
        scenes=[
            {"title": "Arrival", "prompt": "a train pulls into a snowy station", "duration_s": 1},
            {"title": "Departure", "prompt": "the train leaves into the night", "duration_s": 1},
        ],
    )


def _render_until(card, takes: int) -> None:
    card.get_by_test_id("render-scene").click()
    expect(card.get_by_test_id("take")).to_have_count(takes, timeout=RENDER_WAIT_MS)


def test_three_renders_make_three_takes_that_go_stale_compare_and_play_in_review(studio, page, shot):
    brief = _two_short_scenes(studio)
    first_scene, second_scene = brief.scenes.order_by("position")
    sign_in(page, studio["stack"].web_url)
    _open_editor(page, studio, brief)
    first, second = _board(page).nth(0), _board(page).nth(1)
    expect(first.get_by_test_id("takes")).to_be_hidden()
    _render_until(second, 1)
    for count in (1, 2, 3):
        _render_until(first, count)
    takes = first.get_by_test_id("take")
    expect(first.locator('[data-testid="take"][data-stale]')).to_have_count(0)
    jobs = list(RenderJob.objects.filter(scene=first_scene).order_by("-created_at"))
    assert [take.get_attribute("data-take") for take in takes.all()] == [str(job.uuid) for job in jobs]
    assert all(job.state == JobState.SUCCEEDED for job in jobs)
    shot("three-takes")

    # An edit of the scene marks every take stale, saying what changed.
    first.get_by_test_id("edit-scene").click()
    first.locator(f'textarea[name="s{first_scene.pk}-prompt"]').fill("a steam train in a blizzard")
    expect(first.get_by_test_id("save-state")).to_have_text("Saved")
    first.get_by_test_id("edit-scene").click()
    stale = first.locator('[data-testid="take"][data-stale]')
    expect(stale).to_have_count(3)
    assert "the scene was edited (version 1 → 2)" in stale.first.get_attribute("title")
    expect(first.get_by_test_id("stale-mark")).to_have_count(3)
    shot("stale-takes")

    # Two takes side by side: only their seeds differ.
    takes.nth(0).get_by_test_id("take-compare").check()
    takes.nth(2).get_by_test_id("take-compare").check()
    first.get_by_test_id("compare-takes").click()
    compare = page.get_by_test_id("compare")
    expect(compare).to_be_visible()
    expect(compare.get_by_test_id("compare-take")).to_have_count(2)
    expect(compare.locator('[data-testid="compare-difference"][data-name="seed"]')).to_contain_text(
        str(jobs[0].params["seed"])
    )
    shot("compare")
    compare.get_by_role("button", name="Close").click()
    expect(compare).to_be_hidden()

    # The middle take, shown in the frame, is picked as final.
    takes.nth(1).get_by_test_id("take-show").click()
    expect(first.locator('img[data-role="image"]')).to_have_attribute(
        "src", takes.nth(1).get_attribute("data-url")
    )
    expect(first.get_by_test_id("take-stale")).to_contain_text("the scene was edited")
    first.get_by_test_id("take-final").click()
    expect(takes.nth(1)).to_have_attribute("data-final", "1")
    expect(first.get_by_test_id("final-mark")).to_have_count(1)
    assert Scene.objects.get(pk=first_scene.pk).final_id == jobs[1].pk
    shot("final-picked")

    # Review: scene 1's final, then (held for its second) scene 2's newest take.
    page.get_by_test_id("review-open").click()
    review = page.get_by_test_id("review")
    expect(review).to_be_visible()
    expect(review.get_by_test_id("review-caption")).to_have_text("Scene 1: Arrival")
    expect(review.get_by_test_id("review-kind")).to_have_text("final")
    expect(review.locator('[data-testid="review-frame"] img')).to_have_attribute(
        "src", takes.nth(1).get_attribute("data-url")
    )
    expect(review.get_by_test_id("review-caption")).to_have_text("Scene 2: Departure", timeout=5_000)
    expect(review.get_by_test_id("review-kind")).to_have_text("newest take (no final picked)")
    shot("review")
    page.keyboard.press("ArrowLeft")
    expect(review.get_by_test_id("review-caption")).to_have_text("Scene 1: Arrival")
    page.keyboard.press("Space")
    expect(review.get_by_test_id("review-count")).to_contain_text("paused")
    page.keyboard.press("ArrowRight")
    expect(review.get_by_test_id("review-caption")).to_have_text("Scene 2: Departure")
    review.get_by_test_id("review-final").click()
    expect(review.get_by_test_id("review-kind")).to_have_text("final")
    assert Scene.objects.get(pk=second_scene.pk).final_id is not None
    page.keyboard.press("Escape")
    expect(review).to_be_hidden()
    expect(second.get_by_test_id("final-mark")).to_have_count(1)


def test_a_take_renders_again_with_its_seed_and_gives_its_text_back(studio, page, shot):
    brief = _two_short_scenes(studio)
    scene = brief.scenes.get(position=1)
    sign_in(page, studio["stack"].web_url)
    _open_editor(page, studio, brief)
    card = _board(page).nth(0)
    _render_until(card, 1)
    take = RenderJob.objects.get(scene=scene)
    card.get_by_test_id("edit-scene").click()
    card.locator(f'textarea[name="s{scene.pk}-prompt"]').fill("an empty platform at noon")
    expect(card.get_by_test_id("save-state")).to_have_text("Saved")
    card.get_by_test_id("edit-scene").click()
    card.get_by_test_id("take").first.get_by_test_id("take-show").click()
    card.get_by_test_id("take-again").click()
    expect(card.get_by_test_id("take")).to_have_count(2, timeout=RENDER_WAIT_MS)
    again = RenderJob.objects.filter(scene=scene).exclude(pk=take.pk).get()
    assert again.params["seed"] == take.params["seed"]
    assert "an empty platform at noon" in again.params["prompt"]
    # The older take (now second in the strip) gives its text back; the card shows it.
    card.get_by_test_id("take").nth(1).get_by_test_id("take-show").click()
    card.get_by_test_id("take-restore").click()
    expect(card.get_by_test_id("composed-prompt")).to_contain_text("a train pulls into a snowy station")
    shot("restored")
    scene.refresh_from_db()
    assert scene.prompt == "a train pulls into a snowy station"
    assert scene.version == 3

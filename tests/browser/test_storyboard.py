"""The storyboard in a real browser, on the real stack: from an idea to rendered frames, the story
bible, reordering, duplicate and delete with undo, and the rules that keep every edit."""

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from playwright.sync_api import expect

from briefs.models import Scene
from briefs.services import brief_create, scene_update
from generation import services as render_services
from generation.models import RenderJob, WorkflowTemplate
from generation.services import backend_register_preview
from tests.browser.conftest import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.integration]

RENDER_WAIT_MS = 60_000


class Clicks:
    """Counts what a user does with the mouse on the way: each click, and each field clicked into."""

    def __init__(self) -> None:
        self.count = 0

    def click(self, locator) -> None:
        self.count += 1
        locator.click()

    def fill(self, locator, text: str) -> None:
        self.count += 1
        locator.fill(text)


def _board(page):
    return page.get_by_test_id("scene")


def _titles(page) -> list[str]:
    return [
        title.strip() for title in page.locator('[data-testid="scene"] [data-role="title"]').all_inner_texts()
    ]


def _open_editor(page, studio, brief) -> None:
    page.goto(f"{studio['stack'].web_url}/briefs/{brief.uuid}/")
    expect(page.get_by_test_id("live-status")).to_have_text("Live updates: on")


def _three_scenes(studio, title="Three shots"):
    return brief_create(
        user=studio["user"],
        title=title,
        style="charcoal sketch",
        scenes=[
            {"title": "Arrival", "prompt": "a train pulls into a snowy station"},
            {"title": "Meeting", "prompt": "two travellers shake hands on the platform"},
            {"title": "Departure", "prompt": "the train leaves into the night"},
        ],
    )


def test_from_an_idea_to_a_rendered_storyboard_in_a_few_clicks(studio, page, shot):
    web_url = studio["stack"].web_url
    sign_in(page, web_url)
    clicks = Clicks()
    started = time.monotonic()
    shot("brief-list")
    clicks.fill(
        page.locator("[data-testid=idea-form] textarea[name=idea]"),
        "Mara, a young lighthouse keeper, finds a stranded whale on the beach at dawn. "
        "With Old Tom the fisherman she keeps it wet all day until the evening tide lifts it back to sea.",
    )
    clicks.click(page.get_by_test_id("expand-idea"))
    # The outline is written by the built-in expander on the stack's worker; the page fills in.
    expect(page.get_by_test_id("outline-status")).to_contain_text("built-in expander", timeout=30_000)
    scenes = _board(page)
    count = scenes.count()
    assert 5 <= count <= 8
    expect(page.get_by_test_id("character").first).to_be_visible()
    shot("storyboard-written")
    clicks.click(page.get_by_test_id("render-all"))
    for index in range(count):
        expect(scenes.nth(index).locator('img[data-role="image"]:not([data-preview])')).to_be_visible(
            timeout=RENDER_WAIT_MS
        )
    expect(page.get_by_test_id("brief-progress")).to_have_text(f"{count} of {count} rendered")
    elapsed = time.monotonic() - started
    shot("storyboard-rendered")
    assert clicks.count <= 6, f"{clicks.count} clicks from the idea to a rendered storyboard"
    assert elapsed < 120, f"{elapsed:.0f} s from the idea to a rendered storyboard"


def test_the_story_bible_and_a_prompt_reach_the_composed_prompt_as_typed(studio, page, shot):
    brief = _three_scenes(studio)
    sign_in(page, studio["stack"].web_url)
    _open_editor(page, studio, brief)
    first = _board(page).nth(0)
    expect(first.get_by_test_id("composed-prompt")).to_contain_text("charcoal sketch")
    style = page.locator("[data-testid=brief-form] textarea[name=style]")
    style.fill("watercolour, soft edges")
    expect(page.get_by_test_id("bible-save-state")).to_have_text("Saved")
    expect(first.get_by_test_id("composed-prompt")).to_contain_text("watercolour, soft edges")
    first.get_by_test_id("edit-scene").click()
    prompt = first.locator(
        f'textarea[name="s{Scene.objects.get(uuid=first.get_attribute("data-scene")).pk}-prompt"]'
    )
    prompt.fill("a steam train pulls into a snowy station at dusk")
    expect(first.get_by_test_id("save-state")).to_have_text("Saved")
    expect(first.get_by_test_id("composed-prompt")).to_contain_text(
        "a steam train pulls into a snowy station at dusk"
    )
    shot("composed-prompt")
    scene = Scene.objects.get(uuid=first.get_attribute("data-scene"))
    assert scene.prompt == "a steam train pulls into a snowy station at dusk"
    assert scene.version == 2


def test_scenes_reorder_by_dragging_and_by_keyboard(studio, page, shot):
    brief = _three_scenes(studio)
    sign_in(page, studio["stack"].web_url)
    _open_editor(page, studio, brief)
    cards = _board(page)
    cards.nth(2).get_by_test_id("handle").drag_to(cards.nth(0))
    expect(cards.nth(0)).to_have_attribute("data-title", "Departure")
    assert _titles(page) == ["Departure", "Arrival", "Meeting"]
    _wait_for(lambda: _stored_titles(brief) == ["Departure", "Arrival", "Meeting"])
    handle = cards.nth(0).get_by_test_id("handle")
    handle.focus()
    page.keyboard.press("Alt+ArrowDown")
    expect(cards.nth(1)).to_have_attribute("data-title", "Departure")
    _wait_for(lambda: _stored_titles(brief) == ["Arrival", "Departure", "Meeting"])
    expect(cards.nth(1).get_by_test_id("position")).to_have_text("2")
    shot("reordered")
    page.reload()
    assert _titles(page) == ["Arrival", "Departure", "Meeting"]


def test_duplicate_then_delete_and_undo(studio, page, shot):
    brief = _three_scenes(studio)
    sign_in(page, studio["stack"].web_url)
    _open_editor(page, studio, brief)
    cards = _board(page)
    cards.nth(0).get_by_test_id("duplicate").click()
    expect(cards).to_have_count(4)
    expect(cards.nth(1)).to_have_attribute("data-title", "Arrival (copy)")
    cards.nth(1).get_by_test_id("delete").click()
    expect(cards).to_have_count(3)
    toast = page.get_by_test_id("toast")
    expect(toast).to_contain_text("Arrival (copy)")
    shot("deleted-with-undo")
    assert _stored_titles(brief) == ["Arrival", "Meeting", "Departure"]
    toast.get_by_test_id("toast-action").click()
    expect(cards).to_have_count(4)
    expect(cards.nth(1)).to_have_attribute("data-title", "Arrival (copy)")
    assert _stored_titles(brief) == ["Arrival", "Arrival (copy)", "Meeting", "Departure"]
    assert [p for p in page.locator('[data-testid="scene"] [data-testid="position"]').all_inner_texts()] == [
        "1",
        "2",
        "3",
        "4",
    ]


def test_render_renders_the_edit_on_screen_even_before_it_saved(studio, page):
    brief = _three_scenes(studio)
    sign_in(page, studio["stack"].web_url)
    _open_editor(page, studio, brief)
    card = _board(page).nth(1)
    scene = brief.scenes.get(position=2)
    card.get_by_test_id("edit-scene").click()
    card.locator(f'textarea[name="s{scene.pk}-prompt"]').fill("two travellers embrace under a clock")
    card.get_by_test_id("render-scene").click()  # at once: the autosave has not run yet
    expect(card.get_by_test_id("state")).to_have_text("Succeeded", timeout=RENDER_WAIT_MS)
    job = RenderJob.objects.get(scene=scene)
    assert "two travellers embrace under a clock" in job.params["prompt"]
    assert job.scene_version == 2


def test_three_quick_clicks_on_render_make_one_job_and_a_second_render_asks(studio, page, shot):
    brief = _three_scenes(studio)
    scene = brief.scenes.get(position=1)
    sign_in(page, studio["stack"].web_url)
    _open_editor(page, studio, brief)
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.type), dialog.dismiss()))
    card = _board(page).nth(0)
    card.get_by_test_id("render-scene").click(click_count=3)
    expect(card.get_by_test_id("state")).to_have_text("Succeeded", timeout=RENDER_WAIT_MS)
    assert RenderJob.objects.filter(scene=scene).count() == 1
    # A render that waits for a backend that is away stays queued: Render again asks, in the page.
    away = backend_register_preview(url="http://127.0.0.1:9", name="Away")
    waiting = _off_the_page_thread(
        render_services.render_job_submit, scene=scene, user=studio["user"], backend=away
    )
    page.reload()  # this process's events stay in memory; the page reads the queued render anew
    card = _board(page).nth(0)
    expect(card.get_by_test_id("state")).to_have_text("Queued")
    expect(card.get_by_test_id("cancel")).to_be_visible()
    card.get_by_test_id("render-scene").click()
    notice = card.get_by_test_id("notice")
    expect(notice).to_contain_text("already")
    expect(notice).to_be_in_viewport()
    shot("render-asks")
    card.get_by_test_id("keep-running").click()
    assert RenderJob.objects.filter(scene=scene).count() == 2
    card.get_by_test_id("cancel").click()
    expect(card.get_by_test_id("state")).to_have_text("Cancelled")
    expect(card.get_by_test_id("cancel")).to_be_hidden()
    waiting.refresh_from_db()
    assert waiting.state == "cancelled"
    assert dialogs == []


def test_leaving_with_an_unsaved_edit_warns(studio, page):
    brief = _three_scenes(studio)
    scene = brief.scenes.get(position=1)
    sign_in(page, studio["stack"].web_url)
    _open_editor(page, studio, brief)
    asked = []

    def answer(dialog) -> None:
        asked.append(dialog.type)
        dialog.dismiss()  # stay on the page

    page.on("dialog", answer)
    card = _board(page).nth(0)
    card.get_by_test_id("edit-scene").click()
    card.locator(f'textarea[name="s{scene.pk}-action"]').press_sequentially("The whistle blows.")
    page.context.set_offline(True)  # the save cannot land: the edit stays unsaved
    card.locator(f'textarea[name="s{scene.pk}-action"]').press_sequentially(" Steam rises.")
    page.locator(".topbar nav a", has_text="Briefs").click()
    _wait_for(lambda: asked == ["beforeunload"])
    assert page.url.endswith(f"/briefs/{brief.uuid}/")
    page.context.set_offline(False)
    expect(card.get_by_test_id("save-state")).to_have_text("Saved", timeout=15_000)
    scene.refresh_from_db()
    assert scene.action == "The whistle blows. Steam rises."


def test_an_error_shows_next_to_its_field_and_loses_nothing(studio, page, shot):
    brief = _three_scenes(studio)
    scene = brief.scenes.get(position=3)
    sign_in(page, studio["stack"].web_url)
    _open_editor(page, studio, brief)
    card = _board(page).nth(2)
    card.get_by_test_id("edit-scene").click()
    card.locator(f'input[name="s{scene.pk}-lighting"]').fill("moonlight")
    expect(card.get_by_test_id("save-state")).to_have_text("Saved")
    card.locator(f'input[name="s{scene.pk}-duration_s"]').fill("900")
    error = card.locator('[data-testid="field-error"][data-field="duration_s"]')
    expect(error).to_contain_text("600 seconds")
    expect(error).to_be_in_viewport()
    expect(card.get_by_test_id("save-state")).to_contain_text("Not saved")
    shot("field-error")
    scene.refresh_from_db()
    assert scene.lighting == "moonlight"
    assert scene.duration_s == 3


def test_two_windows_see_each_other_and_a_stale_save_is_refused_with_both_versions(studio, browser, shot):
    brief = _three_scenes(studio)
    scene = brief.scenes.get(position=1)
    web_url = studio["stack"].web_url
    windows = []
    for _ in range(2):
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        window = context.new_page()
        sign_in(window, web_url)
        _open_editor(window, studio, brief)
        windows.append(window)
    one, two = windows
    prompt_name = f"s{scene.pk}-prompt"
    # One window's edit reaches the other, which had no edit of its own.
    one.get_by_test_id("scene").nth(0).get_by_test_id("edit-scene").click()
    one.locator(f'textarea[name="{prompt_name}"]').fill("a night train in the snow")
    expect(one.get_by_test_id("scene").nth(0).get_by_test_id("save-state")).to_have_text("Saved")
    expect(two.get_by_test_id("scene").nth(0).get_by_test_id("composed-prompt")).to_contain_text(
        "a night train in the snow"
    )
    # Now the second window edits while cut off; the first saves meanwhile.
    two.context.set_offline(True)
    card_two = two.get_by_test_id("scene").nth(0)
    card_two.get_by_test_id("edit-scene").click()
    two.locator(f'textarea[name="{prompt_name}"]').fill("a freight train at noon")
    expect(card_two.get_by_test_id("save-state")).to_contain_text("Not saved")
    one.locator(f'textarea[name="{prompt_name}"]').fill("a night train in a blizzard")
    expect(one.get_by_test_id("scene").nth(0).get_by_test_id("save-state")).to_have_text("Saved")
    two.context.set_offline(False)
    conflict = card_two.get_by_test_id("conflict-table")
    expect(conflict).to_contain_text("a night train in a blizzard", timeout=15_000)
    expect(conflict).to_contain_text("a freight train at noon")
    shot("conflict", page=two)
    scene.refresh_from_db()
    assert scene.prompt == "a night train in a blizzard"  # the refused save changed nothing
    card_two.get_by_test_id("keep-mine").click()
    expect(card_two.get_by_test_id("save-state")).to_have_text("Saved")
    scene.refresh_from_db()
    assert scene.prompt == "a freight train at noon"
    expect(one.get_by_test_id("scene").nth(0).get_by_test_id("composed-prompt")).to_contain_text(
        "a freight train at noon"
    )
    # Render all in one window: frames arrive in both.
    one.get_by_test_id("render-all").click()
    for window in windows:
        for index in range(3):
            expect(window.get_by_test_id("scene").nth(index).locator('img[data-role="image"]')).to_be_visible(
                timeout=RENDER_WAIT_MS
            )
        expect(window.get_by_test_id("brief-progress")).to_have_text("3 of 3 rendered")
        expect(window.get_by_test_id("run").first).to_contain_text("3 scenes")
        # The run's summary is written after its last render; the panel follows without a reload.
        expect(window.get_by_test_id("run-verdict").first).to_be_visible(timeout=20_000)
    shot("two-windows-one", page=one)
    shot("two-windows-two", page=two)
    for window in windows:
        window.context.close()


def test_previews_arrive_before_the_final_frame_and_the_viewer_walks_the_board(studio, page, shot):
    brief = _three_scenes(studio)
    sign_in(page, studio["stack"].web_url)
    _open_editor(page, studio, brief)
    page.evaluate(
        """() => {
          window.frameLog = [];
          new MutationObserver((changes) => changes.forEach((change) => {
            const img = change.target.nodeName === "IMG" ? change.target : null;
            if (img) window.frameLog.push(img.getAttribute("src").slice(0, 11));
            change.addedNodes.forEach((node) => node.nodeName === "IMG" && window.frameLog.push(node.getAttribute("src").slice(0, 11)));
          })).observe(document.getElementById("scenes"), {subtree: true, childList: true, attributes: true, attributeFilter: ["src"]});
        }"""
    )
    page.get_by_test_id("render-all").click()
    for index in range(3):
        expect(_board(page).nth(index).get_by_test_id("state")).to_have_text(
            "Succeeded", timeout=RENDER_WAIT_MS
        )
    log = page.evaluate("() => window.frameLog")
    assert "data:image/" in log, f"no preview frame reached the board: {log}"
    assert log.index("data:image/") < max(i for i, src in enumerate(log) if src.startswith("/artifacts/"))
    _board(page).nth(0).locator('img[data-role="image"]').click()
    viewer = page.get_by_test_id("viewer")
    expect(viewer).to_be_visible()
    expect(page.get_by_test_id("viewer-caption")).to_have_text("Scene 1: Arrival")
    page.keyboard.press("ArrowRight")
    expect(page.get_by_test_id("viewer-caption")).to_have_text("Scene 2: Meeting")
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    expect(page.get_by_test_id("viewer-caption")).to_have_text("Scene 3: Departure")
    shot("viewer")
    page.keyboard.press("Escape")
    expect(viewer).to_be_hidden()


def _off_the_page_thread(call, **kwargs):
    """Run a service as another process would: Playwright holds this thread's event loop, which the
    service's live-event publishing may not share."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(call, **kwargs).result(timeout=30)


def _stored_titles(brief) -> list[str]:
    return list(brief.scenes.order_by("position").values_list("title", flat=True))


def _wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.05)


def test_a_render_of_every_output_kind_shows_each_in_its_card(studio, page, shot):
    brief = _three_scenes(studio, title="Every kind")
    scene = brief.scenes.get(position=1)
    scene_update(scene=scene, template=WorkflowTemplate.objects.get(slug="storyboard-all-outputs"))
    sign_in(page, studio["stack"].web_url)
    _open_editor(page, studio, brief)
    card = _board(page).nth(0)
    card.get_by_test_id("render-scene").click()
    expect(card.get_by_test_id("state")).to_have_text("Succeeded", timeout=RENDER_WAIT_MS)
    outputs = card.get_by_test_id("output")
    expect(outputs).to_have_count(5)
    kinds = [outputs.nth(i).get_attribute("data-kind") for i in range(5)]
    assert sorted(kinds) == ["animated", "audio", "image", "video", "video"]
    expect(card.locator('[data-testid="output"] video').first).to_be_visible()
    expect(card.locator('[data-testid="output"] audio')).to_have_count(1)
    shot("every-output-kind")
    page.reload()  # drawn the same from the server
    expect(_board(page).nth(0).get_by_test_id("output")).to_have_count(5)


def test_two_windows_editing_the_story_bible_never_overwrite_each_other(studio, browser, shot):
    brief = _three_scenes(studio, title="Shared bible")
    windows = []
    for _ in range(2):
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        window = context.new_page()
        sign_in(window, studio["stack"].web_url)
        _open_editor(window, studio, brief)
        windows.append(window)
    one, two = windows
    one.locator("[data-testid=brief-form] textarea[name=style]").fill("oil paint, heavy impasto")
    expect(one.get_by_test_id("bible-save-state")).to_have_text("Saved")
    # The other window is told, and its cards' composed prompts follow at once.
    expect(two.get_by_test_id("bible-notice")).to_contain_text("changed in another window")
    expect(two.get_by_test_id("scene").nth(0).get_by_test_id("composed-prompt")).to_contain_text("oil paint")
    # Its own edit, made on the older bible, is refused with both versions, and nothing is lost.
    two.locator("[data-testid=brief-form] textarea[name=style]").fill("pencil sketch")
    conflict = two.get_by_test_id("bible-conflict-table")
    expect(conflict).to_contain_text("oil paint, heavy impasto")
    expect(conflict).to_contain_text("pencil sketch")
    shot("bible-conflict", page=two)
    brief.refresh_from_db()
    assert brief.style == "oil paint, heavy impasto"
    two.get_by_test_id("bible-keep-mine").click()
    expect(two.get_by_test_id("bible-save-state")).to_have_text("Saved")
    brief.refresh_from_db()
    assert brief.style == "pencil sketch"
    for window in windows:
        window.context.close()

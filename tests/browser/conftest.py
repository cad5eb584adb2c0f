import os
import shutil

import pytest
from django.conf import settings
from playwright.sync_api import expect, sync_playwright

# Playwright's sync API keeps an event loop on this thread; the ORM calls the
# tests make between page actions are still plain synchronous calls.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

# Debian's Chromium, as root in a container: no sandbox, and no background
# traffic to hosts this machine cannot reach.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


# Module scope: Playwright's sync API holds an event loop on the main thread while it
# runs, which would stop asyncio tests in later modules from starting their own.
@pytest.fixture(scope="module")
def browser():
    executable = shutil.which("chromium")
    assert executable, (
        "Debian's chromium package is required for the browser tests (./studio test installs it)"
    )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def shot(request):
    """Saves a screenshot of a page as a test artifact, under the var folder's test-artifacts/browser/."""
    folder = settings.VAR_DIR / "test-artifacts" / "browser"
    folder.mkdir(parents=True, exist_ok=True)

    def take(name: str, *, page=None) -> None:
        page = page or request.getfixturevalue("page")
        page.screenshot(path=str(folder / f"{request.node.name}-{name}.png"), full_page=True)

    return take


def sign_in(page, web_url: str, username: str = "director", password: str = "a-long-password-3") -> None:
    page.goto(f"{web_url}/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Briefs")

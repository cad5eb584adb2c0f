import os
import shutil

import pytest
from playwright.sync_api import sync_playwright

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

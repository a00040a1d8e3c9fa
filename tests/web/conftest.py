"""Browser fixtures: Debian's Chromium driven by Playwright, against a node in this loop."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.async_api import async_playwright

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
         "--autoplay-policy=no-user-gesture-required"]
ARTIFACTS = Path(os.environ.get("TIDINGS_ARTIFACTS", Path(__file__).parents[2] / "artifacts"))


@pytest.fixture
async def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/test-clients.sh")
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            yield chromium
        finally:
            await chromium.close()


async def screenshot(page, name: str) -> Path:
    """Save a screenshot of a main view as a test artifact (artifacts/screenshots/)."""
    path = ARTIFACTS / "screenshots" / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(path), full_page=True)
    return path


async def signed_in(context, server, user: str):
    """A page of `context`, signed in as `user` with the bare-id form, connected."""
    page = await context.new_page()
    await page.goto(server.url + "/")
    await page.fill("#signin-user", user)
    await page.press("#signin-user", "Enter")
    await page.wait_for_selector('#status[data-state="connected"]')
    return page


async def join_room(page, room: str) -> None:
    await page.click("#tab-rooms")
    await page.fill("#room-name", room)
    await page.press("#room-name", "Enter")
    await page.wait_for_selector("#room-input")


async def say(page, selector: str, text: str) -> None:
    await page.fill(selector, text)
    await page.press(selector, "Enter")

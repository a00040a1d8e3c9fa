"""The message-center tab in a real browser: counts from the node's inbox, in sync across tabs."""

from __future__ import annotations

import aiohttp
import pytest
from playwright.async_api import expect

from tests.web.conftest import screenshot, signed_in


@pytest.mark.xfail(strict=True, reason="needs the inbox branch")
async def test_inbox_counts_change_on_a_backend_publish_and_on_read_in_another_tab(server, browser):
    context = await browser.new_context()
    first = await signed_in(context, server, "ivy")
    await first.click("#tab-inbox")
    async with aiohttp.ClientSession() as http:
        for text in ("invoice 1", "invoice 2"):
            await http.post(server.url + "/api/send",
                            json={"user": "ivy", "data": {"text": text}, "source": "billing"})
    badge = first.locator('[data-source="billing"] .badge')
    await expect(badge).to_have_text("2", timeout=10000)
    second = await context.new_page()
    await second.goto(server.url + "/")
    await second.click("#tab-inbox")
    await second.click('[data-source="billing"] button')
    await second.locator(".mark-read").first.click()
    await expect(badge).to_have_text("1")
    await screenshot(first, "inbox")

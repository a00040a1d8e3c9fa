"""The message-center tab in a real browser: counts from the node's inbox, in sync across tabs."""

from __future__ import annotations

import aiohttp
from playwright.async_api import expect

from tests.web.conftest import screenshot, signed_in


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
    await expect(first.locator("#inbox-total")).to_have_text("2")  # on the tab itself
    await expect(first.locator("#inbox-messages li")).to_have_count(2)  # the source opened
    second = await context.new_page()
    await second.goto(server.url + "/")
    await second.click("#tab-inbox")
    await second.click('[data-source="billing"] button')
    await second.locator(".mark-read").first.click()
    await expect(badge).to_have_text("1")
    await expect(first.locator("#inbox-total")).to_have_text("1")
    await expect(first.locator("#inbox-messages li.read")).to_have_count(1)
    await screenshot(first, "inbox")


async def test_a_notification_shows_title_body_and_only_a_safe_link(server, browser):
    context = await browser.new_context()
    page = await signed_in(context, server, "lin")
    await page.click("#tab-inbox")
    async with aiohttp.ClientSession() as http:
        for link in ("/orders/77", "javascript:alert(1)"):
            await http.post(server.url + "/api/send", json={
                "user": "lin", "source": "orders",
                "data": {"title": "Order 77 shipped", "body": "<b>2 parcels</b>", "link": link}})
    await expect(page.locator("#inbox-messages li")).to_have_count(2, timeout=10000)
    assert await page.locator("#inbox-messages .title").first.inner_text() == "Order 77 shipped"
    assert await page.locator("#inbox-messages .body").first.inner_text() == "<b>2 parcels</b>"
    hrefs = [await a.get_attribute("href") for a in await page.locator("#inbox-messages a").all()]
    assert hrefs == ["/orders/77"]  # the javascript: link is not made a link at all
    await screenshot(page, "inbox-notification")

"""The admin console at /admin in a real browser (Debian's Chromium), against a real node
with a real Redis Stream ingest source: sign in with the admin token, watch it refresh,
look a user up and disconnect them, show presence, publish a test message.

Screenshots of the console go to artifacts/screenshots/.
"""

from __future__ import annotations

import uuid

import pytest
import redis.asyncio as redis
from playwright.async_api import expect

from tests.conftest import running_node, settings_for
from tests.web.conftest import screenshot as save

TOKEN = "admin-" + "t" * 26


@pytest.fixture
async def stream():
    """A Redis Stream of this test's own, deleted afterwards."""
    name = f"admin-{uuid.uuid4().hex[:10]}"
    client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    yield client, name
    await client.delete(name, f"{name}.dead-letter")
    await client.aclose()


@pytest.fixture
async def console(tmp_path, stream):
    _, name = stream
    source = {"url": "redis://127.0.0.1:6379/0", "queue": name, "group": f"{name}-g"}
    settings = settings_for(tmp_path, admin_token=TOKEN,
                            message_center={"ingest": {"billing": source}})
    async with running_node(settings) as server:
        yield server


async def screenshot(page, name: str) -> None:
    await page.evaluate("window.scrollTo(0, 0)")  # the sticky bar at the top, where it belongs
    await save(page, name)


async def signed_in(browser, server):
    page = await (await browser.new_context(viewport={"width": 1280, "height": 900})).new_page()
    await page.goto(server.url + "/admin")
    await page.fill("#token", TOKEN)
    await page.press("#token", "Enter")
    await expect(page.locator("#live")).to_have_attribute("data-state", "live")
    return page


async def test_a_wrong_token_is_refused_and_the_console_stays_closed(console, browser):
    page = await browser.new_page()
    await page.goto(console.url + "/admin")
    await page.fill("#token", "not-the-token-at-all")
    await page.press("#token", "Enter")
    await expect(page.locator("#signin-error")).to_have_text("That token was refused.")
    await expect(page.locator("#console")).to_be_hidden()
    await screenshot(page, "admin-sign-in")


async def test_the_console_shows_the_live_node_and_refreshes(console, browser, stream):
    redis_client, name = stream
    alice, bob = await console.client("alice"), await console.client("bob")
    for client in (alice, bob):
        await client.call("subscribe", {"channel": "room:lobby"})
    page = await signed_in(browser, console)
    await expect(page.locator("#node-name")).to_have_text(console.node.name)
    await expect(page.locator("#kpi-connections .value")).to_have_text("2")
    await expect(page.locator("#nodes tbody tr")).to_have_count(1)
    await expect(page.locator("#protocols tbody td").first).to_have_text("native")
    await expect(page.locator('#namespaces [data-namespace="room"] .count')).to_have_text("2")
    # a third client appears without a reload
    carol = await console.client("carol")
    await expect(page.locator("#kpi-connections .value")).to_have_text("3")
    # traffic: the busiest channel, and an ingested notification with its lag
    for n in range(20):
        await alice.call("publish", {"channel": "room:lobby", "data": {"n": n}})
    await redis_client.xadd(name, {"notification": '{"id":"n1","source":"billing",'
                                                   '"to":{"user":"carol"},"data":{"t":1}}'})
    await redis_client.xadd(name, {"notification": "not json"})
    await expect(page.locator("#channels tbody tr").first).to_contain_text("room:lobby",
                                                                         timeout=10_000)
    ingest = page.locator("#ingest tbody tr").first
    await expect(ingest).to_contain_text("consuming")
    await expect(ingest.locator("td").nth(4)).to_have_text("1", timeout=10_000)
    await expect(ingest.locator("td").nth(5)).to_have_text("1")
    await expect(page.locator("#problems li").first).to_contain_text("dead-lettering")
    await expect(page.locator("#kpi-publications polyline")).to_have_count(1, timeout=10_000)
    await screenshot(page, "admin-overview")
    await carol.close()


async def test_look_up_a_user_and_disconnect_one_connection(console, browser):
    alice = await console.client("alice")
    await alice.call("subscribe", {"channel": "room:ops"})
    page = await signed_in(browser, console)
    await page.fill("#user-id", "alice")
    await page.press("#user-id", "Enter")
    row = page.locator(f'#user-connections tr[data-client="{alice.connect_result["client"]}"]')
    await expect(row).to_contain_text("native/websocket")
    await expect(row).to_contain_text("room:ops")
    await expect(page.locator("#user-inbox")).to_contain_text("0 unread")
    await screenshot(page, "admin-user")
    await row.locator("button").click()
    assert (await alice.closed())[0] == 4007
    await expect(page.locator("#user-connections td.empty")).to_contain_text("no connection")


async def test_presence_publish_and_disconnect_tools(console, browser):
    alice = await console.client("alice")
    await alice.call("subscribe", {"channel": "room:lobby"})
    page = await signed_in(browser, console)
    await page.fill("#presence-channel", "room:lobby")
    await page.press("#presence-channel", "Enter")
    await expect(page.locator("#presence-list tbody td").first).to_have_text("alice")
    await page.fill("#publish-channel", "room:lobby")
    await page.click("#publish-form button")
    await expect(page.locator("#publish-result")).to_have_text(
        "published to room:lobby at offset 1")
    assert (await alice.push("pub"))["data"] == {"text": "test from the admin console"}
    await page.fill("#publish-channel", "nowhere:x")
    await page.click("#publish-form button")
    await expect(page.locator("#publish-result")).to_contain_text("unknown namespace")
    await page.fill("#disconnect-user", "alice")
    await page.uncheck("#disconnect-reconnect")
    await page.click("#disconnect-form button")
    await expect(page.locator("#disconnect-result")).to_contain_text("1 connection(s) closed")
    assert (await alice.closed())[0] == 4502
    await screenshot(page, "admin-tools")

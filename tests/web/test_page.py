"""The web app at `/` in a real browser (Debian's Chromium), against a real node.

Each main view is saved as a screenshot under artifacts/screenshots/.
"""

from __future__ import annotations

import asyncio

from playwright.async_api import expect

from tests.conftest import free_port, running_node, settings_for
from tests.web.conftest import join_room, say, screenshot, signed_in


def texts(page, selector: str = ".messages .text"):
    return page.locator(selector).all_inner_texts()


async def test_the_page_and_its_module_are_served_without_a_build_step(server, browser):
    page = await browser.new_page()
    response = await page.goto(server.url + "/tidings.js")
    assert response.headers["content-type"].startswith("text/javascript")
    assert "export class Client" in await response.text()
    response = await page.goto(server.url + "/")
    assert "default-src 'self'" in response.headers["content-security-policy"]
    await expect(page.locator("#signin-user")).to_be_visible()
    await screenshot(page, "sign-in")


async def test_two_users_chat_in_a_room_and_a_refresh_keeps_the_history(server, browser):
    alice_ctx, bob_ctx = await browser.new_context(), await browser.new_context()
    alice, bob = await signed_in(alice_ctx, server, "alice"), await signed_in(bob_ctx, server, "bob")
    await join_room(alice, "lobby")
    await join_room(bob, "lobby")
    await expect(alice.locator("#members li")).to_have_text(["alice", "bob"])
    await say(alice, "#room-input", "hello bob")
    await say(bob, "#room-input", "hi alice")
    for page in (alice, bob):
        await expect(page.locator(".messages .text")).to_have_text(["hello bob", "hi alice"])
    await screenshot(alice, "room")
    await bob.reload()
    await expect(bob.locator(".messages .text")).to_have_text(["hello bob", "hi alice"])
    await expect(bob.locator("#status")).to_have_attribute("data-state", "connected")
    await bob.close()
    await expect(alice.locator("#members li")).to_have_text(["alice"])


async def test_history_pages_back_with_load_older(server, browser):
    api = await server.client("backend")
    await api.call("subscribe", {"channel": "room:long"})
    for n in range(60):
        await api.call("publish", {"channel": "room:long", "data": {"text": f"m{n}"}})
    page = await signed_in(await browser.new_context(), server, "reader")
    await join_room(page, "long")
    await expect(page.locator(".messages li")).to_have_count(50)
    await page.click(".older")
    await expect(page.locator(".messages li")).to_have_count(60)
    assert (await texts(page))[0] == "m0" and (await texts(page))[-1] == "m59"
    await expect(page.locator(".older.end")).to_be_visible()


async def test_a_direct_conversation_shows_both_sides_and_survives_a_refresh(server, browser):
    alice = await signed_in(await browser.new_context(), server, "alice")
    bob = await signed_in(await browser.new_context(), server, "bob")
    for page, peer in ((alice, "bob"), (bob, "alice")):
        await page.click("#tab-direct")
        await page.fill("#peer-name", peer)
        await page.press("#peer-name", "Enter")
        await page.wait_for_selector("#dm-input")
    await say(alice, "#dm-input", "psst, bob")
    await expect(bob.locator(".messages .text")).to_have_text(["psst, bob"])
    await say(bob, "#dm-input", "yes?")
    for page in (alice, bob):
        await expect(page.locator(".messages .text")).to_have_text(["psst, bob", "yes?"])
    await alice.reload()
    await expect(alice.locator(".messages .text")).to_have_text(["psst, bob", "yes?"])
    await screenshot(alice, "direct")


async def test_a_hostile_message_renders_as_text(server, browser):
    hostile = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>'
    alice = await signed_in(await browser.new_context(), server, "alice")
    bob = await signed_in(await browser.new_context(), server, "bob<b")  # ids may not hold ">"
    await join_room(alice, "evil<i")
    await join_room(bob, "evil<i")
    await say(bob, "#room-input", hostile)
    await expect(alice.locator(".messages .text")).to_have_text([hostile])
    await expect(alice.locator(".messages .who")).to_have_text(["bob<b"])
    await expect(alice.locator(".pane h2")).to_have_text("# evil<i")
    assert await alice.locator(".messages img, .messages script, .members b, h2 i").count() == 0
    assert await alice.evaluate("window.pwned") is None
    await screenshot(alice, "hostile")


async def test_the_chinese_ui_appears_for_a_zh_cn_browser(server, browser):
    context = await browser.new_context(locale="zh-CN")
    page = await context.new_page()
    await page.goto(server.url + "/")
    await expect(page.locator("#signin-button")).to_have_text("登录")
    await screenshot(page, "sign-in-zh")
    await page.fill("#signin-user", "xiaoming")
    await page.press("#signin-user", "Enter")
    await expect(page.locator("#status")).to_have_text("已连接")
    await expect(page.locator("#tab-rooms")).to_have_text("聊天室")
    await join_room(page, "dating")
    await say(page, "#room-input", "大家好")
    await expect(page.locator(".messages .text")).to_have_text(["大家好"])
    await screenshot(page, "room-zh")


async def test_a_phone_sized_screen_signed_in_with_the_keyboard_alone(server, browser):
    context = await browser.new_context(viewport={"width": 375, "height": 720}, is_mobile=True,
                                        has_touch=True)
    page = await context.new_page()
    await page.goto(server.url + "/")
    await page.keyboard.type("dana")  # the user id field has focus
    await page.keyboard.press("Enter")
    await expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    await page.focus("#room-name")
    await page.keyboard.type("phone")
    await page.keyboard.press("Enter")
    await expect(page.locator("#room-input")).to_be_focused()  # joining focuses the composer
    await page.keyboard.type("typed on a phone")
    await page.keyboard.press("Enter")
    await expect(page.locator(".messages .text")).to_have_text(["typed on a phone"])
    await page.focus("#tab-rooms")
    await page.keyboard.press("ArrowRight")
    await expect(page.locator("#tab-direct")).to_have_attribute("aria-selected", "true")
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375
    await page.keyboard.press("ArrowLeft")
    await screenshot(page, "phone")


async def test_a_second_tab_shares_the_connection_and_takes_over_without_loss(server, browser):
    context = await browser.new_context()
    first = await signed_in(context, server, "tabby")
    await join_room(first, "tabs")
    second = await context.new_page()
    await second.goto(server.url + "/")
    await expect(second.locator("#status")).to_have_attribute("data-state", "connected")
    await second.wait_for_selector("#room-input")
    assert len([s for s in server.node.sessions.values() if s.user == "tabby"]) == 1
    await say(first, "#room-input", "from tab one")
    await expect(second.locator(".messages .text")).to_have_text(["from tab one"])
    await first.close()  # the tab holding the socket goes; the second takes over
    other = await server.client("other")
    await other.call("subscribe", {"channel": "room:tabs"})
    await other.call("publish", {"channel": "room:tabs", "data": {"text": "while handing over"}})
    await expect(second.locator(".messages .text")).to_have_text(
        ["from tab one", "while handing over"])
    await say(second, "#room-input", "from tab two")
    await expect(second.locator(".messages .text")).to_have_text(
        ["from tab one", "while handing over", "from tab two"])


async def test_a_server_restart_mid_conversation_recovers_without_duplicates(tmp_path, browser):
    settings = settings_for(tmp_path, port=free_port())
    async with running_node(settings) as server:
        page = await signed_in(await browser.new_context(), server, "alice")
        await join_room(page, "restart")
        await say(page, "#room-input", "before the restart")
        await expect(page.locator(".messages .text")).to_have_text(["before the restart"])
    await expect(page.locator("#status")).to_have_attribute("data-state", "reconnecting")
    await screenshot(page, "reconnecting")
    async with running_node(settings) as server:
        backend = await server.client("bob")
        await backend.call("subscribe", {"channel": "room:restart"})
        for text in ("missed one", "missed two"):
            await backend.call("publish", {"channel": "room:restart", "data": {"text": text}})
        await expect(page.locator(".messages .text")).to_have_text(
            ["before the restart", "missed one", "missed two"], timeout=30000)
        await expect(page.locator("#status")).to_have_attribute("data-state", "connected")
        await say(page, "#room-input", "after")
        await expect(page.locator(".messages .text")).to_have_text(
            ["before the restart", "missed one", "missed two", "after"])
        await asyncio.sleep(0.3)
        assert await page.locator(".messages li").count() == 4
        await screenshot(page, "recovered")

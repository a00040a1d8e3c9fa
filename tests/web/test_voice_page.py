"""Voice rooms in a real browser: fake microphones, Opus through WebCodecs, AudioWorklet."""

from __future__ import annotations

from playwright.async_api import expect

from tests.cluster.test_voice import voice_cluster
from tests.web.conftest import screenshot, signed_in

USERS = ("va", "vb", "vc")


async def joined_voice(browser, server, user):
    # bypass_csp: Playwright evaluates its wait predicates as strings, which the CSP forbids
    page = await signed_in(await browser.new_context(permissions=["microphone"], bypass_csp=True), server, user)
    await page.click("#tab-voice")
    await page.fill("#voice-name", "huddle")
    await page.press("#voice-name", "Enter")
    await page.wait_for_function("window.tidingsVoiceStats && window.tidingsVoiceStats.codec !== 'none'")
    return page


async def stats(page) -> dict:
    return await page.evaluate("window.tidingsVoiceStats")


async def settled_count(page, sender: str) -> int:
    """Frames received from `sender` once none have arrived for half a second: what was in
    flight when the sender muted has landed (a loaded machine delays it by any amount)."""
    last = -1
    for _ in range(20):
        count = (await stats(page))["received"].get(sender, 0)
        if count == last:
            return count
        last = count
        await page.wait_for_timeout(500)
    raise AssertionError(f"frames from {sender} kept arriving after the mute")


async def test_three_members_hear_each_other_and_a_whisper_reaches_only_its_target(server, browser):
    pages = [await joined_voice(browser, server, user) for user in USERS]
    for page, user in zip(pages, USERS):
        others = [u for u in USERS if u != user]
        # each member's frames arrive, decode and are not silent (the fake device beeps)
        await page.wait_for_function(
            "(others) => others.every((u) => (window.tidingsVoiceStats.audible[u] || 0) >= 20)",
            arg=others, timeout=20000)
        got = await stats(page)
        assert got["codec"] == "opus", got
        assert set(got["received"]) == set(others)
        for other in others:
            assert got["decoded"][other] >= 20
    await expect(pages[1].locator('#voice-members li[data-user="va"]')).to_have_attribute(
        "data-speaking", "true")
    await screenshot(pages[0], "voice")

    # a whispered line and push-to-talk audio from va to vb only
    va, vb, vc = pages
    await va.select_option("#whisper-to", "vb")
    await va.fill("#whisper-input", "only for vb")
    await va.press("#whisper-input", "Enter")
    await expect(vb.locator("#whispers .text")).to_have_text(["only for vb"])
    await expect(vb.locator("#whispers .who")).to_have_text(["va whispers"])
    await va.click("#mute")  # muted: only the whisper goes out
    before = {p: await settled_count(p, "va") for p in (vb, vc)}
    await va.focus("#ptt")
    await va.keyboard.down(" ")
    await vb.wait_for_function(f"window.tidingsVoiceStats.received.va >= {before[vb] + 25}",
                               timeout=10000)
    await va.keyboard.up(" ")
    await va.wait_for_timeout(300)
    assert await settled_count(vc, "va") == before[vc]
    assert await vc.locator("#whispers li").count() == 0
    await screenshot(vb, "voice-whisper")


async def test_two_members_on_two_nodes_hear_each_other_and_whisper(browser, tmp_path):
    async with voice_cluster("redis", tmp_path) as cluster:
        n1, n2 = cluster.nodes[:2]
        va, vb = await joined_voice(browser, n1, "va"), await joined_voice(browser, n2, "vb")
        for page, other in ((va, "vb"), (vb, "va")):
            await page.wait_for_function(
                "(u) => (window.tidingsVoiceStats.audible[u] || 0) >= 20", arg=other,
                timeout=20000)
            got = await stats(page)
            assert got["decoded"][other] >= 20 and set(got["received"]) == {other}
        assert n2.node.voice.from_nodes >= 20 and n1.node.voice.from_nodes >= 20
        # who is in the room and who speaks, as the other node sees it
        await expect(vb.locator('#voice-members li[data-user="va"]')).to_have_attribute(
            "data-speaking", "true")
        await expect(va.locator('#voice-members li[data-user="vb"]')).to_have_count(1)
        await va.select_option("#whisper-to", "vb")
        await va.fill("#whisper-input", "across the cluster")
        await va.press("#whisper-input", "Enter")
        await expect(vb.locator("#whispers .text")).to_have_text(["across the cluster"])
        await screenshot(vb, "voice-two-nodes")

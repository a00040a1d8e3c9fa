"""The inbox over the native protocol and the server API, on a real node: counts, paging,
read state, the `inbox` push to the user's other connections, and idempotency keys.
"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.conftest import CommandError
from tidings.errors import ErrorCode


async def _api(server, method: str, path: str, **kwargs) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as http:
        async with http.request(method, f"{server.url}{path}", **kwargs) as resp:
            return resp.status, await resp.json(content_type=None)


async def _notify(server, user: str, source: str, count: int) -> list[int]:
    offsets = []
    for n in range(count):
        _, body = await _api(server, "POST", "/api/send",
                             json={"user": user, "source": source, "data": {"n": n}})
        offsets.append(body["offset"])
    return offsets


async def test_inbox_shows_exact_counts_and_newest_messages_per_source(server):
    await _notify(server, "ann", "billing", 3)
    await _notify(server, "ann", "orders", 2)
    await _api(server, "POST", "/api/send", json={"user": "ann", "data": "no source"})
    ann = await server.client("ann")
    inbox = await ann.call("inbox", {"limit": 2})
    assert (inbox["unread"], inbox["unseen"], inbox["version"], inbox["offset"]) == (5, 5, 0, 5)
    billing = inbox["sources"]["billing"]
    assert (billing["total"], billing["unread"], billing["unseen"]) == (3, 3, 3)
    assert [m["offset"] for m in billing["messages"]] == [3, 2]
    assert billing["messages"][0] == {**billing["messages"][0], "source": "billing",
                                      "data": {"n": 2}, "read": False, "seen": False}
    assert set(inbox["sources"]) == {"billing", "orders"}  # a message needs a source
    page = await ann.call("inbox", {"source": "billing", "before": 3, "limit": 5})
    assert [m["offset"] for m in page["messages"]] == [2, 1]
    assert (page["source"], page["total"], page["unread"]) == ("billing", 3, 3)


async def test_read_on_one_tab_pushes_the_new_counts_to_the_other_tabs(server):
    await _notify(server, "bea", "crm", 4)
    tab1, tab2, phone = [await server.client("bea") for _ in range(3)]
    reply = await tab1.call("read", {"offset": 2})
    assert reply["changed"] == 1 and reply["unread"] == 3 and reply["version"] == 1
    for other in (tab2, phone):
        push = await other.push("inbox")
        assert push == {k: v for k, v in reply.items() if k != "changed"}
    await tab1.no_push("inbox")  # the one that asked has the reply

    async def change(tab, method: str, params: dict) -> dict:
        """`method` on `tab`; every other tab gets the same counts, the asking one none."""
        reply = await tab.call(method, params)
        for other in {tab1, tab2, phone} - {tab}:
            assert await other.push("inbox") == {k: v for k, v in reply.items()
                                                 if k != "changed"}
        return reply

    assert (await change(tab2, "read", {"source": "crm", "upto": 3}))["unread"] == 1
    assert (await change(phone, "seen", {}))["unseen"] == 0
    assert (await change(tab1, "unread", {"offset": 2}))["unread"] == 2
    archived = await change(tab1, "archive", {"offset": 4})
    assert archived["sources"]["crm"]["total"] == 3 and archived["unread"] == 1
    final = await change(tab2, "read", {"all": True})
    assert final["unread"] == 0 and final["version"] == 6
    await tab2.no_push("inbox")


async def test_read_state_errors_are_documented_codes(server):
    await _notify(server, "cal", "ops", 1)
    cal = await server.client("cal")
    with pytest.raises(CommandError) as err:
        await cal.call("read", {"offset": 99})
    assert err.value.code == ErrorCode.NOT_IN_INBOX
    with pytest.raises(CommandError) as err:
        await cal.call("read", {})
    assert err.value.code == ErrorCode.BAD_REQUEST
    with pytest.raises(CommandError) as err:
        await cal.call("read", {"offset": 1, "all": True})
    assert err.value.code == ErrorCode.BAD_REQUEST
    other = await server.client("dee")  # another user cannot touch cal's messages
    with pytest.raises(CommandError) as err:
        await other.call("read", {"offset": 1})
    assert err.value.code == ErrorCode.NOT_IN_INBOX


async def test_the_server_api_reads_and_changes_a_users_inbox_and_every_tab_hears(server):
    await _notify(server, "eli", "hr", 3)
    tab = await server.client("eli")
    status, body = await _api(server, "GET", "/api/inbox", params={"user": "eli", "limit": 1})
    assert status == 200 and body["unread"] == 3
    assert [m["offset"] for m in body["sources"]["hr"]["messages"]] == [3]
    status, body = await _api(server, "GET", "/api/inbox",
                              params={"user": "eli", "source": "hr", "before": 3})
    assert [m["offset"] for m in body["messages"]] == [2, 1]
    status, body = await _api(server, "POST", "/api/inbox/read", json={"user": "eli", "offset": 1})
    assert status == 200 and body["user"] == "eli" and body["changed"] == 1
    assert (await tab.push("inbox"))["unread"] == 2  # the API has no tab: every one hears
    for path, payload in (("seen", {}), ("unread", {"offset": 1}), ("archive", {"offset": 2})):
        status, _ = await _api(server, "POST", f"/api/inbox/{path}", json={"user": "eli", **payload})
        assert status == 200
    status, body = await _api(server, "POST", "/api/inbox/read", json={"user": "eli", "all": True})
    assert body["unread"] == 0 and body["sources"]["hr"]["total"] == 2
    status, body = await _api(server, "POST", "/api/inbox/read", json={"user": "eli", "offset": 9})
    assert status == 404 and body["error"]["code"] == ErrorCode.NOT_IN_INBOX
    status, body = await _api(server, "GET", "/api/inbox", params={"user": "bad user"})
    assert status == 400


async def test_native_idempotency_keys_store_once_per_user_and_channel(server):
    fay = await server.client("fay")
    gus = await server.client("gus")
    first = await fay.call("send", {"user": "gus", "data": 1, "idempotency_key": "q1"})
    again = await fay.call("send", {"user": "gus", "data": 2, "idempotency_key": "q1"})
    assert again == first
    assert (await gus.push("pub"))["data"] == 1
    await gus.no_push()  # the repeat was not delivered
    other = await gus.call("send", {"user": "gus", "data": 3, "idempotency_key": "q1"})
    assert other["offset"] == first["offset"] + 1  # gus's key is not fay's
    await fay.call("subscribe", {"channel": "room:q"})
    one = await fay.call("publish", {"channel": "room:q", "data": 1, "idempotency_key": "q1"})
    assert one["offset"] == 1  # nor is another channel's


async def test_api_idempotency_key_in_the_body_or_header_answers_the_first_offset(server):
    body = {"channel": "room:api", "data": {"x": 1}}
    status, first = await _api(server, "POST", "/api/publish",
                               json={**body, "idempotency_key": "order-7"})
    status, again = await _api(server, "POST", "/api/publish", json=body,
                               headers={"Idempotency-Key": "order-7"})
    assert status == 200 and again == first
    history = await server.node.store.history("room:api", limit=10)
    assert len(history.publications) == 1
    concurrent = await asyncio.gather(*(
        _api(server, "POST", "/api/send", json={"user": "hal", "data": n},
             headers={"Idempotency-Key": "burst"}) for n in range(20)))
    assert len({b["offset"] for _, b in concurrent}) == 1
    status, body = await _api(server, "POST", "/api/send", json={
        "user": "hal", "data": 1, "idempotency_key": "a"}, headers={"Idempotency-Key": "b"})
    assert status == 400 and "differ" in body["error"]["message"]
    status, body = await _api(server, "POST", "/api/broadcast",
                              json={"data": 1, "idempotency_key": "x" * 101})
    assert status == 400 and "idempotency_key" in body["error"]["message"]


async def test_a_broadcast_with_a_source_is_a_shared_notification_read_per_user(server):
    for n in range(3):
        status, _ = await _api(server, "POST", "/api/broadcast",
                               json={"source": "status", "data": {"n": n}})
        assert status == 200
    await _notify(server, "fay", "hr", 1)
    fay, fay2, gus = (await server.client("fay"), await server.client("fay"),
                      await server.client("gus"))
    inbox = await fay.call("inbox", {"limit": 2})
    shared = inbox["shared"]["status"]
    assert (shared["total"], shared["unread"], inbox["unread"]) == (3, 3, 4)
    assert [m["data"] for m in shared["messages"]] == [{"n": 2}, {"n": 1}]
    reply = await fay.call("read", {"source": "status", "upto": shared["messages"][1]["offset"],
                                    "shared": True})
    assert reply["changed"] == 2 and reply["shared"]["status"]["unread"] == 1
    assert reply["sources"]["hr"]["unread"] == 1  # her own message is untouched
    assert (await fay2.push("inbox"))["shared"]["status"]["unread"] == 1
    assert (await gus.call("inbox", {}))["shared"]["status"]["unread"] == 3  # not his cursor
    with pytest.raises(CommandError) as err:
        await fay.call("read", {"offset": 1, "shared": True})
    assert err.value.code == ErrorCode.BAD_REQUEST
    status, body = await _api(server, "POST", "/api/inbox/read",
                              json={"user": "gus", "source": "status", "shared": True})
    assert status == 200 and body["changed"] == 3 and body["unread"] == 0

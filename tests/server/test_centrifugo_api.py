"""`cent` (PyPI, Centrifugo's server API client) against Tidings at /api/centrifugo."""

from __future__ import annotations

import uuid

import aiohttp
import pytest
from cent import (
    AsyncClient,
    BroadcastRequest,
    DisconnectRequest,
    HistoryRequest,
    InfoRequest,
    PresenceRequest,
    PresenceStatsRequest,
    PublishRequest,
    StreamPosition,
)
from cent.exceptions import CentApiResponseError, CentUnauthorizedError

from tests.conftest import running_node, settings_for
from tests.server.centrifugo_clients import SECRET, centrifuge_js, token, ws_url  # noqa: F401


@pytest.fixture
async def secured(tmp_path):
    async with running_node(settings_for(tmp_path, jwt_secret=SECRET, api_key="k")) as running:
        yield running


@pytest.fixture
async def cent(secured):
    client = AsyncClient(f"{secured.url}/api/centrifugo", "k")
    yield client
    await client.close()


def _room() -> str:
    return f"room:cent-{uuid.uuid4().hex[:8]}"


async def test_cent_publishes_and_broadcasts_to_sdk_clients(cent, secured, centrifuge_js):
    room, other = _room(), _room()
    alice = await centrifuge_js(ws_url(secured.port), token=token("alice"))
    await alice.subscribe(room)
    await alice.subscribe(other)
    published = await cent.publish(PublishRequest(channel=room, data={"n": 1},
                                                  tags={"source": "billing"}))
    assert published.offset == 1 and published.epoch
    pub = await alice.event("publication", channel=room)
    assert (pub["data"], pub["tags"]) == ({"n": 1}, {"source": "billing"})
    result = await cent.broadcast(BroadcastRequest(channels=[room, other, "nowhere:x"],
                                                   data={"n": 2}))
    first, second, bad = result.responses
    assert (first.result.offset, second.result.offset) == (2, 1)
    assert bad.error.code == 102
    assert (await alice.event("publication", channel=other))["data"] == {"n": 2}
    await cent.publish(PublishRequest(channel="user:alice", data="direct"))
    assert (await alice.event("publication", channel="user:alice"))["data"] == "direct"


async def test_cent_reads_history_presence_and_info(cent, secured, centrifuge_js):
    room = _room()
    alice = await centrifuge_js(ws_url(secured.port), token=token("alice", info={"n": "A"}))
    await alice.subscribe(room)
    for n in range(1, 4):
        await cent.publish(PublishRequest(channel=room, data=n))
    everything = await cent.history(HistoryRequest(channel=room, limit=10))
    assert [p.data for p in everything.publications] == [1, 2, 3]
    assert everything.offset == 3
    newest = await cent.history(HistoryRequest(channel=room, limit=1, reverse=True))
    assert [p.data for p in newest.publications] == [3]
    since = await cent.history(HistoryRequest(
        channel=room, limit=10, since=StreamPosition(offset=1, epoch=everything.epoch)))
    assert [p.offset for p in since.publications] == [2, 3]
    position_only = await cent.history(HistoryRequest(channel=room))
    assert (position_only.publications, position_only.offset) == ([], 3)
    with pytest.raises(CentApiResponseError) as gone:
        await cent.history(HistoryRequest(channel=room, limit=1,
                                          since=StreamPosition(offset=1, epoch="other")))
    assert gone.value.code == 112
    presence = await cent.presence(PresenceRequest(channel=room))
    [info] = presence.presence.values()
    assert (info.user, info.conn_info) == ("alice", {"n": "A"})
    stats = await cent.presence_stats(PresenceStatsRequest(channel=room))
    assert (stats.num_clients, stats.num_users) == (1, 1)
    nodes = (await cent.info(InfoRequest())).nodes
    assert [(n.name, n.version.split()[0]) for n in nodes] == [(secured.node.name, "tidings")]


async def test_cent_disconnects_a_user_for_good_or_to_reconnect(cent, secured, centrifuge_js):
    alice = await centrifuge_js(ws_url(secured.port), token=token("alice"))
    await cent.disconnect(DisconnectRequest(user="alice",
                                            disconnect={"code": 3011, "reason": "move"}))
    again = await alice.event("connecting", code=3011)
    assert again["reason"] == "disconnected by the server"
    await alice.event("connected")
    await cent.disconnect(DisconnectRequest(user="alice"))
    stopped = await alice.event("disconnected")
    assert stopped["code"] == 3503


async def test_what_tidings_cannot_honour_is_not_available(cent):
    with pytest.raises(CentApiResponseError) as skip:
        await cent.publish(PublishRequest(channel=_room(), data=1, skip_history=True))
    assert skip.value.code == 108
    async with aiohttp.ClientSession(headers={"X-API-Key": "k"}) as http:
        async with http.post(cent._session._base_url + "/channels", json={}) as resp:
            assert (resp.status, (await resp.json())["error"]["code"]) == (200, 108)
        async with http.post(cent._session._base_url + "/nosuch", json={}) as resp:
            assert (await resp.json())["error"]["code"] == 104


async def test_a_wrong_api_key_is_unauthorized(secured):
    client = AsyncClient(f"{secured.url}/api/centrifugo", "wrong")
    try:
        with pytest.raises(CentUnauthorizedError):
            await client.publish(PublishRequest(channel=_room(), data=1))
    finally:
        await client.close()

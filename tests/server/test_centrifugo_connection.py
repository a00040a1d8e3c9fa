"""The Centrifugo endpoint with the real SDKs: centrifuge-js (JSON and Protobuf builds) on
Node, centrifuge-python; every feature a Centrifugo user relies on, against a real node."""

from __future__ import annotations

import asyncio
import uuid

import aiohttp
import pytest

from tests.conftest import running_node, settings_for
from tests.server.centrifugo_clients import (  # noqa: F401  (fixture)
    SECRET,
    CentrifugoCallFailed,
    centrifuge_js,
    token,
    ws_url,
)

FORMATS = ["json", "protobuf"]


@pytest.fixture
async def secured(tmp_path):
    """A node with JWT auth (HS256) and an API key, as a Centrifugo deployment has."""
    settings = settings_for(tmp_path, jwt_secret=SECRET, api_key="k")
    async with running_node(settings) as running:
        yield running


def _room() -> str:
    return f"room:cf-{uuid.uuid4().hex[:8]}"


async def _api(server, method: str, body: dict) -> dict:
    async with aiohttp.ClientSession(headers={"Authorization": "apikey k"}) as http:
        async with http.post(f"{server.url}/api/{method}", json=body) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()


@pytest.mark.parametrize("format", FORMATS)
async def test_centrifuge_js_connects_subscribes_publishes_and_reads_history(secured,
                                                                             centrifuge_js,
                                                                             format):
    room = _room()
    alice = await centrifuge_js(ws_url(secured.port), token=token("alice"),
                                protobuf=format == "protobuf")
    subscribed = await alice.subscribe(room)
    assert (subscribed["recoverable"], subscribed["positioned"]) == (True, True)
    assert subscribed["offset"] == 0
    await alice.call("publish", channel=room, data={"text": "hello"})
    [pub] = await alice.publications(1, channel=room)
    assert (pub["data"], pub["offset"], pub["user"]) == ({"text": "hello"}, 1, "alice")
    history = await alice.call("history", channel=room, options={"limit": 10})
    assert [p["data"] for p in history["publications"]] == [{"text": "hello"}]
    assert history["offset"] == 1 and history["epoch"] == subscribed["epoch"]

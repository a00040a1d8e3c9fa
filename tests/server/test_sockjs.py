"""SockJS at /sockjs over raw HTTP: info, CORS, polling, streaming, sessions, limits."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import orjson
import pytest

from tidings.errors import CloseCode
from tidings.protocol import stomp

CONNECT = stomp.encode("CONNECT", [("accept-version", "1.2"), ("login", "alice")]).decode()


def _messages(body: bytes) -> list[str]:
    assert body.startswith(b"a["), body
    return orjson.loads(body[1:])


async def test_greeting_and_info(server):
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{server.url}/sockjs") as resp:
            assert await resp.text() == "Welcome to SockJS!\n"
        async with http.get(f"{server.url}/sockjs/info",
                            headers={"Origin": "http://page.example"}) as resp:
            info = await resp.json()
            assert info["websocket"] is True and info["cookie_needed"] is False
            assert resp.headers["Access-Control-Allow-Origin"] == "http://page.example"
            assert "no-store" in resp.headers["Cache-Control"]
        async with http.options(f"{server.url}/sockjs/1/s/xhr_send",
                                headers={"Access-Control-Request-Headers": "content-type"}) as resp:
            assert resp.status == 204
            assert resp.headers["Access-Control-Allow-Methods"] == "OPTIONS, POST"
            assert resp.headers["Access-Control-Allow-Headers"] == "content-type"


async def test_polling_session_open_send_poll_and_close(server):
    base = f"{server.url}/sockjs/000/poll1"
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/xhr") as resp:
            assert await resp.read() == b"o\n"
            assert resp.headers["Content-Type"].startswith("application/javascript")
        async with http.post(f"{base}/xhr_send", data=orjson.dumps([CONNECT])) as resp:
            assert resp.status == 204
        async with http.post(f"{base}/xhr") as resp:
            [connected] = _messages(await resp.read())
            assert connected.startswith("CONNECTED\n")
        subscribe = stomp.encode("SUBSCRIBE", [("id", "0"), ("destination", "/topic/p"),
                                               ("receipt", "r")]).decode()
        send = stomp.encode("SEND", [("destination", "/topic/p")], b"hi").decode()
        poll = asyncio.create_task(http.post(f"{base}/xhr"))  # waits for frames
        await asyncio.sleep(0.2)
        async with http.post(f"{base}/xhr") as resp:  # one receiving request at a time
            assert await resp.read() == b'c[2010,"Another connection still open"]\n'
        async with http.post(f"{base}/xhr_send", data=orjson.dumps([subscribe, send])):
            pass
        resp = await poll
        frames = _messages(await resp.read())
        async with http.post(f"{base}/xhr") as more:
            frames += _messages(await more.read()) if len(frames) < 2 else []
        assert frames[0].startswith("RECEIPT") and frames[1].startswith("MESSAGE")
        disconnect = stomp.encode("DISCONNECT", []).decode()
        async with http.post(f"{base}/xhr_send", data=orjson.dumps([disconnect])):
            pass
        async with http.post(f"{base}/xhr") as resp:
            assert (await resp.read()).startswith(b"c[1000,")
        async with http.post(f"{base}/xhr_send", data=b'["x"]') as resp:
            assert resp.status == 404


async def test_xhr_send_errors(server):
    base = f"{server.url}/sockjs/000/bad"
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{server.url}/sockjs/000/nobody/xhr_send", data=b'["x"]') as resp:
            assert resp.status == 404
        async with http.post(f"{base}/xhr"):
            pass
        async with http.post(f"{base}/xhr_send", data=b"[not json") as resp:
            assert (resp.status, await resp.text()) == (500, "Broken JSON encoding.")
        async with http.post(f"{base}/xhr_send", data=b"") as resp:
            assert (resp.status, await resp.text()) == (500, "Payload expected.")
        async with http.post(f"{server.url}/sockjs/000/a.b/xhr") as resp:
            assert resp.status == 404


async def test_streaming_prelude_frames_and_the_response_limit(make_server):
    async with make_server(stomp={"sockjs_streaming_limit": 4096}) as server:
        base = f"{server.url}/sockjs/000/stream1"
        async with aiohttp.ClientSession() as http:
            resp = await http.post(f"{base}/xhr_streaming")
            assert await resp.content.readexactly(2049) == b"h" * 2048 + b"\n"
            assert await resp.content.readline() == b"o\n"
            await http.post(f"{base}/xhr_send", data=orjson.dumps([CONNECT]))
            line = await resp.content.readline()
            assert _messages(line.strip())[0].startswith("CONNECTED")
            subscribe = stomp.encode("SUBSCRIBE", [("id", "0"), ("destination", "/topic/s")])
            await http.post(f"{base}/xhr_send", data=orjson.dumps([subscribe.decode()]))
            big = stomp.encode("SEND", [("destination", "/topic/s")], b"x" * 1500).decode()
            await http.post(f"{base}/xhr_send", data=orjson.dumps([big] * 4))
            body = await asyncio.wait_for(resp.read(), 5)  # the response ends past the limit
            assert body.count(b"MESSAGE") >= 2
            again = await http.post(f"{base}/xhr_streaming")
            await again.content.readexactly(2049)
            rest = await asyncio.wait_for(again.content.readline(), 5)
            assert b"MESSAGE" in rest  # what came meanwhile waited in the session
            again.close()


async def test_a_session_without_receiving_requests_expires(make_server):
    async with make_server(stomp={"sockjs_disconnect_delay": 0.5}) as server:
        base = f"{server.url}/sockjs/000/gone"
        async with aiohttp.ClientSession() as http:
            await http.post(f"{base}/xhr")
            await http.post(f"{base}/xhr_send", data=orjson.dumps([CONNECT]))
            assert len(server.node.sessions) == 1
            for _ in range(60):
                if not server.node.sessions:
                    break
                await asyncio.sleep(0.1)
            assert not server.node.sessions
            async with http.post(f"{base}/xhr_send", data=b'["x"]') as resp:
                assert resp.status == 404


async def test_frames_past_the_outgoing_limit_close_a_polling_session(make_server):
    async with make_server(max_outgoing_bytes=65536) as server:
        base = f"{server.url}/sockjs/000/slow"
        async with aiohttp.ClientSession() as http:
            await http.post(f"{base}/xhr")
            subscribe = stomp.encode("SUBSCRIBE", [("id", "0"), ("destination", "/topic/f")])
            await http.post(f"{base}/xhr_send", data=orjson.dumps([CONNECT, subscribe.decode()]))
            session = next(iter(server.node.sessions.values()))
            publisher = await server.client("pub")
            await publisher.call("subscribe", {"channel": "room:f"})
            for _ in range(40):
                await publisher.call("publish", {"channel": "room:f", "data": "y" * 4000})
            for _ in range(50):
                if session.closed:
                    break
                await asyncio.sleep(0.05)
            assert session.closed
            async with http.post(f"{base}/xhr") as resp:
                body = await resp.read()
            assert b"MESSAGE" in body or body.startswith(b"c[4004")


async def test_the_websocket_transport_and_a_token_in_the_url_kept_out_of_logs(
        make_server, caplog):
    import websockets

    async with make_server(jwt_secret="a-long-enough-secret-for-hs256-tokens!") as server:
        caplog.set_level(logging.DEBUG)
        url = f"ws://127.0.0.1:{server.port}/sockjs/000/ws1/websocket?token=SECRET-IN-URL"
        async with websockets.connect(url) as ws:
            assert await ws.recv() == "o"
            await ws.send(orjson.dumps([CONNECT]).decode())
            [error] = orjson.loads((await ws.recv())[1:])
            assert error.startswith("ERROR") and "invalid token" in error
            close = await ws.recv()
            assert close.startswith(f"c[{int(CloseCode.UNAUTHORIZED)},")
        server_side = [r.getMessage() for r in caplog.records
                       if not r.name.startswith("websockets")]  # the client logs its own URL
        assert not any("SECRET-IN-URL" in text for text in server_side)


async def test_raw_websocket_under_sockjs_speaks_plain_stomp(server):
    import websockets

    async with websockets.connect(f"ws://127.0.0.1:{server.port}/sockjs/websocket") as ws:
        await ws.send(CONNECT)
        assert (await ws.recv()).startswith("CONNECTED")


@pytest.mark.parametrize("path", ["/sockjs/000/x/eventsource", "/sockjs/000/x/jsonp"])
async def test_transports_left_out_answer_404(server, path):
    async with aiohttp.ClientSession() as http:
        async with http.get(server.url + path) as resp:
            assert resp.status == 404

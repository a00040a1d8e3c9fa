"""The voice ceiling: a bare binary relay on aiohttp + uvloop, the stack Tidings runs on.

A client opens `/room/<name>`; each binary frame it sends is framed once and written to every
other client of that room. No protocol, no header, no membership check, no rate limit, no
speaking detection: whatever Tidings' voice relay adds shows as its distance from this.
"""

import os
import struct

import uvloop
from aiohttp import WSMsgType, web

rooms: dict[str, dict] = {}


def frame(payload: bytes) -> bytes:
    size = len(payload)
    if size < 126:
        return bytes((0x82, size)) + payload
    return struct.pack("!BBH", 0x82, 126, size) + payload


async def handle(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(compress=False)
    await ws.prepare(request)
    members = rooms.setdefault(request.match_info["name"], {})
    write = request.transport.write
    members[ws] = write
    try:
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                data = frame(msg.data)
                for other, send in members.items():
                    if other is not ws:
                        send(data)
    finally:
        members.pop(ws, None)
    return ws


if __name__ == "__main__":
    app = web.Application()
    app.add_routes([web.get("/room/{name}", handle)])
    web.run_app(app, host="127.0.0.1", port=int(os.environ["PORT"]), print=None,
                access_log=None, loop=uvloop.new_event_loop())

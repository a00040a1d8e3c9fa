"""The ceiling: a bare broadcast relay on aiohttp + uvloop, the stack Tidings runs on.

No protocol, no storage, no auth, one room: a text frame from a publisher (`/pub`) goes to
every subscriber (`/`), and the publisher gets "ok" back, as the other servers acknowledge a
publish. Whatever Tidings adds on top (parsing, routing, ordering, durable storage) shows as
its distance from this. See _relay.py for the two write modes.
"""

import os

import uvloop
from aiohttp import WSMsgType, web

from _relay import MODE, OK, Coalescer, frame

subscribers: dict = {}  # WebSocketResponse -> transport.write
coalescer = Coalescer(lambda: list(subscribers.values()))


async def handle(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(compress=False, max_msg_size=1 << 20)
    await ws.prepare(request)
    write = request.transport.write
    if request.path == "/":
        subscribers[ws] = write
    try:
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            if MODE == "naive":
                data = frame(msg.data.encode())
                for other in list(subscribers.values()):
                    other(data)
            else:
                coalescer.relay(msg.data.encode())
            write(OK)
    finally:
        subscribers.pop(ws, None)
    return ws


if __name__ == "__main__":
    port = int(os.environ.get("PORT", "9003"))
    app = web.Application()
    app.add_routes([web.get("/", handle), web.get("/pub", handle)])
    print(f"ready {port}", flush=True)
    # the listen backlog Tidings has: thousands of clients connect at once
    web.run_app(app, host="127.0.0.1", port=port, print=None, loop=uvloop.new_event_loop(),
                access_log=None, backlog=4096)

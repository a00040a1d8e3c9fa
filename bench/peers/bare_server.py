"""The ceiling: a bare broadcast server on aiohttp + uvloop, Tidings' own stack.

No protocol, no storage, no auth: a text frame from any client is written, pre-encoded once,
to every other client, straight to the transports (as Tidings' hub does). Whatever Tidings
adds on top (routing, ordering, storage) shows as the distance from this.
"""

import os

import uvloop
from aiohttp import WSMsgType, web

from tidings.protocol import wsframe

clients: dict = {}
OK = wsframe.text(b"ok")


async def handle(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(compress=False, max_msg_size=1 << 20)
    await ws.prepare(request)
    transport = request.transport
    clients[ws] = transport.write
    try:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                frame = wsframe.text(msg.data.encode())
                for other, write in list(clients.items()):
                    if other is not ws:
                        write(frame)
                transport.write(OK)  # the publisher's acknowledgement, as the others give
    finally:
        clients.pop(ws, None)
    return ws


if __name__ == "__main__":
    port = int(os.environ.get("PORT", "9003"))
    app = web.Application()
    app.add_routes([web.get("/", handle)])
    print(f"ready {port}", flush=True)
    web.run_app(app, host="127.0.0.1", port=port, print=None, loop=uvloop.new_event_loop(),
                access_log=None)

"""Bare broadcast on picows (stack-choice comparison): relay each text frame to every other client."""

import asyncio
import os

import uvloop
from picows import WSListener, WSMsgType, ws_create_server

clients: set = set()


class Relay(WSListener):
    def on_ws_connected(self, transport) -> None:
        self.transport = transport
        clients.add(transport)

    def on_ws_disconnected(self, transport) -> None:
        clients.discard(transport)

    def on_ws_frame(self, transport, frame) -> None:
        if frame.msg_type == WSMsgType.TEXT:
            payload = frame.get_payload_as_bytes()
            for other in list(clients):
                if other is not transport:
                    other.send(WSMsgType.TEXT, payload)
            transport.send(WSMsgType.TEXT, b"ok")
        elif frame.msg_type == WSMsgType.CLOSE:
            transport.disconnect()


async def main() -> None:
    port = int(os.environ.get("PORT", "9004"))
    server = await ws_create_server(lambda request: Relay(), "127.0.0.1", port)
    print(f"ready {port}", flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(main())

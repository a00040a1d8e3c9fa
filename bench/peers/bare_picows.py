"""The bare relay on picows (stack-choice comparison only: picows serves no plain HTTP)."""

import os

import uvloop
from picows import WSListener, WSMsgType, WSUpgradeRequest, ws_create_server

from _relay import MODE, OK, Coalescer

subscribers: dict = {}  # WSTransport -> raw transport write
coalescer = Coalescer(lambda: list(subscribers.values()))


class Relay(WSListener):
    def __init__(self, publisher: bool):
        self.publisher = publisher

    def on_ws_connected(self, transport) -> None:
        if not self.publisher:
            subscribers[transport] = transport.underlying_transport.write

    def on_ws_disconnected(self, transport) -> None:
        subscribers.pop(transport, None)

    def on_ws_frame(self, transport, frame) -> None:
        if frame.msg_type == WSMsgType.TEXT:
            payload = frame.get_payload_as_bytes()
            if MODE == "naive":
                for other in list(subscribers):
                    other.send(WSMsgType.TEXT, payload)
            else:
                coalescer.relay(payload)
            transport.underlying_transport.write(OK)
        elif frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()


def listener(request: WSUpgradeRequest) -> Relay:
    return Relay(publisher=request.path.startswith(b"/pub"))


async def main() -> None:
    port = int(os.environ.get("PORT", "9004"))
    server = await ws_create_server(listener, "127.0.0.1", port)
    print(f"ready {port}", flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(main())

"""The bare relay on `websockets` (stack-choice comparison only); naive mode uses its own
broadcast(), which encodes a message once and writes it to each connection."""

import asyncio
import os

import uvloop
from websockets.asyncio.server import broadcast, serve

from _relay import MODE, OK, Coalescer

subscribers: dict = {}  # ServerConnection -> raw transport write
coalescer = Coalescer(lambda: list(subscribers.values()))


async def handle(ws) -> None:
    if ws.request.path == "/":
        subscribers[ws] = ws.transport.write
    try:
        async for message in ws:
            if MODE == "naive":
                broadcast(list(subscribers), message)
            else:
                coalescer.relay(message.encode() if isinstance(message, str) else message)
            ws.transport.write(OK)
    finally:
        subscribers.pop(ws, None)


async def main() -> None:
    port = int(os.environ.get("PORT", "9005"))
    async with serve(handle, "127.0.0.1", port, compression=None, ping_interval=None,
                     max_size=1 << 20):
        print(f"ready {port}", flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    uvloop.run(main())

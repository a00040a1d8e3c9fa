"""Bare broadcast on `websockets` (stack-choice comparison), with its own broadcast()."""

import asyncio
import os

import uvloop
from websockets.asyncio.server import broadcast, serve

clients: set = set()


async def handle(ws) -> None:
    clients.add(ws)
    try:
        async for message in ws:
            broadcast([c for c in clients if c is not ws], message)
            await ws.send("ok")
    finally:
        clients.discard(ws)


async def main() -> None:
    port = int(os.environ.get("PORT", "9005"))
    async with serve(handle, "127.0.0.1", port, compression=None, ping_interval=None,
                     max_size=1 << 20):
        print(f"ready {port}", flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    uvloop.run(main())

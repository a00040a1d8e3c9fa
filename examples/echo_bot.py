"""A bot in a room: answers every `!echo <text>` with `<text>`, across reconnects.

    TIDINGS_WS_URL=ws://127.0.0.1:8000/ws python examples/echo_bot.py [--answers N]

It connects as the user `echo-bot` on a node without auth, or with the JWT in TIDINGS_TOKEN.
The client reconnects and recovers by itself; a `Reset` means it missed too much to recover,
so it reads the newest page of history instead.
"""

import argparse
import asyncio
import os

from tidings.client import Join, Leave, Publication, RealtimeClient, Reset


async def main(answers: int | None) -> None:
    url = os.environ.get("TIDINGS_WS_URL", "ws://127.0.0.1:8000/ws")
    token = os.environ.get("TIDINGS_TOKEN")
    async with RealtimeClient(url, token=token, user=None if token else "echo-bot") as client:
        room = await client.subscribe("room:lobby")
        print(f"connected to {client.node} as {client.user}", flush=True)
        answered = 0
        async for event in room:
            if isinstance(event, Publication) and event.sender != client.user:
                text = event.data.get("text", "") if isinstance(event.data, dict) else ""
                if text.startswith("!echo "):
                    await client.publish("room:lobby", {"text": text.removeprefix("!echo ")})
                    answered += 1
                    if answers is not None and answered >= answers:
                        return
            elif isinstance(event, Reset):
                page = await client.history("room:lobby", limit=20, reverse=True)
                print(f"missed too much ({event.reason}); {len(page.publications)} reloaded")
            elif isinstance(event, (Join, Leave)):
                print(f"{type(event).__name__.lower()}: {event.member.user}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--answers", type=int, help="stop after this many answers")
    asyncio.run(main(parser.parse_args().answers))

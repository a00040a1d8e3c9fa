"""A backend sends a user a notification and reads their history back, through the server API.

    TIDINGS_URL=http://127.0.0.1:8000 TIDINGS_API_KEY=... python examples/publish.py
"""

import asyncio
import os

from tidings.client import ApiClient, ApiError


async def main() -> None:
    url = os.environ.get("TIDINGS_URL", "http://127.0.0.1:8000")
    async with ApiClient(url, api_key=os.environ.get("TIDINGS_API_KEY")) as api:
        sent = await api.send("bob", {"text": "invoice ready"}, source="billing")
        print(f"stored in {sent.channel} at offset {sent.offset}")
        page = await api.history("user:bob", limit=5, reverse=True)
        for pub in page.publications:
            print(pub.offset, pub.source, pub.data)
        try:
            await api.publish("nowhere:x", 1)
        except ApiError as exc:
            print(f"refused: {exc.code} {exc.message}")


asyncio.run(main())

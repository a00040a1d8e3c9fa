"""A typed asyncio client for a node's server API (docs/api.md), for backends and scripts.

It speaks HTTP through aiohttp's client only; nothing of the server side is imported, so a
backend that publishes to Tidings does not load the gateway.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson

from tidings.client.errors import ApiError, Unreachable
from tidings.client.types import Disconnected, Health, HistoryPage, Info, Presence, Published

DEFAULT_URL = "http://127.0.0.1:8000"
INTERNAL = 100  # the protocol's error code for a failure without a JSON error body


class ApiClient:
    """One node's server API: `async with ApiClient(url, api_key=...) as api: ...`.

    Every method raises ApiError when the node answers with an error and Unreachable when
    it does not answer within `timeout` seconds.
    """

    def __init__(self, url: str = DEFAULT_URL, *, api_key: str | None = None,
                 timeout: float = 10.0):
        self.url = url.rstrip("/")
        self._headers = {"Authorization": f"apikey {api_key}"} if api_key else {}
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> "ApiClient":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    # ---- publishing ------------------------------------------------------------------

    async def publish(self, channel: str, data: Any, *, source: str | None = None) -> Published:
        """Publish to any channel; answers once the publication is durable."""
        return _published(await self._post("/api/publish",
                                           _with_source({"channel": channel, "data": data}, source)))

    async def send(self, user: str, data: Any, *, source: str | None = None) -> Published:
        """A direct message to every connection of `user` (stored while they are offline)."""
        return _published(await self._post("/api/send",
                                           _with_source({"user": user, "data": data}, source)))

    async def broadcast(self, data: Any, *, source: str | None = None) -> Published:
        return _published(await self._post("/api/broadcast", _with_source({"data": data}, source)))

    async def disconnect(self, user: str, *, reconnect: bool = True,
                         client: str | None = None) -> Disconnected:
        """Close `user`'s connections cluster-wide (4007, or 4502 with reconnect=False)."""
        body: dict = {"user": user, "reconnect": reconnect}
        if client is not None:
            body["client"] = client
        answer = await self._post("/api/disconnect", body)
        return Disconnected(answer["user"], answer["closed_here"])

    # ---- reading ---------------------------------------------------------------------

    async def history(self, channel: str, *, limit: int | None = None, since: int | None = None,
                      reverse: bool = False) -> HistoryPage:
        """One page; pass the last offset of a page as `since` for the next one."""
        query: dict[str, str] = {"channel": channel, "reverse": "true" if reverse else "false"}
        if limit is not None:
            query["limit"] = str(limit)
        if since is not None:
            query["since"] = str(since)
        return HistoryPage.from_wire(await self._get("/api/history", query))

    async def presence(self, channel: str) -> Presence:
        return Presence.from_wire(await self._get("/api/presence", {"channel": channel}))

    async def inbox(self, user: str, *, source: str | None = None,
                    limit: int | None = None) -> dict:
        """A user's message center: per source, unread counts and the newest messages."""
        query = {"user": user}
        if source is not None:
            query["source"] = source
        if limit is not None:
            query["limit"] = str(limit)
        return await self._get("/api/inbox", query)

    async def info(self) -> Info:
        """The node that answered and every live node of its cluster."""
        return Info.from_wire(await self._get("/api/info", {}))

    async def health(self) -> Health:
        """What a load balancer sees; a 503 is an answer here, not an error."""
        status, body = await self._request("GET", "/health", params={})
        if not isinstance(body, dict) or "status" not in body:
            raise ApiError(status, INTERNAL, f"/health answered {body!r}")
        return Health(status == 200, body["status"], body.get("node", ""), body)

    # ---- HTTP ------------------------------------------------------------------------

    async def _get(self, path: str, query: dict[str, str]) -> dict:
        return _ok(*await self._request("GET", path, params=query))

    async def _post(self, path: str, body: dict) -> dict:
        return _ok(*await self._request("POST", path, data=orjson.dumps(body)))

    async def _request(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=self._timeout, headers=self._headers)
        try:
            async with self._http.request(method, self.url + path, **kwargs) as resp:
                raw = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise Unreachable(f"{self.url} did not answer: {exc or type(exc).__name__}") from None
        try:
            return status, orjson.loads(raw)
        except orjson.JSONDecodeError:
            return status, raw.decode(errors="replace")


def _ok(status: int, body: Any) -> dict:
    if status == 200 and isinstance(body, dict):
        return body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        raise ApiError(status, error.get("code", INTERNAL), error.get("message", ""))
    raise ApiError(status, INTERNAL, str(body)[:200] or f"HTTP {status}")


def _with_source(body: dict, source: str | None) -> dict:
    if source is not None:
        body["source"] = source
    return body


def _published(answer: dict) -> Published:
    return Published(answer["channel"], answer.get("offset"), answer.get("epoch"))

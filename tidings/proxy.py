"""The application's backend as the authority: HTTP hooks asked on connect, subscribe, publish.

Modelled on Centrifugo's proxy, so that an application keeps its own membership rules and
sessions (cookies) instead of minting tokens. Each hook is one `POST` of a JSON object to
its URL (`security.proxy.*_url`), carrying the handshake headers named in
`security.proxy.headers` (cookies, `Authorization`, ...), answered within `timeout`:

    {"result": {...}}                 yes (connect: `result` names the user)
    {"error": {"message": "..."}}     no: the client is told the message

Anything else (a status other than 200, another body, a timeout, a refused connection) is a
failing backend: the client gets error 111 and may retry; it is logged (at most every 10 s
per hook, without headers or bodies) and never cached. Subscribe and publish answers, yes
and no, are kept for `cache_ttl` per (hook, user, channel), at most `cache_size` of them,
so a page reload or a busy room costs the backend nothing more. Connect answers depend on
the cookies and are never kept.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass

import aiohttp
import orjson
from yarl import URL

from tidings.config import Proxy
from tidings.metrics import Metrics
from tidings.peer import Peer

log = logging.getLogger("tidings.proxy")

LOG_EVERY = 10.0


class ProxyDenied(Exception):
    """The backend said no; the message is the backend's, for the client."""


class ProxyFailed(Exception):
    """The backend gave no usable answer; the message is for the client and the log."""


@dataclass(slots=True, frozen=True)
class _Answer:
    expires: float
    denied: str | None  # the backend's message, or None for yes


class ProxyHooks:
    def __init__(self, settings: Proxy, metrics: Metrics):
        self.settings = settings
        self.metrics = metrics
        self._http: aiohttp.ClientSession | None = None
        self._cache: OrderedDict[tuple[str, str, str], _Answer] = OrderedDict()
        self._logged: dict[str, float] = {}

    async def connect(self, client: str, peer: Peer) -> dict:
        """The backend's `result` for a client connecting without a token."""
        body = {"client": client, "transport": peer.transport, "protocol": peer.protocol}
        return await self._call("connect", self.settings.connect_url, body, peer)

    async def subscribe(self, client: str, user: str, channel: str, peer: Peer) -> None:
        body = {"client": client, "user": user, "channel": channel,
                "transport": peer.transport, "protocol": peer.protocol}
        await self._decide("subscribe", self.settings.subscribe_url, body, peer)

    async def publish(self, client: str, user: str, channel: str, data: bytes,
                      peer: Peer) -> None:
        body = {"client": client, "user": user, "channel": channel,
                "data": orjson.Fragment(data), "transport": peer.transport,
                "protocol": peer.protocol}
        await self._decide("publish", self.settings.publish_url, body, peer)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    # ---- a cached yes or no ----------------------------------------------------------

    async def _decide(self, hook: str, url: str | None, body: dict, peer: Peer) -> None:
        key = (hook, body["user"], body["channel"])
        now = time.monotonic()
        answer = self._cache.get(key)
        if answer is not None and answer.expires > now:
            self._cache.move_to_end(key)
            self.metrics.count(self.metrics.proxy_calls, hook,
                               "cached_deny" if answer.denied is not None else "cached_allow")
            if answer.denied is not None:
                raise ProxyDenied(answer.denied)
            return
        denied = None
        try:
            await self._call(hook, url, body, peer)
        except ProxyDenied as exc:
            denied = str(exc)
        self._remember(key, _Answer(time.monotonic() + self.settings.cache_ttl, denied))
        if denied is not None:
            raise ProxyDenied(denied)

    def _remember(self, key: tuple[str, str, str], answer: _Answer) -> None:
        if not self.settings.cache_ttl or not self.settings.cache_size:
            return
        self._cache[key] = answer
        self._cache.move_to_end(key)
        while len(self._cache) > self.settings.cache_size:
            self._cache.popitem(last=False)

    # ---- one HTTP call ---------------------------------------------------------------

    async def _call(self, hook: str, url: str | None, body: dict, peer: Peer) -> dict:
        if url is None:
            raise ProxyFailed(f"no {hook} hook configured")
        if self._http is None:
            self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.settings.timeout))
        headers = {**peer.headers, "Content-Type": "application/json"}
        try:
            async with self._http.post(url, data=orjson.dumps(body), headers=headers,
                                       allow_redirects=False) as response:
                raw = await response.read()
                status = response.status
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise self._failed(hook, url, f"{type(exc).__name__} {exc}".strip())
        if status != 200:
            raise self._failed(hook, url, f"status {status}")
        try:
            answer = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise self._failed(hook, url, "the body is not JSON")
        if isinstance(answer, dict) and isinstance(answer.get("result"), dict):
            self.metrics.count(self.metrics.proxy_calls, hook, "allow")
            return answer["result"]
        error = answer.get("error") if isinstance(answer, dict) else None
        if isinstance(error, dict):
            self.metrics.count(self.metrics.proxy_calls, hook, "deny")
            message = error.get("message")
            raise ProxyDenied(message[:200] if isinstance(message, str) and message
                              else f"refused by the {hook} hook")
        raise self._failed(hook, url, "the body holds neither 'result' nor 'error'")

    def _failed(self, hook: str, url: str, problem: str) -> ProxyFailed:
        self.metrics.count(self.metrics.proxy_calls, hook, "error")
        now = time.monotonic()
        if now - self._logged.get(hook, -LOG_EVERY) >= LOG_EVERY:
            self._logged[hook] = now
            shown = URL(url).with_user(None).with_query(None)  # no credentials in the log
            log.warning("proxy %s hook %s failed: %s", hook, shown, problem)
        return ProxyFailed(f"the application's {hook} hook is unavailable")

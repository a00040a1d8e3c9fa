"""An application backend for the proxy hooks: a real aiohttp server on a loopback port.

Each hook answers from a rule the test sets (`answers[hook]`: a function of the request body
and headers returning (status, body)); every request is recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import orjson
from aiohttp import web

from tests.conftest import free_port

Rule = Callable[[dict, dict], tuple[int, object]]


def allow(result: dict | None = None) -> Rule:
    return lambda body, headers: (200, {"result": result or {}})


def deny(message: str) -> Rule:
    return lambda body, headers: (200, {"error": {"message": message}})


@dataclass
class Backend:
    url: str
    answers: dict[str, Rule] = field(default_factory=dict)
    calls: list[tuple[str, dict, dict]] = field(default_factory=list)  # hook, body, headers
    delay: float = 0.0

    def hook_url(self, hook: str) -> str:
        return f"{self.url}/tidings/{hook}"

    def calls_of(self, hook: str) -> list[dict]:
        return [body for name, body, _ in self.calls if name == hook]


@contextlib.asynccontextmanager
async def running_backend() -> AsyncIterator[Backend]:
    port = free_port()
    backend = Backend(f"http://127.0.0.1:{port}")

    async def handle(request: web.Request) -> web.StreamResponse:
        hook = request.match_info["hook"]
        body = orjson.loads(await request.read())
        headers = dict(request.headers)
        backend.calls.append((hook, body, headers))
        if backend.delay:
            await asyncio.sleep(backend.delay)
        status, answer = backend.answers.get(hook, allow())(body, headers)
        raw = answer if isinstance(answer, bytes) else orjson.dumps(answer)
        return web.Response(body=raw, status=status, content_type="application/json")

    app = web.Application()
    app.router.add_post("/tidings/{hook}", handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield backend
    finally:
        await runner.cleanup()

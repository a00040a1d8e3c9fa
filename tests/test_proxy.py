"""The proxy hooks against a real HTTP backend: request shape, answers, failures, the cache."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from tests.backend import Backend, allow, deny, running_backend
from tests.conftest import free_port
from tidings.config import Proxy
from tidings.metrics import Metrics
from tidings.peer import Peer
from tidings.proxy import ProxyDenied, ProxyFailed, ProxyHooks

PEER = Peer("10.0.0.7", {"Cookie": "session=s3cr3t-cookie", "User-Agent": "test"},
            transport="websocket", protocol="native")


@pytest.fixture
async def backend():
    async with running_backend() as running:
        yield running


def _hooks(backend: Backend, **options) -> ProxyHooks:
    settings = Proxy(connect_url=backend.hook_url("connect"),
                     subscribe_url=backend.hook_url("subscribe"),
                     publish_url=backend.hook_url("publish"), **options)
    return ProxyHooks(settings, Metrics("test", {}))


def _count(hooks: ProxyHooks, hook: str, outcome: str) -> float:
    return hooks.metrics.registry.get_sample_value(
        "tidings_proxy_calls_total", {"hook": hook, "outcome": outcome}) or 0


async def test_subscribe_posts_who_and_what_with_the_handshake_headers(backend):
    hooks = _hooks(backend)
    await hooks.subscribe("c-1", "alice", "room:vip", PEER)
    [(hook, body, headers)] = backend.calls
    assert hook == "subscribe"
    assert body == {"client": "c-1", "user": "alice", "channel": "room:vip",
                    "transport": "websocket", "protocol": "native"}
    assert headers["Cookie"] == "session=s3cr3t-cookie" and headers["User-Agent"] == "test"
    assert headers["Content-Type"] == "application/json"
    assert _count(hooks, "subscribe", "allow") == 1
    await hooks.close()


async def test_publish_carries_the_data_as_sent(backend):
    hooks = _hooks(backend)
    await hooks.publish("c-1", "alice", "room:vip", b'{"text":"hi","n":[1,2]}', PEER)
    assert backend.calls_of("publish")[0]["data"] == {"text": "hi", "n": [1, 2]}
    await hooks.close()


async def test_connect_returns_the_backends_result_and_is_never_cached(backend):
    backend.answers["connect"] = allow({"user": "alice", "info": {"name": "Alice"}})
    hooks = _hooks(backend)
    assert await hooks.connect("c-1", PEER) == {"user": "alice", "info": {"name": "Alice"}}
    await hooks.connect("c-2", PEER)
    assert len(backend.calls_of("connect")) == 2
    await hooks.close()


async def test_a_no_carries_the_backends_message(backend):
    backend.answers["subscribe"] = deny("not a member of vip")
    hooks = _hooks(backend)
    with pytest.raises(ProxyDenied, match="not a member of vip"):
        await hooks.subscribe("c-1", "alice", "room:vip", PEER)
    assert _count(hooks, "subscribe", "deny") == 1
    await hooks.close()


@pytest.mark.parametrize("status, answer", [
    (500, {"result": {}}),
    (302, {"result": {}}),
    (200, b"<html>oops</html>"),
    (200, {"nothing": "useful"}),
    (200, {"result": "yes"}),
    (200, [1, 2]),
])
async def test_any_other_answer_is_a_failing_backend_and_never_cached(backend, status, answer):
    backend.answers["subscribe"] = lambda body, headers: (status, answer)
    hooks = _hooks(backend)
    for _ in range(2):
        with pytest.raises(ProxyFailed, match="unavailable"):
            await hooks.subscribe("c-1", "alice", "room:vip", PEER)
    assert len(backend.calls_of("subscribe")) == 2
    assert _count(hooks, "subscribe", "error") == 2
    await hooks.close()


async def test_a_slow_backend_fails_within_the_timeout(backend):
    backend.delay = 2.0
    hooks = _hooks(backend, timeout=0.2)
    started = time.monotonic()
    with pytest.raises(ProxyFailed):
        await hooks.subscribe("c-1", "alice", "room:vip", PEER)
    assert time.monotonic() - started < 1.5
    await hooks.close()


async def test_an_unreachable_backend_fails():
    settings = Proxy(subscribe_url=f"http://127.0.0.1:{free_port()}/nobody", timeout=1)
    hooks = ProxyHooks(settings, Metrics("test", {}))
    with pytest.raises(ProxyFailed):
        await hooks.subscribe("c-1", "alice", "room:vip", PEER)
    await hooks.close()


async def test_answers_are_kept_per_user_and_channel(backend):
    hooks = _hooks(backend, cache_ttl=60)
    for _ in range(3):
        await hooks.subscribe("c-1", "alice", "room:a", PEER)
        await hooks.subscribe("c-2", "alice", "room:a", PEER)  # another tab: same answer
    await hooks.subscribe("c-1", "alice", "room:b", PEER)
    await hooks.subscribe("c-3", "bob", "room:a", PEER)
    await hooks.publish("c-1", "alice", "room:a", b"1", PEER)  # another hook: asked
    assert [(b["user"], b["channel"]) for b in backend.calls_of("subscribe")] == [
        ("alice", "room:a"), ("alice", "room:b"), ("bob", "room:a")]
    assert len(backend.calls_of("publish")) == 1
    assert _count(hooks, "subscribe", "cached_allow") == 5
    await hooks.close()


async def test_a_no_is_kept_too(backend):
    backend.answers["subscribe"] = deny("no")
    hooks = _hooks(backend, cache_ttl=60)
    for _ in range(3):
        with pytest.raises(ProxyDenied, match="no"):
            await hooks.subscribe("c-1", "alice", "room:a", PEER)
    assert len(backend.calls) == 1
    assert _count(hooks, "subscribe", "cached_deny") == 2
    await hooks.close()


async def test_kept_answers_expire_after_cache_ttl(backend):
    hooks = _hooks(backend, cache_ttl=0.2)
    await hooks.subscribe("c-1", "alice", "room:a", PEER)
    await asyncio.sleep(0.3)
    await hooks.subscribe("c-1", "alice", "room:a", PEER)
    assert len(backend.calls) == 2
    await hooks.close()


async def test_no_cache_with_a_zero_ttl(backend):
    hooks = _hooks(backend, cache_ttl=0)
    for _ in range(3):
        await hooks.subscribe("c-1", "alice", "room:a", PEER)
    assert len(backend.calls) == 3
    await hooks.close()


async def test_the_cache_holds_at_most_cache_size_answers(backend):
    hooks = _hooks(backend, cache_ttl=60, cache_size=2)
    for channel in ("room:a", "room:b", "room:c", "room:a"):
        await hooks.subscribe("c-1", "alice", channel, PEER)
    # room:a was the least recently used when room:c came, so it was asked again
    assert [b["channel"] for b in backend.calls_of("subscribe")] == [
        "room:a", "room:b", "room:c", "room:a"]
    await hooks.close()


async def test_failures_are_logged_without_headers_credentials_or_flooding(backend, caplog):
    backend.answers["subscribe"] = lambda body, headers: (500, {})
    url = backend.hook_url("subscribe").replace("http://", "http://hookuser:hookpass@")
    hooks = ProxyHooks(Proxy(subscribe_url=url + "?key=q-secret"), Metrics("test", {}))
    with caplog.at_level(logging.DEBUG):
        for _ in range(5):
            with pytest.raises(ProxyFailed):
                await hooks.subscribe("c-1", "alice", "room:a", PEER)
    warnings = [r for r in caplog.records if r.name == "tidings.proxy"]
    assert len(warnings) == 1 and "status 500" in warnings[0].getMessage()
    for secret in ("s3cr3t-cookie", "hookpass", "q-secret"):
        assert secret not in caplog.text
    await hooks.close()


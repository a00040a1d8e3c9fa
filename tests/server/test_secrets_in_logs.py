"""Secrets never reach the logs: the node's loggers captured at DEBUG while clients and backends
try bad tokens, revoked tokens, bad subscription tokens, wrong API keys and cookies against
a failing backend. The node must say what went wrong without quoting what it was given."""

from __future__ import annotations

import logging
import time

import aiohttp
import jwt
import websockets

from tests.backend import running_backend
from tests.conftest import Client

SECRET = "jwt-signing-secret-that-must-stay-private"
API_KEY = "api-key-that-must-stay-private"
COOKIE = "sid=cookie-value-that-must-stay-private"


def _token(key: str = SECRET, **claims) -> str:
    return jwt.encode({"sub": "alice", "exp": int(time.time()) + 60, **claims}, key, "HS256")


async def test_bad_credentials_of_every_kind_leave_no_secret_in_the_logs(make_server, caplog):
    forged = _token("an-attackers-guess-at-the-signing-key", jti="forged-id")
    expired = _token(exp=int(time.time()) - 10)
    revoked = _token(jti="revoked-id")
    good = _token()
    bad_grant = _token(channel="vip:other", jti="grant-id")
    async with running_backend() as backend:
        backend.answers["connect"] = lambda body, headers: (500, {"detail": headers["Cookie"]})
        backend.answers["subscribe"] = lambda body, headers: (200, b"not json")
        security = {"proxy": {"connect_url": backend.hook_url("connect"),
                              "subscribe_url": backend.hook_url("subscribe")}}
        async with make_server(jwt_secret=SECRET, api_key=API_KEY, security=security,
                               namespaces={"vip": {"subscribe": "token"},
                                           "club": {"subscribe": "proxy"}}) as server:
            with caplog.at_level(logging.DEBUG):
                async with aiohttp.ClientSession() as http:
                    for headers in ({"X-API-Key": "wrong-" + API_KEY},
                                    {"Authorization": f"apikey {API_KEY[:-1]}"}):
                        async with http.get(f"{server.url}/api/info", headers=headers) as resp:
                            assert resp.status == 401
                    async with http.post(f"{server.url}/api/revoke", json={"jti": "revoked-id"},
                                         headers={"X-API-Key": API_KEY}) as resp:
                        assert resp.status == 200
                for token in (forged, expired, revoked, "not.a.jwt", good + "tampered"):
                    client = Client(await websockets.connect(server.ws_url))
                    reply = await client.request("connect", {"token": token})
                    assert reply["error"]["code"] == 105
                client = Client(await websockets.connect(
                    server.ws_url, additional_headers={"Cookie": COOKIE}))
                assert (await client.request("connect", {}))["error"]["code"] == 111
                client = Client(await websockets.connect(
                    server.ws_url, additional_headers={"Cookie": COOKIE}))
                await client.call("connect", {"token": good})
                for params in ({"channel": "vip:lounge", "token": bad_grant},
                               {"channel": "club:chess"}):
                    assert "error" in await client.request("subscribe", params)
                await client.close()
    # the node's records: everything but the test's own client library (websockets)
    records = [r for r in caplog.records if not r.name.startswith("websockets")]
    assert any(r.name == "tidings.proxy" for r in records)  # the failing backend was logged
    logged = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in records)
    for secret in (SECRET, API_KEY, COOKIE, "cookie-value-that-must-stay-private",
                   *(t.split(".")[2] for t in (forged, expired, revoked, good, bad_grant)),
                   *(t.split(".")[1] for t in (forged, revoked, bad_grant))):
        assert secret not in logged

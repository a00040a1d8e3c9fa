"""The server API: JSON over HTTP for backends (publish, send, broadcast, history, ...).

Callers authenticate with the configured API key (`Authorization: apikey <key>` or
`X-API-Key: <key>`). With no key configured, only loopback callers are served.
Errors are `{"error": {"code": C, "message": "..."}}` with the codes of docs/protocol.md.
"""

from __future__ import annotations

import ipaddress
import logging
import re

import orjson
from aiohttp import web

from tidings import __version__
from tidings.auth import secrets_equal
from tidings.broker.base import BrokerError
from tidings.channels import BROADCAST, Channel, ChannelError, user_channel
from tidings.errors import ErrorCode, TidingsError
from tidings.health import readiness
from tidings.inbox import MAX_PAGE
from tidings.node import Node
from tidings.readstate import ReadChange
from tidings.server.keys import NODE, ORIGINS
from tidings.protocol.native import MAX_HISTORY_LIMIT, Fields
from tidings.session import read_change
from tidings.store.base import StoreError

log = logging.getLogger("tidings.api")

MAX_BODY = 1024 * 1024
INTEGER = re.compile(r"-?[0-9]{1,18}")
MAX_SOURCE = 100
MAX_JTI = 200

STATUS = {
    ErrorCode.BAD_REQUEST: 400,
    ErrorCode.BAD_CHANNEL: 400,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.PERMISSION_DENIED: 403,
    ErrorCode.NOT_IN_INBOX: 404,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.OUTCOME_UNKNOWN: 503,
    ErrorCode.LIMIT_EXCEEDED: 429,
    ErrorCode.ADMIN_OFF: 404,
}


def _json(body: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def error_response(code: ErrorCode, message: str) -> web.Response:
    return _json({"error": {"code": int(code), "message": message}}, STATUS.get(code, 500))


@web.middleware
async def api_errors(request: web.Request, handler) -> web.StreamResponse:
    """Turn every failure under /api into the documented JSON error shape."""
    if not request.path.startswith("/api/"):
        return await handler(request)
    try:
        _check_origin(request)
        _authorize(request)
        return await handler(request)
    except TidingsError as exc:
        return error_response(exc.code, exc.message)
    except (StoreError, BrokerError) as exc:
        return error_response(ErrorCode.UNAVAILABLE, str(exc))
    except web.HTTPException as exc:
        if exc.status == 413:
            return _json({"error": {"code": int(ErrorCode.BAD_REQUEST),
                                    "message": f"body larger than {MAX_BODY} bytes"}}, 413)
        return _json({"error": {"code": int(ErrorCode.BAD_REQUEST), "message": exc.reason}},
                     exc.status)
    except Exception:
        log.exception("server API %s %s failed", request.method, request.path)
        return error_response(ErrorCode.INTERNAL, "internal error")


def _check_origin(request: web.Request) -> None:
    """A browser page may call the API only from an allowed origin (no cross-site requests)."""
    refusal = request.app[ORIGINS].refusal_for(request)
    if refusal is not None:
        node = request.app[NODE]
        node.metrics.count(node.metrics.refused, "origin")
        raise TidingsError(ErrorCode.PERMISSION_DENIED, refusal)


def _authorize(request: web.Request) -> None:
    node = request.app[NODE]
    key = node.settings.api_key
    if key is None:
        remote = request.remote or ""
        try:
            loopback = ipaddress.ip_address(remote).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise TidingsError(ErrorCode.PERMISSION_DENIED,
                               "no api_key configured: the server API answers loopback only")
        return
    given = request.headers.get("X-API-Key", "")
    auth = request.headers.get("Authorization", "")
    if auth.lower().startswith("apikey "):
        given = auth[len("apikey "):].strip()
    if not given or not secrets_equal(given, key):
        raise TidingsError(ErrorCode.UNAUTHORIZED, "missing or wrong API key")


async def _body(request: web.Request, method: str) -> Fields:
    raw = await request.read()
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise TidingsError(ErrorCode.BAD_REQUEST, f"body is not valid JSON: {exc}") from None
    return Fields(method, parsed, None)


def _channel(node: Node, name: object) -> Channel:
    try:
        return node.channel(name)
    except ChannelError as exc:
        raise TidingsError(ErrorCode.BAD_CHANNEL, str(exc)) from None


def _source(fields: Fields) -> str | None:
    source = fields.str("source", required=False)
    if source is not None and not 0 < len(source) <= MAX_SOURCE:
        raise TidingsError(ErrorCode.BAD_REQUEST, f"'source' must be 1 to {MAX_SOURCE} characters")
    return source


def _idempotency_key(request: web.Request, fields: Fields) -> str | None:
    """`idempotency_key` in the body or an `Idempotency-Key` header (the same, if both)."""
    in_body = fields.idempotency_key()
    header = request.headers.get("Idempotency-Key")
    if header is not None:
        in_header = Fields(fields.method, {"idempotency_key": header}, None).idempotency_key()
        if in_body is not None and in_body != in_header:
            raise TidingsError(ErrorCode.BAD_REQUEST, "the Idempotency-Key header and the "
                                                      "body's idempotency_key differ")
        in_body = in_header
    return f"api:{in_body}" if in_body is not None else None


async def _publish(node: Node, channel: Channel, fields: Fields,
                   request: web.Request) -> web.Response:
    pub = await node.publish(channel, fields.data(), source=_source(fields),
                             idempotency_key=_idempotency_key(request, fields))
    result: dict = {"channel": pub.channel}
    if pub.offset:
        result.update(offset=pub.offset, epoch=pub.epoch)
    return _json(result)


async def publish(request: web.Request) -> web.Response:
    node = request.app[NODE]
    fields = await _body(request, "publish")
    return await _publish(node, _channel(node, fields.str("channel")), fields, request)


async def send(request: web.Request) -> web.Response:
    node = request.app[NODE]
    fields = await _body(request, "send")
    return await _publish(node, node.channel(user_channel(fields.user())), fields, request)


async def broadcast(request: web.Request) -> web.Response:
    node = request.app[NODE]
    fields = await _body(request, "broadcast")
    return await _publish(node, node.channel(BROADCAST), fields, request)


def _query(request: web.Request, method: str) -> Fields:
    """Query parameters as typed fields: numbers and booleans parsed, the rest as text."""
    values: dict = {}
    for name, value in request.query.items():
        if INTEGER.fullmatch(value):
            values[name] = int(value)
        elif value in ("true", "false"):
            values[name] = value == "true"
        else:
            values[name] = value
    return Fields(method, values, None)


async def history(request: web.Request) -> web.Response:
    node = request.app[NODE]
    fields = _query(request, "history")
    channel = _channel(node, request.query.get("channel"))
    if not channel.options.stored:
        raise TidingsError(ErrorCode.BAD_CHANNEL, f"{channel.namespace} keeps no history")
    page = await node.store.history(
        channel.name,
        limit=fields.int("limit", required=False, low=1, high=MAX_HISTORY_LIMIT) or 100,
        since=fields.int("since", required=False),
        reverse=fields.bool("reverse", False),
    )
    return _json({
        "channel": channel.name,
        "offset": page.position.offset,
        "epoch": page.position.epoch,
        "publications": [pub.to_dict() for pub in page.publications],
    })


async def presence(request: web.Request) -> web.Response:
    node = request.app[NODE]
    channel = _channel(node, request.query.get("channel"))
    if not channel.options.presence:
        raise TidingsError(ErrorCode.BAD_CHANNEL, f"{channel.namespace} has no presence")
    clients = await node.broker.presence(channel.name)
    return _json({"channel": channel.name, "clients": {c.client: c.to_dict() for c in clients}})


async def inbox(request: web.Request) -> web.Response:
    """A user's inbox, as the native `inbox` command shows it to that user."""
    node = request.app[NODE]
    fields = _query(request, "inbox")
    text = Fields("inbox", {k: request.query.get(k) for k in ("user", "source")}, None)
    user, source = text.user(), text.source()  # as text, even when they look like numbers
    limit = fields.int("limit", required=False, low=1, high=MAX_PAGE) or 10
    if source is None:
        if "before" in request.query:
            raise TidingsError(ErrorCode.BAD_REQUEST, "inbox: 'before' pages within one 'source'")
        return _json(await node.inbox.view(user, limit=limit))
    return _json(await node.inbox.page(user, source, before=fields.int("before", required=False),
                                       limit=limit))


async def _change(request: web.Request, method: str, make) -> web.Response:
    node = request.app[NODE]
    fields = await _body(request, f"inbox/{method}")
    user = fields.user()
    result = await node.inbox.change(user, make(fields))
    return _json({"user": user, **result})


async def inbox_read(request: web.Request) -> web.Response:
    return await _change(request, "read", lambda f: read_change(
        f.int("offset", required=False), f.source(), f.int("upto", required=False),
        f.bool("all", False), f.bool("shared", False)))


async def inbox_unread(request: web.Request) -> web.Response:
    return await _change(request, "unread", lambda f: ReadChange("unread", f.int("offset")))


async def inbox_seen(request: web.Request) -> web.Response:
    return await _change(request, "seen", lambda f: ReadChange("seen", source=f.source()))


async def inbox_archive(request: web.Request) -> web.Response:
    return await _change(request, "archive", lambda f: ReadChange("archive", f.int("offset")))


async def disconnect(request: web.Request) -> web.Response:
    node = request.app[NODE]
    fields = await _body(request, "disconnect")
    user = fields.user()
    closed = await node.disconnect_user(
        user, reconnect=fields.bool("reconnect", True), client=fields.str("client", False)
    )
    return _json({"user": user, "closed_here": closed})


async def revoke(request: web.Request) -> web.Response:
    """Revoke a token by its `jti` on every node; sessions holding it are closed with 4505."""
    node = request.app[NODE]
    fields = await _body(request, "revoke")
    jti = fields.str("jti")
    if not 0 < len(jti) <= MAX_JTI:
        raise TidingsError(ErrorCode.BAD_REQUEST, f"revoke: 'jti' must be 1 to {MAX_JTI} characters")
    exp = fields.int("exp", required=False)
    await node.revoke(jti, exp)
    return _json({"jti": jti})


async def info(request: web.Request) -> web.Response:
    node = request.app[NODE]
    nodes = sorted(await node.nodes(), key=lambda n: n.name)
    return _json({
        "node": node.name,
        "version": __version__,
        "nodes": [n.to_dict() for n in nodes],
    })


async def health(request: web.Request) -> web.Response:
    """Readiness (see tidings.health): 200 while ready, even degraded; 503 otherwise."""
    node = request.app[NODE]
    state = await readiness(node)
    body: dict = {"status": state.status, "node": node.name}
    if state.ready:
        body["connections"] = len(node.sessions)
    if state.problems:
        body["problems"] = state.problems
    if state.status == "unavailable":
        body["problem"] = "; ".join(state.problems)
    return _json(body, 200 if state.ready else 503)


async def live(request: web.Request) -> web.Response:
    """200 whenever the node's event loop answers: a failure here means restart the process."""
    return _json({"status": "live", "node": request.app[NODE].name})


async def metrics(request: web.Request) -> web.Response:
    node = request.app[NODE]
    return web.Response(body=node.metrics.render(),
                        headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


def routes() -> list[web.RouteDef]:
    return [
        web.post("/api/publish", publish),
        web.post("/api/send", send),
        web.post("/api/broadcast", broadcast),
        web.get("/api/history", history),
        web.get("/api/presence", presence),
        web.post("/api/disconnect", disconnect),
        web.post("/api/revoke", revoke),
        web.get("/api/inbox", inbox),
        web.post("/api/inbox/read", inbox_read),
        web.post("/api/inbox/unread", inbox_unread),
        web.post("/api/inbox/seen", inbox_seen),
        web.post("/api/inbox/archive", inbox_archive),
        web.get("/api/info", info),
        web.get("/health", health),
        web.get("/health/ready", health),
        web.get("/health/live", live),
        web.get("/metrics", metrics),
    ]

"""Centrifugo's server API at `/api/centrifugo/<method>`, so `cent` and other Centrifugo
backends publish, broadcast, disconnect and read history and presence unchanged.

It sits under /api/, so the API key (`X-API-Key`, as Centrifugo sends it) and the Origin
check of tidings.server.api apply: a wrong key is HTTP 401, as from Centrifugo. Every
other answer is HTTP 200 with `{"result": ...}` or `{"error": {"code", "message"}}` in
Centrifugo's codes. Methods Tidings cannot honour answer 108 "not available"; the list is
in docs/centrifugo.md.
"""

from __future__ import annotations

import time

import orjson
from aiohttp import web

from tidings.broker.base import BrokerError
from tidings.channels import Channel, ChannelError
from tidings.errors import TidingsError
from tidings.node import Node
from tidings.protocol import centrifugo as cf
from tidings.protocol.centrifugo_codes import CentrifugoError, error_for
from tidings.protocol.native import MAX_HISTORY_LIMIT
from tidings.server.keys import NODE
from tidings.store.base import StoreError

PREFIX = "/api/centrifugo"
NOT_AVAILABLE = frozenset({
    "subscribe", "unsubscribe", "refresh", "history_remove", "channels", "connections",
    "update_user_status", "get_user_status", "delete_user_status", "block_user",
    "unblock_user", "invalidate_user_tokens", "device_register", "device_update",
    "device_remove", "device_list", "device_topic_list", "device_topic_update",
    "user_topic_list", "user_topic_update", "send_push_notification", "update_push_status",
    "cancel_push",
})


class ApiError(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def _answer(body: dict) -> web.Response:
    return web.Response(body=cf.JSON.encode([body]), content_type="application/json")


async def handle(request: web.Request) -> web.Response:
    node = request.app[NODE]
    method = request.match_info["method"]
    try:
        params = orjson.loads(await request.read() or b"{}")
    except orjson.JSONDecodeError as exc:
        return _answer(_error(CentrifugoError.BAD_REQUEST, f"body is not JSON: {exc}"))
    if not isinstance(params, dict):
        return _answer(_error(CentrifugoError.BAD_REQUEST, "the body must be a JSON object"))
    return _answer(await _call(node, method, params))


async def _call(node: Node, method: str, params: dict) -> dict:
    """One method's `{"result": ...}` or `{"error": ...}`."""
    try:
        if method in NOT_AVAILABLE:
            raise ApiError(CentrifugoError.NOT_AVAILABLE, f"{method} is not available in Tidings")
        handler = _METHODS.get(method)
        if handler is None:
            raise ApiError(CentrifugoError.METHOD_NOT_FOUND, f"no method {method!r}")
        return {"result": await handler(node, params)}
    except ApiError as exc:
        return _error(exc.code, exc.message)
    except TidingsError as exc:
        return _error(error_for(exc.code, exc.message), exc.message)
    except (StoreError, BrokerError) as exc:
        return _error(CentrifugoError.INTERNAL, str(exc))


def _error(code: int, message: str) -> dict:
    return {"error": {"code": int(code), "message": message}}


def _str(params: dict, name: str, required: bool = True) -> str | None:
    value = params.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise ApiError(CentrifugoError.BAD_REQUEST, f"'{name}' must be a non-empty string")
    return value


def _channel(node: Node, name: object) -> Channel:
    try:
        return node.channel(name)
    except ChannelError as exc:
        raise ApiError(CentrifugoError.UNKNOWN_CHANNEL, str(exc)) from None


async def _publish_to(node: Node, name: object, params: dict) -> dict:
    if params.get("skip_history"):
        raise ApiError(CentrifugoError.NOT_AVAILABLE,
                       "skip_history is not available: a stored namespace stores everything")
    if params.get("b64data") is not None:
        raise ApiError(CentrifugoError.NOT_AVAILABLE, "b64data is not available: Tidings "
                                                      "publishes JSON")
    if "data" not in params:
        raise ApiError(CentrifugoError.BAD_REQUEST, "'data' is required")
    tags = params.get("tags") or {}
    if not isinstance(tags, dict) or set(tags) - {"source"}:
        raise ApiError(CentrifugoError.NOT_AVAILABLE,
                       "tags are not available, but for 'source' (the message center's)")
    key = _str(params, "idempotency_key", required=False)
    pub = await node.publish(_channel(node, name), orjson.dumps(params["data"]),
                             source=tags.get("source"),
                             idempotency_key=f"api:{key}" if key is not None else None)
    return {"offset": pub.offset, "epoch": pub.epoch} if pub.offset else {}


async def publish(node: Node, params: dict) -> dict:
    return await _publish_to(node, params.get("channel"), params)


async def broadcast(node: Node, params: dict) -> dict:
    channels = params.get("channels")
    if not isinstance(channels, list) or not channels:
        raise ApiError(CentrifugoError.BAD_REQUEST, "'channels' must be a non-empty list")
    responses = []
    for name in channels:
        try:
            responses.append({"result": await _publish_to(node, name, params)})
        except ApiError as exc:
            responses.append(_error(exc.code, exc.message))
        except TidingsError as exc:
            responses.append(_error(error_for(exc.code, exc.message), exc.message))
    return {"responses": responses}


async def disconnect(node: Node, params: dict) -> dict:
    user = _str(params, "user")
    advice = params.get("disconnect") or {}
    code = advice.get("code", 0) if isinstance(advice, dict) else 0
    # Centrifugo's default is a disconnect without reconnect; a code says otherwise
    reconnect = isinstance(code, int) and (3000 <= code < 3500 or 4000 <= code < 4500)
    await node.disconnect_user(user, reconnect=reconnect,
                               client=_str(params, "client", required=False))
    return {}


async def presence(node: Node, params: dict) -> dict:
    clients = await _presence(node, params)
    return {"presence": {c.client: _client(c) for c in clients}}


async def presence_stats(node: Node, params: dict) -> dict:
    clients = await _presence(node, params)
    return {"num_clients": len(clients), "num_users": len({c.user for c in clients})}


async def _presence(node: Node, params: dict):
    channel = _channel(node, params.get("channel"))
    if not channel.options.presence:
        raise ApiError(CentrifugoError.NOT_AVAILABLE, f"{channel.namespace} has no presence")
    return await node.broker.presence(channel.name)


def _client(client) -> dict:
    out: dict = {"client": client.client, "user": client.user}
    if client.meta:
        out["conn_info"] = orjson.dumps(client.meta)
    return out


async def history(node: Node, params: dict) -> dict:
    channel = _channel(node, params.get("channel"))
    if not channel.options.stored:
        raise ApiError(CentrifugoError.NOT_AVAILABLE, f"{channel.namespace} keeps no history")
    limit = params.get("limit") or 0
    since = params.get("since")
    if not isinstance(limit, int) or (since is not None and not isinstance(since, dict)):
        raise ApiError(CentrifugoError.BAD_REQUEST, "'limit' is an integer, 'since' an object")
    limit = MAX_HISTORY_LIMIT if limit < 0 else min(limit, MAX_HISTORY_LIMIT)
    offset = since.get("offset") if since else None
    page = await node.store.history(channel.name, limit=max(limit, 1), since=offset,
                                    reverse=bool(params.get("reverse")))
    epoch = since.get("epoch") if since else None
    if epoch and epoch != page.position.epoch:
        raise ApiError(CentrifugoError.UNRECOVERABLE_POSITION,
                       f"epoch {epoch!r} is gone: {channel.name} is at {page.position.epoch!r}")
    publications = page.publications if limit else []
    return {"publications": [cf.publication(p) for p in publications],
            "offset": page.position.offset, "epoch": page.position.epoch}


async def info(node: Node, params: dict) -> dict:
    now = time.time()
    return {"nodes": [{
        "uid": n.name, "name": n.name, "version": f"tidings {n.version}",
        "num_clients": n.connections, "num_users": n.users,
        "uptime": max(0, int(now - n.started / 1000)),
    } for n in sorted(await node.nodes(), key=lambda n: n.name)]}


async def revoke_token(node: Node, params: dict) -> dict:
    await node.revoke(_str(params, "uid"), params.get("expire_at"))
    return {}


async def batch(node: Node, params: dict) -> dict:
    commands = params.get("commands")
    if not isinstance(commands, list):
        raise ApiError(CentrifugoError.BAD_REQUEST, "'commands' must be a list")
    replies = []
    for command in commands:
        if not isinstance(command, dict) or len(command) != 1:
            replies.append(_error(CentrifugoError.BAD_REQUEST, "a command names one method"))
            continue
        [(method, body)] = command.items()
        reply = await _call(node, method, body if isinstance(body, dict) else {})
        replies.append({method: reply["result"]} if "result" in reply else reply)
    return {"replies": replies}


_METHODS = {
    "publish": publish,
    "broadcast": broadcast,
    "disconnect": disconnect,
    "presence": presence,
    "presence_stats": presence_stats,
    "history": history,
    "info": info,
    "revoke_token": revoke_token,
    "batch": batch,
}


def routes() -> list[web.RouteDef]:
    return [web.post(PREFIX + "/{method}", handle)]


"""The admin console at `/admin`: its page, and the JSON endpoints the page is drawn from.

Off unless `admin_token` is set (then every path under /admin answers 404 with code 140).
The console has a token of its own, sent as `Authorization: Bearer <token>` by the page
(which keeps it in the tab's session storage): neither the server API's key nor a user's
JWT opens it, and a header, unlike a cookie, is never sent by another site's page, so the
actions need no CSRF defence. Errors have the server API's shape and codes.
"""

from __future__ import annotations

import logging

import orjson
from aiohttp import web

from tidings.admin import recent
from tidings.admin.overview import overview, reading, user_view
from tidings.admin.recent import RecentProblems
from tidings.admin.trends import Trends
from tidings.auth import secrets_equal
from tidings.broker.base import BrokerError
from tidings.channels import ChannelError
from tidings.errors import ErrorCode, TidingsError
from tidings.protocol.native import Fields
from tidings.server.api import MAX_SOURCE, error_response
from tidings.server.keys import NODE
from tidings.server.page import POLICY, WEB
from tidings.store.base import StoreError

log = logging.getLogger("tidings.admin")

ASSETS = {
    "/admin": ("admin.html", "text/html"),
    "/admin/admin.js": ("admin.js", "text/javascript"),
    "/admin/admin.css": ("admin.css", "text/css"),
}


class Console:
    """One node's console: its trends sampler and its recent-problems log handler."""

    def __init__(self, trends: Trends, problems: RecentProblems):
        self.trends = trends
        self.problems = problems


CONSOLE = web.AppKey("admin_console", Console)


def setup(app: web.Application) -> None:
    node = app[NODE]
    app.add_routes([web.get(path, _guarded(_asset(name, kind), page=True))
                    for path, (name, kind) in ASSETS.items()])
    app.add_routes([
        web.get("/admin/api/overview", _guarded(_overview)),
        web.get("/admin/api/presence", _guarded(_presence)),
        web.get("/admin/api/user", _guarded(_user)),
        web.post("/admin/api/publish", _guarded(_publish)),
        web.post("/admin/api/disconnect", _guarded(_disconnect)),
    ])
    if node.settings.admin_token is None:
        return
    console = Console(Trends(lambda: reading(node)), recent.attach())
    app[CONSOLE] = console

    async def start(app: web.Application) -> None:
        node.supervisor.spawn("admin-trends", console.trends.run)

    async def stop(app: web.Application) -> None:
        recent.detach(console.problems)

    app.on_startup.append(start)
    app.on_shutdown.append(stop)


def _guarded(handler, *, page: bool = False):
    """Serve `handler` only with the console on and (but for the page's files) the token."""
    async def guarded(request: web.Request) -> web.StreamResponse:
        node = request.app[NODE]
        token = node.settings.admin_token
        if token is None:
            return error_response(ErrorCode.ADMIN_OFF, "the admin console is off: set "
                                                       "admin_token to turn it on")
        try:
            if not page and not _authorized(request, token):
                node.metrics.count(node.metrics.refused, "admin_token")
                raise TidingsError(ErrorCode.UNAUTHORIZED, "missing or wrong admin token")
            return await handler(request)
        except TidingsError as exc:
            return error_response(exc.code, exc.message)
        except (StoreError, BrokerError) as exc:
            return error_response(ErrorCode.UNAVAILABLE, str(exc))
        except Exception:
            log.exception("admin %s %s failed", request.method, request.path)
            return error_response(ErrorCode.INTERNAL, "internal error")

    return guarded


def _authorized(request: web.Request, token: str) -> bool:
    given = request.headers.get("Authorization", "")
    return given.lower().startswith("bearer ") and secrets_equal(given[7:].strip(), token)


def _asset(name: str, kind: str):
    async def handler(request: web.Request) -> web.Response:
        headers = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
        if kind == "text/html":
            headers["Content-Security-Policy"] = POLICY
            headers["Referrer-Policy"] = "no-referrer"
        return web.Response(body=(WEB / name).read_bytes(), content_type=kind, charset="utf-8",
                            headers=headers)

    return handler


def _json(body: object) -> web.Response:
    return web.Response(body=orjson.dumps(body), content_type="application/json",
                        headers={"Cache-Control": "no-store"})


async def _fields(request: web.Request, method: str) -> Fields:
    try:
        parsed = orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        raise TidingsError(ErrorCode.BAD_REQUEST, f"body is not valid JSON: {exc}") from None
    return Fields(method, parsed, None)


def _channel(request: web.Request, name: object):
    try:
        return request.app[NODE].channel(name)
    except ChannelError as exc:
        raise TidingsError(ErrorCode.BAD_CHANNEL, str(exc)) from None


async def _overview(request: web.Request) -> web.Response:
    console = request.app[CONSOLE]
    return _json(await overview(request.app[NODE], console.trends, console.problems))


async def _presence(request: web.Request) -> web.Response:
    channel = _channel(request, request.query.get("channel"))
    if not channel.options.presence:
        raise TidingsError(ErrorCode.BAD_CHANNEL, f"{channel.namespace} has no presence")
    clients = await request.app[NODE].broker.presence(channel.name)
    return _json({"channel": channel.name,
                  "clients": sorted((c.to_dict() for c in clients),
                                    key=lambda c: (c["user"], c["client"]))})


async def _user(request: web.Request) -> web.Response:
    user = Fields("user", {"user": request.query.get("user")}, None).user()
    return _json(await user_view(request.app[NODE], user))


async def _publish(request: web.Request) -> web.Response:
    """A test message: to any channel, as the server API would publish it."""
    fields = await _fields(request, "publish")
    channel = _channel(request, fields.str("channel"))
    source = fields.str("source", required=False)
    if source is not None and not 0 < len(source) <= MAX_SOURCE:
        raise TidingsError(ErrorCode.BAD_REQUEST, f"'source' must be 1 to {MAX_SOURCE} characters")
    pub = await request.app[NODE].publish(channel, fields.data(), source=source, sender="admin")
    log.info("admin console published to %s", channel.name)
    result: dict = {"channel": pub.channel}
    if pub.offset:
        result.update(offset=pub.offset, epoch=pub.epoch)
    return _json(result)


async def _disconnect(request: web.Request) -> web.Response:
    fields = await _fields(request, "disconnect")
    user = fields.user()
    reconnect = fields.bool("reconnect", True)
    closed = await request.app[NODE].disconnect_user(
        user, reconnect=reconnect, client=fields.str("client", False))
    log.info("admin console disconnected %s (%d here, reconnect %s)", user, closed, reconnect)
    return _json({"user": user, "closed_here": closed})

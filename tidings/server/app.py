"""The aiohttp application of one node, and running it until a signal says stop."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal

from aiohttp import web

from tidings import __version__
from tidings.node import Node
from tidings.server import admin, api, centrifugo, native, page, sockjs, stomp
from tidings.server.front import (WEBSOCKETS, TidingsSite, WebSocketEndpoints,
                                   on_reused_connection)
from tidings.server.keys import NODE, ORIGINS
from tidings.server.origin import OriginPolicy

GC_YOUNG_OBJECTS = 50_000  # allocations between young-generation collections (default 700)

log = logging.getLogger("tidings.server")


def make_app(node: Node) -> web.Application:
    app = web.Application(
        client_max_size=api.MAX_BODY, middlewares=[api.api_errors],
        # a connection must finish its request (a WebSocket handshake included) this fast,
        # and an idle keep-alive connection is closed after as long
        handler_args={"keepalive_timeout": node.settings.security.handshake_timeout},
    )
    app[NODE] = node
    app[ORIGINS] = origins = OriginPolicy(node.settings)
    # every WebSocket endpoint is served by Tidings' own WebSocket layer (tidings.server.front);
    # aiohttp's route for its path takes an upgrade on a connection aiohttp already serves,
    # and answers a request that is no handshake with what is missing
    native_endpoint = native.NativeEndpoint(node, origins)
    app[WEBSOCKETS] = endpoints = WebSocketEndpoints(
        node.settings.security.handshake_timeout, {"/ws": native_endpoint})
    app.add_routes([web.get("/ws", on_reused_connection(native_endpoint)), *page.routes(),
                    *api.routes()])
    sockjs.setup(app, stomp.setup(app))
    centrifugo.setup(app)
    admin.setup(app)

    async def start(app: web.Application) -> None:
        await node.start()

    async def stop(app: web.Application) -> None:
        await node.stop()

    async def close_sockets(app: web.Application) -> None:
        await endpoints.close_remaining()

    app.on_startup.append(start)
    app.on_shutdown.append(stop)
    app.on_cleanup.append(close_sockets)
    return app


async def serve(node: Node, *, reuse_port: bool = False) -> None:
    """Run until SIGINT/SIGTERM, then drain: clients are told to reconnect elsewhere."""
    settings = node.settings
    runner = web.AppRunner(make_app(node), handle_signals=False, access_log=None,
                           shutdown_timeout=settings.shutdown_grace)
    await runner.setup()
    site = TidingsSite(runner, settings.host, settings.port, reuse_port=reuse_port,
                       backlog=4096)
    await site.start()
    # Everything made so far (modules, settings, the app) lives as long as the process:
    # keep it out of the garbage collector's full passes, which would pause delivery.
    gc.freeze()
    # With the default young generation (700 objects), thousands of clients connecting at
    # once trigger collection after collection, each full one walking every session's
    # objects: profiled, 3 s of a 5,000-client storm's 4.5 s of CPU. Collecting young
    # objects far less often frees the same cycles, in larger and much fewer passes.
    gc.set_threshold(GC_YOUNG_OBJECTS, 10, 10)
    log.info("tidings %s node %s listening on http://%s:%d (store %s, broker %s)",
             __version__, node.name, settings.host, settings.port,
             settings.store.split("@")[-1], settings.broker.split("@")[-1])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("node %s draining", node.name)
    await node.drain()
    await runner.cleanup()

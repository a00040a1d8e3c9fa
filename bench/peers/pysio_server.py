"""python-socketio 5 on aiohttp with uvloop: the same jobs as the Socket.IO server beside it."""

import os

import socketio
import uvloop
from aiohttp import web

manager = None
if os.environ.get("REDIS_URL"):
    manager = socketio.AsyncRedisManager(os.environ["REDIS_URL"],
                                         channel=os.environ.get("REDIS_KEY", "bench"))
sio = socketio.AsyncServer(async_mode="aiohttp", client_manager=manager, transports=["websocket"],
                           cors_allowed_origins="*")
app = web.Application()
sio.attach(app)


@sio.event
async def connect(sid, environ, auth):
    user = (auth or {}).get("user", sid)
    await sio.enter_room(sid, f"user:{user}")


@sio.on("join")
async def join(sid, room):
    await sio.enter_room(sid, room)
    return "ok"


@sio.on("publish")
async def publish(sid, msg):
    await sio.emit("pub", msg["data"], room=msg["room"])
    return "ok"


@sio.on("send")
async def send(sid, msg):
    await sio.emit("pub", msg["data"], room=f"user:{msg['to']}")
    return "ok"


if __name__ == "__main__":
    port = int(os.environ.get("PORT", "9002"))
    print(f"ready {port}", flush=True)
    web.run_app(app, host="127.0.0.1", port=port, print=None, loop=uvloop.new_event_loop(),
                backlog=4096)  # the listen backlog Tidings has

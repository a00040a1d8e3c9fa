"""deploy/nginx/tidings.conf passes `nginx -t` and, run as a private nginx on free ports,
fronts two real nodes (PostgreSQL and Redis): a node killed behind it loses nobody anything.

Debian's nginx runs here as a private instance with its own prefix, pid and logs (never the
system service); only the listen port and the upstream ports of the shipped file change.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.client.streams import all_history, publications, publish_through_outages
from tests.cluster.conftest import PG, clean_broker, drop_schema
from tests.conftest import free_port, start_process
from tidings.client import ApiClient, Backoff, RealtimeClient

SITE = Path(__file__).parents[2] / "deploy" / "nginx" / "tidings.conf"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

pytestmark = pytest.mark.skipif(not os.path.exists(NGINX),
                                reason="nginx missing: scripts/test-tools.sh installs it")

MAIN = """daemon off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
{user}
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    include {site};
}}
"""


def _main_config(prefix: Path, site: Path) -> Path:
    # as root, workers would drop to `nobody`, who cannot enter pytest's private tmp dirs
    user = "user root;" if os.geteuid() == 0 else ""
    path = prefix / "nginx.conf"
    path.write_text(MAIN.format(prefix=prefix, site=site, user=user))
    return path


def _nginx(prefix: Path, config: Path, *args: str) -> list[str]:
    return [NGINX, "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(config), *args]


def site_for(listen: int, nodes: list[int]) -> str:
    """The shipped file with its listen port and its two upstream ports replaced."""
    text = SITE.read_text().replace("listen 80;", f"listen 127.0.0.1:{listen};")
    for shipped, port in zip(("8001", "8002"), nodes):
        text = text.replace(f"server 127.0.0.1:{shipped} ", f"server 127.0.0.1:{port} ")
    return text


def test_the_shipped_file_passes_nginx_t(tmp_path):
    result = subprocess.run(_nginx(tmp_path, _main_config(tmp_path, SITE), "-t"),
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


def test_every_websocket_path_is_upgraded_on_its_own_connection_and_sockjs_sticks():
    text = SITE.read_text()
    websocket = re.search(r"location ~ \^/\(([^)]*)\)\$ \{(.*?)\n    \}", text, re.S)
    assert websocket and set(websocket.group(1).split("|")) == {"ws", "stomp",
                                                               "connection/websocket"}
    sockjs = re.search(r"location /sockjs/ \{(.*?)\n    \}", text, re.S)
    for block in (websocket.group(2), sockjs.group(1)):
        assert "proxy_set_header Upgrade $http_upgrade;" in block
        assert "proxy_set_header Connection $connection_upgrade;" in block
    assert "proxy_pass http://tidings_sockjs;" in sockjs.group(1)
    assert "hash $sockjs_session consistent;" in text
    # each upgrade on a connection of its own, so the node serves it on its light layer
    assert "proxy_pass http://tidings_ws;" in websocket.group(2)
    upstream = re.search(r"upstream tidings_ws \{(.*?)\}", text, re.S)
    assert upstream and "keepalive" not in upstream.group(1)


@contextlib.contextmanager
def private_nginx(prefix: Path, listen: int, nodes: list[int]):
    site = prefix / "tidings.conf"
    site.write_text(site_for(listen, nodes))
    proc = subprocess.Popen(_nginx(prefix, _main_config(prefix, site)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"nginx exited: {proc.stderr.read().decode()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", listen), 0.2):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("nginx did not listen")
            time.sleep(0.05)
        yield
    finally:
        proc.send_signal(signal.SIGQUIT)  # graceful stop of this instance only
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.asynccontextmanager
async def two_nodes() -> AsyncIterator[list[tuple[str, int, subprocess.Popen]]]:
    tag = f"ng{uuid.uuid4().hex[:10]}"
    loop = asyncio.get_running_loop()
    nodes = []
    try:
        for name in ("lb1", "lb2"):
            port = free_port()
            env = {"TIDINGS_PORT": str(port), "TIDINGS_NODE_NAME": name,
                   "TIDINGS_STORE": f"{PG}?schema={tag}",
                   "TIDINGS_BROKER": f"redis://127.0.0.1:6379/0?prefix={tag}",
                   "TIDINGS_CLUSTER_TTL": "2", "TIDINGS_SHUTDOWN_GRACE": "1"}
            nodes.append((name, port, await loop.run_in_executor(None, start_process, env)))
        yield nodes
    finally:
        for _, _, proc in nodes:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        await drop_schema(tag)
        await clean_broker("redis", tag)


@pytest.mark.services
async def test_fronts_two_nodes_and_clients_of_a_killed_one_recover_through_it(tmp_path):
    listen = free_port()
    async with two_nodes() as nodes:
        with private_nginx(tmp_path, listen, [port for _, port, _ in nodes]):
            await _killed_node_behind_nginx(f"127.0.0.1:{listen}", nodes)


async def _killed_node_behind_nginx(front: str, nodes) -> None:
    async with ApiClient(f"http://{front}", timeout=3) as api:
        assert (await api.health()).ok
        clients = [RealtimeClient(f"ws://{front}/ws", user=f"u{i}", backoff=Backoff(0.05, 0.3))
                   for i in range(4)]
        try:
            for client in clients:
                await client.connect(timeout=10)
            assert {client.node for client in clients} == {"lb1", "lb2"}  # least_conn spread them
            rooms = [await client.subscribe("room:lb") for client in clients]
            publisher = asyncio.create_task(publish_through_outages(api, "room:lb", 100))
            received = [await publications(room, 20) for room in rooms]
            victim = clients[0].node
            proc = next(proc for name, _, proc in nodes if name == victim)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            answered = {(await api.info()).node for _ in range(10)}  # nginx skips the dead node
            assert answered == {next(name for name, _, _ in nodes if name != victim)}
            await asyncio.wait_for(publisher, 60)
            stored = await all_history(api, "room:lb")
            for room, got in zip(rooms, received):
                got.extend(await publications(room, len(stored) - len(got), timeout=20))
            moved = [client for client in clients if client.connects > 1]
        finally:
            for client in clients:
                await client.close()
    assert moved and all(client.node != victim for client in moved)
    for got in received:  # every client: every stored publication, in order, once
        assert [p.offset for p in got] == [p.offset for p in stored]
        assert [p.data for p in got] == [p.data for p in stored]


async def test_the_admin_console_is_not_reachable_through_the_balancer(tmp_path, make_server):
    listen = free_port()
    token = "admin-" + "n" * 26
    async with make_server(admin_token=token) as server:
        with private_nginx(tmp_path, listen, [server.port, server.port]):
            async with aiohttp.ClientSession() as http:
                for path in ("/admin", "/admin/admin.js", "/admin/api/overview"):
                    async with http.get(f"http://127.0.0.1:{listen}{path}",
                                        headers={"Authorization": f"Bearer {token}"}) as resp:
                        assert resp.status == 403, path
                async with http.get(f"{server.url}/admin/api/overview",
                                    headers={"Authorization": f"Bearer {token}"}) as resp:
                    assert resp.status == 200  # on the node's own port it is there

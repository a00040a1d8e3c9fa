"""Start and stop each server under test on loopback, and read its CPU time and memory."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT / "bench" / "peers"
TICK = os.sysconf("SC_CLK_TCK")

PROTOCOL = {"tidings": "tidings", "socketio-node": "socketio", "python-socketio": "socketio",
            "bare-aiohttp": "bare", "bare-picows": "bare", "bare-websockets": "bare"}
SCRIPTS = {"python-socketio": "pysio_server.py", "bare-aiohttp": "bare_server.py",
           "bare-picows": "bare_picows.py", "bare-websockets": "bare_websockets.py"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def install_peers() -> None:
    """npm packages for the Node peer (once); the Python peers come with the `bench` extra."""
    if not (PEERS / "node_modules" / "socket.io").is_dir():
        subprocess.run(["npm", "install", "--silent", "--no-audit", "--no-fund"], cwd=PEERS,
                       check=True)


class Server:
    def __init__(self, target: str, env: dict[str, str] | None = None):
        self.target = target
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.dir = tempfile.mkdtemp(prefix="tidings-bench-")
        self.extra_env = env or {}
        self.proc: subprocess.Popen | None = None

    def command(self) -> list[str]:
        if self.target == "tidings":
            return [sys.executable, "-m", "tidings", "serve", "--log-level", "warning"]
        if self.target == "socketio-node":
            return ["node", str(PEERS / "socketio_server.js")]
        return [sys.executable, str(PEERS / SCRIPTS[self.target])]

    def start(self) -> "Server":
        env = {**os.environ, "PORT": str(self.port), "TIDINGS_PORT": str(self.port),
               "TIDINGS_STORE": f"sqlite:///{self.dir}/bench.db",
               "TIDINGS_NAMESPACES__ROOM__JOIN_LEAVE": "false",
               "TIDINGS_NAMESPACES__ROOM__PRESENCE": "false",
               "TIDINGS_NAMESPACES__ROOM__PUBLISH": "anyone",
               "PYTHONPATH": str(ROOT), **self.extra_env}
        self.log = Path(self.dir) / "server.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(self.command(), env=env, stdout=log,
                                         stderr=subprocess.STDOUT, preexec_fn=_raise_nofile)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return self
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.target} exited at start")
                time.sleep(0.05)
        raise RuntimeError(f"{self.target} did not start")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> "Server":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _raise_nofile() -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Cluster:
    """Three Tidings nodes on one broker and one PostgreSQL schema (dropped afterwards)."""

    def __init__(self, broker: str, store: str, size: int = 3):
        self.nodes = [Server("tidings", {"TIDINGS_BROKER": broker, "TIDINGS_STORE": store,
                                         "TIDINGS_NODE_NAME": f"bench-n{i + 1}"})
                      for i in range(size)]

    def __enter__(self) -> "Cluster":
        for node in self.nodes:
            node.start()
        return self

    def __exit__(self, *exc) -> None:
        for node in self.nodes:
            node.stop()

    def broker_received(self) -> float:
        """Messages all nodes took from the broker so far (their /metrics)."""
        import re
        import urllib.request

        total = 0.0
        for node in self.nodes:
            with urllib.request.urlopen(f"{node.url}/metrics", timeout=5) as resp:
                text = resp.read().decode()
            match = re.search(r"^tidings_broker_received_total\{[^}]*\} ([0-9.e+]+)$", text, re.M)
            total += float(match.group(1)) if match else 0.0
        return total

    def cpu_seconds(self) -> float:
        return sum(node.cpu_seconds() for node in self.nodes)

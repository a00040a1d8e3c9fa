"""Start and stop each server under test on 127.0.0.1, and read its CPU time and memory.

Every server gets a fresh port and a fresh temporary directory (Tidings' SQLite file lives
there), runs with the open-files limit raised to the hard limit, and is terminated, then
killed if it lingers, when the `with` block ends.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench import bootstrap, procstat
from bench.limits import raise_nofile

PEERS = bootstrap.PEERS

PROTOCOL = {"tidings": "tidings", "tidings-stomp": "stomp", "rabbitmq-web-stomp": "webstomp",
            "tidings-centrifugo": "centrifugo",
            "tidings-centrifugo-protobuf": "centrifugo-protobuf",
            "socketio-node": "socketio", "python-socketio": "socketio",
            "bare-aiohttp": "bare", "bare-aiohttp-naive": "bare", "bare-picows": "bare",
            "bare-picows-naive": "bare", "bare-websockets": "bare",
            "bare-websockets-naive": "bare"}
SCRIPTS = {"python-socketio": "pysio_server.py", "bare-aiohttp": "bare_server.py",
           "bare-picows": "bare_picows.py", "bare-websockets": "bare_websockets.py"}

# Tidings as the benchmark runs it: the room namespace without join/leave events and
# presence (no peer has them) and open to any publisher; rooms stay stored (durable). The
# per-connection command rate limit is lifted: publishers send flat out, and no peer has one.
TIDINGS_ENV = {"TIDINGS_NAMESPACES__ROOM__JOIN_LEAVE": "false",
               "TIDINGS_NAMESPACES__ROOM__PRESENCE": "false",
               "TIDINGS_NAMESPACES__ROOM__PUBLISH": "anyone",
               "TIDINGS_SECURITY__COMMAND_RATE": "1000000000",
               "TIDINGS_SECURITY__COMMAND_BURST": "1000000000"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, target: str, env: dict[str, str] | None = None,
                 pyspy: Path | None = None):
        self.target = target
        self.proto = PROTOCOL[target]
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.dir = tempfile.mkdtemp(prefix="tidings-bench-")
        self.extra_env = env or {}
        self.pyspy = pyspy
        self.proc: subprocess.Popen | None = None
        self.spy: subprocess.Popen | None = None

    def command(self) -> list[str]:
        if self.target.startswith("tidings"):
            return [*bootstrap.tidings_command(), "serve", "--log-level", "warning"]
        if self.target == "socketio-node":
            return ["node", str(PEERS / "socketio_server.js")]
        return [sys.executable, str(PEERS / SCRIPTS[self.target.removesuffix("-naive")])]

    def env(self) -> dict[str, str]:
        env = {**os.environ, "PORT": str(self.port)}
        if self.target.startswith("tidings"):
            env.update(TIDINGS_ENV, TIDINGS_HOST="127.0.0.1", TIDINGS_PORT=str(self.port),
                       TIDINGS_STORE=f"sqlite:///{self.dir}/bench.db",
                       TIDINGS_BROKER="memory://")
            env.pop("PYTHONPATH", None)  # Tidings runs from its own venv, as installed
        if self.target.endswith("-naive"):
            env["BARE_MODE"] = "naive"
        env.update(self.extra_env)
        return env

    def start(self) -> "Server":
        self.log = Path(self.dir) / "server.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(self.command(), env=self.env(), stdout=log,
                                         stderr=subprocess.STDOUT, preexec_fn=raise_nofile)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                break
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.target} exited at start:\n{self.log_tail()}")
                time.sleep(0.05)
        else:
            self.stop()
            raise RuntimeError(f"{self.target} did not start within 30 s:\n{self.log_tail()}")
        if self.pyspy:
            self.spy = subprocess.Popen(
                [str(Path(sys.executable).parent / "py-spy"), "record", "--pid",
                 str(self.proc.pid), "--format", "raw", "--rate", "250", "--nonblocking", "--output",
                 str(self.pyspy)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return self

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def cpu_seconds(self) -> float:
        return procstat.cpu_seconds(self.proc.pid)

    def rss_bytes(self) -> int:
        return procstat.rss_bytes(self.proc.pid)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def metric(self, name: str) -> float:
        """A counter from Tidings' /metrics, summed over its label sets."""
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=5) as resp:
            text = resp.read().decode()
        pattern = rf"^{re.escape(name)}(?:\{{[^}}]*\}})? ([0-9.e+-]+)$"
        return sum(float(v) for v in re.findall(pattern, text, re.M))

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.spy:
            try:
                self.spy.wait(20)
            except subprocess.TimeoutExpired:
                self.spy.kill()
                self.spy.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "Server":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class Cluster:
    """Three nodes of one server kind sharing a broker (Tidings) or a Redis adapter (peers)."""

    def __init__(self, target: str, broker: str, store: str | None = None, size: int = 3):
        if target == "tidings":
            envs = [{"TIDINGS_BROKER": broker, "TIDINGS_STORE": store or "",
                     "TIDINGS_NODE_NAME": f"bench-n{i + 1}"} for i in range(size)]
        else:  # the Socket.IO peers: Redis adapter / AsyncRedisManager on `broker`
            envs = [{"REDIS_URL": broker, "REDIS_KEY": f"bench{os.getpid()}"}
                    for _ in range(size)]
        self.target = target
        self.proto = PROTOCOL[target]
        self.nodes = [Server(target, env) for env in envs]

    def __enter__(self) -> "Cluster":
        try:
            for node in self.nodes:
                node.start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        for node in self.nodes:
            node.stop()

    def broker_received(self) -> float:
        """Messages all nodes took from the broker so far (Tidings' /metrics); 0 for peers."""
        if self.target != "tidings":
            return 0.0
        return sum(node.metric("tidings_broker_received_total") for node in self.nodes)

    def broker_read(self) -> float:
        """Messages all nodes read off the broker so far, kept or dropped (/metrics)."""
        if self.target != "tidings":
            return 0.0
        return sum(node.metric("tidings_broker_read_total") for node in self.nodes)

    def cpu_seconds(self) -> float:
        return sum(node.cpu_seconds() for node in self.nodes)


class RabbitWebStomp:
    """RabbitMQ's own Web-STOMP plugin, the STOMP peer: a private RabbitMQ node of the
    machine's installed RabbitMQ, its own data directory and ports, every listener on
    127.0.0.1, started for the point and stopped after it.

    Not the shared RabbitMQ service: thousands of Web-STOMP connections need thousands of
    file descriptors (its limit is whatever it was started with), and each SUBSCRIBE
    declares a queue, so the peer gets a broker of its own, as Tidings gets its own process.
    """

    target = "rabbitmq-web-stomp"
    proto = "webstomp"

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.dir = Path(tempfile.mkdtemp(prefix="tidings-bench-rabbit-"))
        self.name = f"bench{self.port}@localhost"
        self.proc: subprocess.Popen | None = None
        self.pid = 0

    def start(self) -> "RabbitWebStomp":
        # Debian's /usr/sbin wrapper re-runs the script as the rabbitmq user through su,
        # whose login limits put the open-files limit back to 1,024: run the script itself
        inner = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
        server = str(inner) if inner.exists() else shutil.which("rabbitmq-server")
        with contextlib.suppress(LookupError, PermissionError):
            shutil.chown(self.dir, "rabbitmq", "rabbitmq")  # Debian's script runs it as rabbitmq
        (self.dir / "enabled_plugins").write_text("[rabbitmq_web_stomp].\n")
        (self.dir / "rabbitmq.conf").write_text(
            f"listeners.tcp.local = 127.0.0.1:{free_port()}\n"
            f"stomp.listeners.tcp.1 = 127.0.0.1:{free_port()}\n"
            f"web_stomp.tcp.ip = 127.0.0.1\nweb_stomp.tcp.port = {self.port}\n"
            "vm_memory_high_watermark.relative = 0.6\n")
        env = {**os.environ, "RABBITMQ_NODENAME": self.name,
               "RABBITMQ_DIST_PORT": str(free_port()),
               "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq"),
               "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "enabled_plugins"),
               "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
               "RABBITMQ_LOG_BASE": str(self.dir / "log"),
               "RABBITMQ_PID_FILE": str(self.dir / "pid"),
               "RABBITMQ_FEATURE_FLAGS_FILE": str(self.dir / "feature_flags")}
        self.log = self.dir / "server.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([server], env=env, stdout=log, cwd=self.dir,
                                         stderr=subprocess.STDOUT, preexec_fn=_own_group)
        deadline = time.monotonic() + 90
        while not _listening(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = self.log.read_text(errors="replace")[-2000:]
                self.stop()
                raise RuntimeError(f"private RabbitMQ did not start:\n{tail}")
            time.sleep(0.3)
        self.pid = _beam_of(self.name)
        return self

    def cpu_seconds(self) -> float:
        return procstat.cpu_seconds(self.pid)

    def stop(self) -> None:
        """The broker process itself (Debian's script runs it in a session of its own), then
        the script's group."""
        pid = self.pid or _beam_of(self.name, missing_ok=True)
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 30
            while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                time.sleep(0.2)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "RabbitWebStomp":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _own_group() -> None:
    """The broker in a process group of its own (its script starts beam and epmd helpers),
    with the open-files limit raised like every server under test."""
    os.setpgid(0, 0)
    raise_nofile()


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), 0.5).close()
        return True
    except OSError:
        return False


def _beam_of(node: str, missing_ok: bool = False) -> int:
    """The pid of the Erlang VM running RabbitMQ node `node` (named in its environment)."""
    wanted = f"RABBITMQ_NODENAME={node}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if not (entry / "cmdline").read_bytes().split(b"\0")[0].endswith(b"beam.smp"):
                continue
            if wanted in (entry / "environ").read_bytes().split(b"\0"):
                return int(entry.name)
        except OSError:
            continue
    if missing_ok:
        return 0
    raise RuntimeError(f"no beam.smp process runs RabbitMQ node {node}")

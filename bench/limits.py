"""What stands between the bench and 100,000 connections on one machine, and getting past it.

Three limits: the open-files limit (one descriptor per socket, in the server and in every
load-generator agent), the ~28,000 ephemeral ports one client address has towards one
server port (`ip_local_port_range` 32768-60999), and memory. The first is raised as far as
the process may (root with CAP_SYS_RESOURCE: up to `fs.nr_open`), the second is met by
spreading the clients over several loopback source addresses, the third is checked before
a point starts. Nothing here ever lowers a limit.
"""

from __future__ import annotations

import math
import resource
import socket
from pathlib import Path

from bench.procstat import available_bytes

WANTED_FILES = 262_144  # 100,000 connections with room to spare
HEADROOM = 500  # descriptors a server has anyway: its store, logs, listening sockets
PER_SOURCE = 20_000  # clients per source address, well under its ~28,000 ports
# Linux's IP_BIND_ADDRESS_NO_PORT (Python exposes the name from 3.12 on only)
BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
# RSS per idle connection, server and its clients in the generator together, with margin
MEMORY_PER_CONNECTION = 60_000


def nr_open() -> int:
    """The kernel's ceiling for any process's open-files limit."""
    try:
        return int(Path("/proc/sys/fs/nr_open").read_text())
    except (OSError, ValueError):
        return WANTED_FILES


def raise_nofile(wanted: int = WANTED_FILES) -> int:
    """Raise this process's open-files limit to `wanted` (capped by `fs.nr_open`) if it
    may raise its hard limit, else to the hard limit; returns the soft limit now set.
    Children inherit it, so the harness calls this once before starting anything."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(wanted, nr_open())
    if hard != resource.RLIM_INFINITY and hard < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, target))
            return target
        except (ValueError, OSError):
            pass  # no CAP_SYS_RESOURCE: the hard limit is as far as it goes
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def fd_budget() -> int:
    """Connections one process can hold here: its open-files hard limit, less headroom
    for the files and sockets it has anyway, in whole thousands."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return hard if hard == resource.RLIM_INFINITY else (hard - HEADROOM) // 1000 * 1000


def source_addresses(connections: int) -> tuple[str, ...]:
    """Loopback addresses for `connections` clients to connect from (127.0.0.2 and up;
    all of 127/8 is local on Linux), so no address runs out of ephemeral ports."""
    count = max(1, math.ceil(connections / PER_SOURCE))
    return tuple(f"127.0.0.{2 + i}" for i in range(count))


def bound_socket(source: str) -> socket.socket:
    """A TCP socket bound to `source`, its port chosen only at connect(): with
    IP_BIND_ADDRESS_NO_PORT a port is unique per (source, server address, server port),
    not per source, so the previous target's TIME_WAIT sockets on another port never
    block this one's connections."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.IPPROTO_IP, BIND_ADDRESS_NO_PORT, 1)
        sock.bind((source, 0))
    except OSError:
        sock.close()
        raise
    return sock


def memory_short(connections: int) -> str | None:
    """Why `connections` idle clients and their server would not fit in the memory
    available now, or None when they fit."""
    need = connections * MEMORY_PER_CONNECTION
    available = available_bytes()
    if available >= need:
        return None
    return (f"{connections:,} connections need about {need / 2**30:.1f} GiB "
            f"({MEMORY_PER_CONNECTION:,} bytes each, server and generator), "
            f"{available / 2**30:.1f} GiB available")


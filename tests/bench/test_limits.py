"""bench.limits: the source addresses, the bound sockets and the open-files limit that let
one machine hold 100,000 benchmark connections."""

from __future__ import annotations

import resource
import socket

from bench import limits


def test_source_addresses_keep_each_address_under_its_share_of_ports():
    for connections in (1, 10_000, 20_000, 20_001, 100_000):
        sources = limits.source_addresses(connections)
        assert len(sources) * limits.PER_SOURCE >= connections
        assert len(set(sources)) == len(sources)
        assert "127.0.0.1" not in sources  # left to everything else on the machine
    assert limits.source_addresses(100_000) == tuple(f"127.0.0.{i}" for i in range(2, 7))


def test_a_bound_socket_connects_from_its_source_address():
    with socket.create_server(("127.0.0.1", 0)) as server:
        with limits.bound_socket("127.0.0.3") as client:
            assert client.getsockname()[1] == 0  # its port is chosen only at connect()
            client.connect(server.getsockname())
            accepted, peer = server.accept()
            accepted.close()
    assert peer[0] == "127.0.0.3"


def test_raising_the_open_files_limit_never_lowers_it():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        now = limits.raise_nofile(wanted=1)
        assert now == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        assert now >= soft
        assert limits.fd_budget() <= resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_point_that_does_not_fit_in_memory_says_why():
    assert limits.memory_short(1) is None
    why = limits.memory_short(10**9)
    assert why is not None and "available" in why

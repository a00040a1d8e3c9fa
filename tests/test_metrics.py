"""`/metrics` as Prometheus scrapes it: every series the operations docs graph and alert on.

Each test drives a real node (native and STOMP clients over real WebSockets, a real Redis
broker where the broker round trip is measured) and reads the scraped text back with
prometheus_client's own parser.
"""

from __future__ import annotations

import uuid

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import CommandError
from tests.server.conftest import stomp_client

REDIS = "redis://127.0.0.1:6379/0"


async def scrape(server) -> dict[tuple[str, frozenset], float]:
    """Every sample of one scrape, keyed by (sample name, its labels)."""
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{server.url}/metrics") as resp:
            assert resp.status == 200
            text = await resp.text()
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_connections_are_counted_by_protocol_and_transport(server):
    native = await server.client("alice")
    stomp = await stomp_client(server.port, "bob")
    samples = await scrape(server)
    assert value(samples, "tidings_protocol_connections", protocol="native",
                 transport="websocket") == 1
    assert value(samples, "tidings_protocol_connections", protocol="stomp",
                 transport="websocket") == 1
    await native.close()
    await stomp.close()


async def test_subscriptions_are_counted_by_namespace(server):
    alice, bob = await server.client("alice"), await server.client("bob")
    for client in (alice, bob):
        await client.call("subscribe", {"channel": "room:lobby"})
    samples = await scrape(server)
    assert value(samples, "tidings_subscriptions", namespace="room") == 2
    assert value(samples, "tidings_subscriptions", namespace="user") == 2  # one each
    assert value(samples, "tidings_subscriptions", namespace="broadcast") == 2
    await bob.call("unsubscribe", {"channel": "room:lobby"})
    assert value(await scrape(server), "tidings_subscriptions", namespace="room") == 1


async def test_command_errors_are_counted_by_method_and_code(server):
    alice = await server.client("alice")
    for _ in range(2):
        with pytest.raises(CommandError) as error:
            await alice.call("publish", {"channel": "nowhere:x", "data": 1})
        assert error.value.code == 107
    samples = await scrape(server)
    assert value(samples, "tidings_command_errors_total", method="publish", code="107") == 2
    assert value(samples, "tidings_commands_total", method="publish", outcome="error") == 2


async def test_publications_in_deliveries_out_and_the_store_commit_histogram(server):
    readers = [await server.client(f"r{n}") for n in range(3)]
    for reader in readers:
        await reader.call("subscribe", {"channel": "room:fan"})
    writer = await server.client("writer")
    await writer.call("subscribe", {"channel": "room:fan"})
    before = await scrape(server)
    for n in range(4):
        await writer.call("publish", {"channel": "room:fan", "data": n})
    for reader in readers:
        await reader.pubs(4)
    after = await scrape(server)
    assert value(after, "tidings_publications_total", namespace="room") == 4
    assert value(after, "tidings_deliveries_total", node=server.node.name) - \
        value(before, "tidings_deliveries_total", node=server.node.name) == 16
    commits = value(after, "tidings_store_commit_seconds_count")
    assert 1 <= commits - value(before, "tidings_store_commit_seconds_count") <= 4
    assert value(after, "tidings_store_commit_seconds_bucket", le="+Inf") == commits
    assert value(after, "tidings_store_queued", node=server.node.name) == 0


async def test_the_broker_round_trip_is_a_histogram_of_every_broker_publish(make_server):
    async with make_server(broker=REDIS, node_name=f"m-{uuid.uuid4().hex[:8]}") as server:
        alice = await server.client("alice")
        room = f"room:{uuid.uuid4().hex}"
        await alice.call("subscribe", {"channel": room})
        before = value(await scrape(server), "tidings_broker_publish_seconds_count")
        for n in range(3):
            await alice.call("publish", {"channel": room, "data": n})
        samples = await scrape(server)
        assert value(samples, "tidings_broker_publish_seconds_count") - before == 3
        assert value(samples, "tidings_broker_publish_seconds_sum") > 0


async def test_a_memory_broker_publishes_nothing_so_no_round_trip_is_measured(server):
    alice = await server.client("alice")
    await alice.call("subscribe", {"channel": "room:solo"})
    await alice.call("publish", {"channel": "room:solo", "data": 1})
    assert value(await scrape(server), "tidings_broker_publish_seconds_count") == 0


async def test_recovery_outcomes_are_counted(server):
    writer = await server.client("writer")
    await writer.call("subscribe", {"channel": "room:rec"})
    first = await writer.call("publish", {"channel": "room:rec", "data": 1})
    await writer.call("publish", {"channel": "room:rec", "data": 2})
    reader = await server.client("reader")
    result = await reader.call("subscribe", {"channel": "room:rec", "offset": first["offset"],
                                             "epoch": first["epoch"]})
    assert result["recovered"] is True
    late = await server.client("late")
    with pytest.raises(CommandError) as error:
        await late.call("subscribe", {"channel": "room:rec", "offset": 1, "epoch": "gone"})
    assert error.value.code == 110
    samples = await scrape(server)
    assert value(samples, "tidings_recoveries_total", outcome="recovered") == 1
    assert value(samples, "tidings_recoveries_total", outcome="impossible") == 1


async def test_disconnects_are_counted_by_close_code(server):
    alice = await server.client("alice")
    await server.node.disconnect_user("alice", reconnect=True)
    assert (await alice.closed())[0] == 4007
    assert value(await scrape(server), "tidings_disconnects_total", code="4007") == 1


async def test_event_loop_lag_and_outgoing_bytes_are_exported(server):
    samples = await scrape(server)
    assert ("tidings_event_loop_lag_seconds_count", frozenset()) in samples
    assert ("tidings_outgoing_bytes", frozenset({("node", server.node.name)})) in samples


async def test_health_gauges_say_what_the_alerts_watch(server):
    samples = await scrape(server)
    node = {"node": server.node.name}
    assert value(samples, "tidings_broker_connected", **node) == 1
    assert value(samples, "tidings_store_failing", **node) == 0
    assert value(samples, "tidings_store_stalled_seconds", **node) == 0
    assert value(samples, "tidings_cluster_nodes", **node) == 1
    assert value(samples, "tidings_draining", **node) == 0


async def test_stomp_frames_are_counted_as_commands_with_their_error_codes(server):
    alice = await stomp_client(server.port, "alice")
    await alice.subscribe("/topic/lobby")
    await alice.send("SEND", {"destination": "/topic/lobby", "receipt": "r1"}, "hi")
    await alice.frame("MESSAGE")
    await alice.frame("RECEIPT")
    await alice.send("SUBSCRIBE", {"destination": "/topic/x"})  # no id: refused by STOMP
    assert (await alice.frame("ERROR")).header("message") == "SUBSCRIBE needs an 'id' header"
    bob = await stomp_client(server.port, "bob")
    await bob.send("SEND", {"destination": "/topic/nowhere:x"}, "hi")  # refused by the node
    await bob.frame("ERROR")
    samples = await scrape(server)
    assert value(samples, "tidings_commands_total", method="STOMP SEND", outcome="ok") == 1
    assert value(samples, "tidings_commands_total", method="STOMP SUBSCRIBE", outcome="ok") == 1
    assert value(samples, "tidings_command_errors_total", method="STOMP SUBSCRIBE",
                 code="frame") == 1
    errors = {labels: v for (name, labels), v in samples.items()
              if name == "tidings_command_errors_total" and ("method", "STOMP SEND") in labels}
    assert sum(errors.values()) == 1 and ("code", "frame") not in next(iter(errors))

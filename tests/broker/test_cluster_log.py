"""The cluster view a log-based broker rebuilds from its control log, without a broker."""

from __future__ import annotations

import orjson
import pytest

from tidings.broker.cluster_log import (
    CHUNK,
    ClusterView,
    add_record,
    heartbeat_records,
    hello_record,
    remove_record,
)
from tidings.model import ClientInfo, NodeInfo

NODE = NodeInfo("n1", 2, 2, 1_700_000_000_000, "test", "127.0.0.1:8000")


def test_a_heartbeat_writes_presence_in_chunks_then_the_node_line():
    crowd = [ClientInfo(f"c{n}", f"u{n}", "n1") for n in range(CHUNK * 2 + 1)]
    records = [orjson.loads(r) for r in heartbeat_records(NODE, {"room:big": crowd})]
    assert [len(r["add"]) for r in records[:-1]] == [CHUNK, CHUNK, 1]
    assert records[-1] == {"node": NODE.to_dict()}


def test_entries_live_ttl_after_the_record_that_last_wrote_them():
    view = ClusterView(ttl=2.0)
    alice = ClientInfo("c1", "alice", "n1")
    for record in heartbeat_records(NODE, {"room:p": [alice]}):
        view.apply(record, written_ms=10_000)
    assert view.nodes(11_999) == [NODE] and view.presence("room:p", 11_999) == [alice]
    view.apply(add_record("room:p", alice), written_ms=11_000)  # refreshed
    assert view.nodes(12_000) == [] and view.presence("room:p", 12_999) == [alice]
    assert view.presence("room:p", 13_000) == []


def test_remove_drops_one_entry_and_hello_changes_nothing():
    view = ClusterView(ttl=2.0)
    bob, carol = ClientInfo("c2", "bob", "n1"), ClientInfo("c3", "carol", "n1")
    for record in (add_record("room:p", bob), add_record("room:p", carol),
                   hello_record("n2"), remove_record("room:p", "c2"),
                   remove_record("room:never", "c9")):
        view.apply(record, written_ms=0)
    assert view.presence("room:p", 1) == [carol] and view.nodes(1) == []


@pytest.mark.parametrize("record", [b"not json", b"[]", b'{"add": [["room:p"]]}',
                                    b'{"what": 1}', b'{"node": {"name": "x"}}'])
def test_a_malformed_record_is_a_value_error(record):
    with pytest.raises(ValueError, match="malformed control record"):
        ClusterView(ttl=1.0).apply(record, written_ms=0)

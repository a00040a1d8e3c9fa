"""Cluster state rebuilt from a log: node heartbeats and presence changes, expiring by time.

A log-based broker (Kafka) holds no key-value state that expires by itself, so every node
writes its liveness and presence as records on one control log and every node reads the
whole log into a `ClusterView`. Each record carries the time its writer made it; an entry
lives for `ttl` after the latest record that wrote it, so a node that stops writing (killed,
cut off) disappears from the view `ttl` after its last heartbeat, whoever reads it and
whenever they started reading.

Sans-I/O: records are bytes in, the view answers questions; no sockets, no clock of its
own (callers pass the time), so it is tested without a broker.

Records (JSON objects, one per log record):
- `{"add": [[channel, client], ...]}`: presence entries written or refreshed;
- `{"remove": [channel, client_id]}`: one presence entry gone;
- `{"node": node_info}`: a node's heartbeat line, written after the presence chunks of
  the same heartbeat, so a node is never listed before its presence is;
- `{"hello": node_name}`: a node connected. It changes nothing in the view; it puts a
  record in the log that the node itself reads, so a broker that comes back with an
  empty log is noticed (its end is before what the node has read) even by a node that
  has read nothing else.
"""

from __future__ import annotations

from collections.abc import Iterator

import orjson

from tidings.model import ClientInfo, NodeInfo

CHUNK = 500  # presence entries per record: 2,500 clients make five records of ~60 KB


def heartbeat_records(node: NodeInfo, presence: dict[str, list[ClientInfo]]) -> Iterator[bytes]:
    """The records of one heartbeat, in the order they must be written."""
    entries = [[channel, client.to_dict()] for channel, clients in presence.items()
               for client in clients]
    for start in range(0, len(entries), CHUNK):
        yield orjson.dumps({"add": entries[start:start + CHUNK]})
    yield orjson.dumps({"node": node.to_dict()})


def hello_record(node: str) -> bytes:
    return orjson.dumps({"hello": node})


def add_record(channel: str, client: ClientInfo) -> bytes:
    return orjson.dumps({"add": [[channel, client.to_dict()]]})


def remove_record(channel: str, client: str) -> bytes:
    return orjson.dumps({"remove": [channel, client]})


class ClusterView:
    """What one node knows of every node's liveness and presence, from the records it read."""

    def __init__(self, ttl: float):
        self.ttl_ms = int(ttl * 1000)
        self._nodes: dict[str, tuple[int, NodeInfo]] = {}  # name -> (expires, info)
        # channel -> client id -> (expires, info)
        self._presence: dict[str, dict[str, tuple[int, ClientInfo]]] = {}

    def apply(self, record: bytes, written_ms: int) -> None:
        """Take one control record written at `written_ms`; malformed ones raise ValueError."""
        try:
            body = orjson.loads(record)
            expires = written_ms + self.ttl_ms
            if "add" in body:
                for channel, client in body["add"]:
                    info = ClientInfo.from_dict(client)
                    self._presence.setdefault(channel, {})[info.client] = (expires, info)
            elif "remove" in body:
                channel, client = body["remove"]
                clients = self._presence.get(channel)
                if clients is not None:
                    clients.pop(client, None)
                    if not clients:
                        del self._presence[channel]
            elif "hello" in body:
                pass
            elif "node" in body:
                info = NodeInfo.from_dict(body["node"])
                self._nodes[info.name] = (expires, info)
            else:
                raise ValueError(f"unknown control record {sorted(body)}")
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed control record: {exc}") from exc

    def nodes(self, now_ms: int) -> list[NodeInfo]:
        self._nodes = {name: entry for name, entry in self._nodes.items() if entry[0] > now_ms}
        return [info for _, info in self._nodes.values()]

    def presence(self, channel: str, now_ms: int) -> list[ClientInfo]:
        clients = self._presence.get(channel)
        if not clients:
            return []
        live = {client: entry for client, entry in clients.items() if entry[0] > now_ms}
        if live:
            self._presence[channel] = live
        else:
            del self._presence[channel]
        return [info for _, info in live.values()]

    def prune(self, now_ms: int) -> None:
        """Forget every expired entry (the reads prune only what they look at)."""
        self.nodes(now_ms)
        for channel in list(self._presence):
            self.presence(channel, now_ms)

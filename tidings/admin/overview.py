"""What the admin console shows, as JSON: built from one node's state when the page asks.

The cluster (nodes and their counts) comes from the broker's heartbeats, as `/api/info`
shows it; everything else is this node's own: its connections, channels, ingest sources,
trends and recent problems. An operator with several nodes opens each node's console (the
nodes table links to them).
"""

from __future__ import annotations

import time

from tidings import __version__
from tidings.admin.recent import RecentProblems
from tidings.admin.trends import Reading, Trends
from tidings.node import Node

MAX_USER_CONNECTIONS = 100  # shown per looked-up user


def reading(node: Node) -> Reading:
    """The figures one trend sample needs (see tidings.admin.trends)."""
    registry = node.metrics.registry
    publications = sum(sample.value for family in node.metrics.published.collect()
                       for sample in family.samples if sample.name.endswith("_total"))
    return Reading(
        connections=len(node.sessions),
        users=len(node.by_user),
        publications=publications,
        deliveries=node.hub.deliveries,
        lag_sum=registry.get_sample_value("tidings_event_loop_lag_seconds_sum") or 0.0,
        lag_count=registry.get_sample_value("tidings_event_loop_lag_seconds_count") or 0.0,
        channels={name: (state.published, state.count())
                  for name, state in list(node.hub.channels.items())
                  if not name.startswith("$")},
    )


async def overview(node: Node, trends: Trends, problems: RecentProblems) -> dict:
    nodes = sorted(await node.nodes(), key=lambda n: n.name)
    protocols = [{"protocol": protocol, "transport": transport, "connections": int(count)}
                 for (protocol, transport), count in
                 sorted(node.connections_by_protocol().items())]
    subscriptions = {ns: int(count) for (ns,), count in
                     sorted(node.subscriptions_by_namespace().items()) if not ns.startswith("$")}
    return {
        "node": node.name,
        "version": __version__,
        "started": node.started,
        "now": int(time.time() * 1000),
        "draining": node.draining,
        "nodes": [n.to_dict() for n in nodes],
        "local": {
            "connections": len(node.sessions),
            "users": len(node.by_user),
            "channels": sum(1 for name in node.hub.channels if not name.startswith("$")),
            "protocols": protocols,
            "subscriptions": subscriptions,
            "store_queued": node.store.queued,
            "loop_lag_worst": node.loop_lag.worst,
        },
        "channels": trends.busiest,
        "ingest": ingest_sources(node),
        "problems": problems.newest_first(),
        "trends": trends.series(),
        "interval": trends.interval,
    }


def ingest_sources(node: Node) -> list[dict]:
    registry = node.metrics.registry
    lag = node.intake.latest_lag
    out = []
    for source in node.intake.sources:
        labels = {"source": source.name}
        dead = sum(sample.value for family in node.intake.dead.collect()
                   for sample in family.samples
                   if sample.name.endswith("_total") and sample.labels["source"] == source.name)
        out.append({
            "source": source.name,
            "kind": source.config.kind,
            "queue": source.config.queue,
            "connected": source.connected,
            "reconnects": source.reconnects,
            "stored": registry.get_sample_value("tidings_ingested_total", labels) or 0,
            "dead_letters": dead,
            "retries": registry.get_sample_value("tidings_ingest_retries_total", labels) or 0,
            "lag": lag.get(source.name),
        })
    return out


async def user_view(node: Node, user: str) -> dict:
    """A user's connections on this node, and their inbox (counts and newest messages)."""
    now = time.monotonic()
    connections = [{
        "client": session.client,
        "protocol": session.peer.protocol,
        "transport": session.peer.transport,
        "address": session.peer.address,
        "seconds": round(now - session.opened_at),
        "subscriptions": sorted(session.subscriptions),
    } for session in list(node.by_user.get(user, ()))[:MAX_USER_CONNECTIONS]]
    return {"user": user, "node": node.name, "connections": connections,
            "inbox": await node.inbox.view(user, limit=5)}

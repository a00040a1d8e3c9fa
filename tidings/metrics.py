"""Prometheus metrics of one node, in a registry of its own (tests run several nodes at once)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from tidings.looplag import BUCKETS as LAG_BUCKETS

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class Metrics:
    def __init__(self, node: str, read: dict[str, Callable[[], float]],
                 restarts: Callable[[], dict[str, int]] = dict,
                 breakdowns: tuple["Breakdown", ...] = ()):
        """`read` maps gauge names to callables read at scrape time (no bookkeeping on hot paths).

        `restarts` gives the background-task failures so far, by task name; each of
        `breakdowns` is a labelled gauge counted from the node's state at scrape time.
        """
        self.registry = CollectorRegistry()
        labels = {"node": node}
        self.commands = Counter(
            "tidings_commands", "Client commands handled, by method and outcome",
            ["method", "outcome"], registry=self.registry,
        )
        self.published = Counter(
            "tidings_publications", "Publications accepted, by namespace",
            ["namespace"], registry=self.registry,
        )
        self.disconnects = Counter(
            "tidings_disconnects", "Sessions closed by the node, by close code",
            ["code"], registry=self.registry,
        )
        self.refused = Counter(
            "tidings_refused", "Handshakes, connections and commands refused by a security "
            "check or limit, by reason", ["reason"], registry=self.registry,
        )
        self.proxy_calls = Counter(
            "tidings_proxy_calls", "Answers of the application backend's proxy hooks, by hook "
            "and outcome (allow, deny, error, cached_allow, cached_deny)",
            ["hook", "outcome"], registry=self.registry,
        )
        self.publish_seconds = Histogram(
            "tidings_publish_seconds", "Publish latency: store append to broker hand-off",
            registry=self.registry,
            buckets=LATENCY_BUCKETS,
        )
        self.command_errors = Counter(
            "tidings_command_errors", "Commands answered with an error, by method and error code",
            ["method", "code"], registry=self.registry,
        )
        self.recoveries = Counter(
            "tidings_recoveries", "Subscriptions that asked to recover from a position, by "
            "outcome (recovered, impossible)", ["outcome"], registry=self.registry,
        )
        self.store_commit_seconds = Histogram(
            "tidings_store_commit_seconds", "Time one group-commit batch took to become durable",
            registry=self.registry, buckets=LATENCY_BUCKETS,
        )
        self.broker_publish_seconds = Histogram(
            "tidings_broker_publish_seconds", "Broker round trip: handing one message to the "
            "broker until it confirmed", registry=self.registry, buckets=LATENCY_BUCKETS,
        )
        self.loop_lag = Histogram(
            "tidings_event_loop_lag_seconds", "How late the event loop woke a sleeping task",
            registry=self.registry, buckets=LAG_BUCKETS,
        )
        self.registry.register(_Restarts(restarts))
        for breakdown in breakdowns:
            self.registry.register(breakdown)
        ProcessCollector(registry=self.registry)  # process_open_fds, memory, CPU
        self._children: dict[tuple, object] = {}
        for name, fn in read.items():
            gauge = Gauge(f"tidings_{name}", name.replace("_", " "), ["node"],
                          registry=self.registry)
            gauge.labels(**labels).set_function(fn)

    def count(self, metric: Counter, *labels: str) -> None:
        """Increment a labelled counter; children are cached (labels() is slow on hot paths)."""
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        child.inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _Restarts:
    """`tidings_background_restarts_total{task=...}`, read from the supervisors at scrape time."""

    def __init__(self, read: Callable[[], dict[str, int]]):
        self._read = read

    def collect(self):
        family = CounterMetricFamily(
            "tidings_background_restarts",
            "Background tasks that failed and were restarted or handed to their owner",
            labels=["task"],
        )
        for task, count in sorted(self._read().items()):
            family.add_metric([task], count)
        yield family


class Breakdown:
    """A gauge family with labels, counted from the node's state each time it is scraped.

    `count` returns {label values: value}; nothing is kept up to date between scrapes.
    """

    def __init__(self, name: str, documentation: str, labels: list[str],
                 count: Callable[[], dict[tuple[str, ...], float]]):
        self._name = name
        self._documentation = documentation
        self._labels = labels
        self._count = count

    def collect(self):
        family = GaugeMetricFamily(self._name, self._documentation, labels=self._labels)
        for values, value in sorted(self._count().items()):
            family.add_metric(list(values), value)
        yield family

"""Run a profile's scenarios against every target and collect the raw figures.

Results land in `results["scenarios"][scenario][point][target]`, a list with one dict per
measured round. A target that fails (does not start, loses its connections) is recorded
under `results["errors"]` and the run goes on with the next one; the report and the exit
status say so.
"""

from __future__ import annotations

import resource
import shutil
import statistics
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable
from pathlib import Path

from bench import scenarios as sc
from bench.limits import fd_budget, memory_short
from bench.loadgen import Setup
from bench.scraping import Scraper, cpu_per_scrape
from bench.brokers import BROKERS, RedisShards, namespaced
from bench.servers import Cluster, RabbitWebStomp, Server
from bench.store import MYSQL, PG, drop_database, drop_schema


class Runner:
    def __init__(self, profile: dict, results: dict, pyspy_dir: Path | None = None):
        self.profile = profile
        self.results = results
        self.repeat = profile["repeat"]
        self.deadline = profile["deadline"]
        self.pyspy_dir = pyspy_dir
        self.started = time.monotonic()
        results.setdefault("scenarios", {})
        results.setdefault("errors", [])

    # ---- bookkeeping -----------------------------------------------------------------

    def record(self, scenario: str, point: str, target: str, runs: list[dict]) -> None:
        self.results["scenarios"].setdefault(scenario, {}).setdefault(point, {})[target] = runs
        from bench.report import brief

        print(f"[{time.monotonic() - self.started:5.0f} s] {scenario} | {point} | {target}: "
              f"{brief(scenario, runs)}", flush=True)

    def guarded(self, what: str, fn: Callable[[], None]) -> None:
        """Run one target's point; a failure is recorded, not fatal to the whole run."""
        try:
            fn()
        except Exception as exc:
            message = f"{what}: {type(exc).__name__}: {exc}"
            print(f"error | {message}", flush=True)
            traceback.print_exc()
            self.results["errors"].append(message)

    def server(self, target: str, env: dict | None = None, tag: str = ""):
        if target == "rabbitmq-web-stomp":
            return RabbitWebStomp()
        spy = None
        if self.pyspy_dir and target == "tidings":
            spy = self.pyspy_dir / f"{tag or 'tidings'}.raw"
        return Server(target, env, pyspy=spy)

    def _sized(self, per_second: float, most: int, least: int = sc.PUBLISHERS) -> int:
        """How many messages make a measured round last about `round_seconds` at the rate
        the warm-up round showed: slow servers get short counts (the run stays short), fast
        ones long enough rounds (the figure is not noise). Never above `most`."""
        wanted = round(per_second * self.profile["round_seconds"])
        return max(least, min(most, wanted))

    # ---- scenarios -------------------------------------------------------------------

    def fanout(self, targets: list[str], scenario: str = "fanout") -> None:
        spec = self.profile["fanout"]
        for subscribers, publications in spec["points"]:
            for target in targets:
                self.guarded(f"{scenario} N={subscribers} {target}", lambda: self._fanout_point(
                    scenario, target, subscribers, publications,
                    with_latency=subscribers == spec.get("latency_at")))

    def _fanout_point(self, scenario: str, target: str, subscribers: int,
                      publications: int, with_latency: bool) -> None:
        spec = self.profile["fanout"]
        with self.server(target, tag=f"fanout-N{subscribers}") as server:
            setups = sc.room_setups(server.proto, [server.url] * sc.SUB_AGENTS, server.url,
                                    subscribers)
            with sc.Rounds(setups, server.cpu_seconds) as rounds:
                warm = sc.room_round(rounds, max(sc.PUBLISHERS, publications // 10), 0,
                                     self.deadline)
                count = self._sized(warm["deliveries_per_s"] / subscribers, publications)
                flat = [sc.room_round(rounds, count, 0, self.deadline)
                        for _ in range(self.repeat)]
                self.record(scenario, f"N={subscribers}", target, flat)
                if not with_latency:
                    return
                sustained = statistics.median(r["deliveries_per_s"] for r in flat)
                half = max(1.0, sustained / subscribers / 2)
                for label, rate in ((f"N={subscribers}, half of its own top rate", half),
                                    (f"N={subscribers}, {spec['fixed_rate']}/s for all",
                                     spec["fixed_rate"])):
                    count = max(sc.PUBLISHERS, round(rate * spec["latency_seconds"]))
                    self.record("latency", label, target, [
                        sc.room_round(rounds, count, rate, self.deadline)
                        for _ in range(self.repeat)])

    def curve(self, targets: list[str]) -> None:
        """Latency at fixed delivery rates and the floor, every server alike (curve.py)."""
        from bench.curve import curve

        curve(self, targets)

    def stomp(self) -> None:
        """Room fan-out to STOMP subscribers: Tidings' native protocol, Tidings' STOMP and
        RabbitMQ's Web-STOMP plugin in the same run."""
        spec = self.profile["stomp"]
        for subscribers, publications in spec["points"]:
            for target in spec["targets"]:
                self.guarded(f"stomp fan-out N={subscribers} {target}",
                             lambda: self._fanout_point("stomp fan-out", target, subscribers,
                                                        publications, with_latency=False))

    def centrifugo(self) -> None:
        """Room fan-out to Centrifugo-protocol subscribers (JSON and Protobuf) and to native
        ones in the same run."""
        spec = self.profile["centrifugo"]
        for subscribers, publications in spec["points"]:
            for target in spec["targets"]:
                self.guarded(f"centrifugo fan-out N={subscribers} {target}",
                             lambda: self._fanout_point("centrifugo fan-out", target,
                                                        subscribers, publications,
                                                        with_latency=False))

    def direct(self, targets: list[str]) -> None:
        spec = self.profile["direct"]
        for target in targets:
            if target.startswith("bare"):
                continue  # a broadcast relay has no addressing
            self.guarded(f"direct {target}", lambda: self._direct_point(target, spec))

    def _direct_point(self, target: str, spec: dict) -> None:
        with self.server(target, tag="direct") as server:
            setups, partner = sc.pair_setups(server.proto, [server.url] * sc.SUB_AGENTS,
                                             spec["pairs"])
            with sc.Rounds(setups, server.cpu_seconds) as rounds:
                warm = sc.pair_round(rounds, partner, 1, self.deadline)
                per_user = self._sized(warm["messages_per_s"] / (2 * spec["pairs"]),
                                       spec["per_user"], least=2)
                self.record("direct", f"M={spec['pairs']}", target, [
                    sc.pair_round(rounds, partner, per_user, self.deadline)
                    for _ in range(self.repeat)])

    def metrics(self) -> None:
        """Fan-out and direct messages on one Tidings server, rounds with `/metrics` scraped
        and rounds without, alternating (ABBA...) on the same connections: the ratio is what
        scraping costs the traffic."""
        spec = self.profile["metrics"]
        subscribers, publications = spec["fanout"]
        pairs, per_user = spec["direct"]
        self.guarded("metrics fan-out", lambda: self._scraped_or_not(
            "metrics fan-out", f"N={subscribers}", spec["every"],
            lambda server: sc.room_setups(server.proto, [server.url] * sc.SUB_AGENTS,
                                          server.url, subscribers),
            lambda rounds, count: sc.room_round(rounds, count, 0, self.deadline),
            lambda warm: self._sized(warm["deliveries_per_s"] / subscribers, publications),
            max(sc.PUBLISHERS, publications // 10)))

        def pair(rounds, count):
            return sc.pair_round(rounds, partner, count, self.deadline)

        partner: dict = {}

        def pair_setups(server):
            setups, found = sc.pair_setups(server.proto, [server.url] * sc.SUB_AGENTS, pairs)
            partner.update(found)
            return setups

        self.guarded("metrics direct", lambda: self._scraped_or_not(
            "metrics direct", f"M={pairs}", spec["every"], pair_setups, pair,
            lambda warm: self._sized(warm["messages_per_s"] / (2 * pairs), per_user, least=2),
            1))

    def _scraped_or_not(self, scenario: str, point: str, every: float, setups, measure,
                        size, warm_count: int) -> None:
        quiet, scraped = [], []
        with self.server("tidings", tag=scenario.replace(" ", "-")) as server:
            with sc.Rounds(setups(server), server.cpu_seconds) as rounds:
                count = size(measure(rounds, warm_count))
                for number in range(2 * self.profile["metrics"]["rounds"]):
                    if number % 4 in (1, 2):  # quiet, scraped, scraped, quiet, ...
                        with Scraper(server.url, every) as scraper:
                            run = measure(rounds, count)
                        scraped.append({**run, **scraper.figures()})
                    else:
                        quiet.append(measure(rounds, count))
                alone = cpu_per_scrape(server.url, server.cpu_seconds)  # clients idle now
        for run in scraped:
            run["scrape_cpu_ms"] = alone * 1000
        self.record(scenario, point, "tidings", quiet)
        self.record(scenario, point, f"tidings, /metrics every {every:g} s", scraped)

    def idle(self, targets: list[str], points: list[int], scenario: str = "idle") -> None:
        for wanted in points:
            connections = min(wanted, fd_budget())
            if connections < wanted:
                self.results.setdefault("skipped", []).append(
                    f"{scenario} N={wanted}: the open-files hard limit here is "
                    f"{resource.getrlimit(resource.RLIMIT_NOFILE)[1]:,} and may not be raised "
                    f"(a server needs one per connection; raising it takes CAP_SYS_RESOURCE), "
                    f"so measured at N={connections} instead")
            for target in targets:
                def point() -> None:
                    runs = []
                    for _ in range(self.repeat):  # a fresh server each time: RSS only grows
                        short = memory_short(connections)
                        if short:
                            self.results.setdefault("skipped", []).append(
                                f"{scenario} N={connections} {target}: {short}")
                            return
                        with self.server(target, tag=f"idle-N{connections}") as server:
                            runs.append(sc.idle(server, connections,
                                                self.profile.get("idle_window", 0.0),
                                                self.profile.get("connect_deadline", 300)))
                    self.record(scenario, f"N={connections}", target, runs)

                self.guarded(f"{scenario} N={connections} {target}", point)

    def durable(self) -> None:
        spec = self.profile["durable"]
        for store in spec["stores"]:
            for grouped in (True, False):
                label = f"{store}, {'group commit' if grouped else 'one commit per message'}"
                self.guarded(f"durable {label}",
                             lambda: self._durable_point(store, grouped, label, spec))

    def _durable_point(self, store: str, grouped: bool, label: str, spec: dict) -> None:
        env = {"TIDINGS_GROUP_COMMIT": str(grouped).lower()}
        schema = database = None
        if store == "postgresql":
            schema = f"bench_{uuid.uuid4().hex[:8]}"
            env["TIDINGS_STORE"] = f"{PG}?schema={schema}"
        elif store == "mysql":
            database = f"bench_{uuid.uuid4().hex[:8]}"
            env["TIDINGS_STORE"] = f"{MYSQL}/{database}"
        try:
            with self.server("tidings", env, tag=f"durable-{store}-{grouped}") as server:
                names = [f"w{i}" for i in range(spec["publishers"])]
                setups = [Setup("tidings", server.url, part)
                          for part in sc.split(names, sc.SUB_AGENTS)]
                with sc.Rounds(setups, server.cpu_seconds) as rounds:
                    sc.durable_round(rounds, 2, self.deadline)
                    per = spec["per_publisher"]["group" if grouped else "single"]
                    self.record("durable", label, "tidings", [
                        sc.durable_round(rounds, per, self.deadline)
                        for _ in range(self.repeat)])
        finally:
            if schema:
                drop_schema(PG, schema)
            if database:
                drop_database(MYSQL, database)

    def recovery(self) -> None:
        for missed in self.profile["recovery"]:
            keep = {"TIDINGS_NAMESPACES__ROOM__HISTORY_SIZE": str(max(missed, 1000))}

            def point() -> None:
                with self.server("tidings", keep, tag=f"recovery-K{missed}") as server:
                    self.record("recovery", f"K={missed}", "tidings", [
                        sc.recovery(server, missed, n) for n in range(self.repeat)])

            self.guarded(f"recovery K={missed}", point)

    def stack(self) -> None:
        """The bare relay on each WebSocket library considered: input to the stack choice."""
        spec = self.profile["stack"]
        subscribers, publications = spec["fanout"]
        saved = self.profile["fanout"]
        self.profile = {**self.profile, "fanout": {"points": [(subscribers, publications)]}}
        try:
            self.fanout(spec["targets"], scenario="stack fan-out")
        finally:
            self.profile = {**self.profile, "fanout": saved}
        self.idle([t for t in spec["targets"] if not t.endswith("-naive")], [spec["idle"]],
                  scenario="stack idle")

    def ingest(self) -> None:
        """Per queue system: the bare consumer's drain rate, then Tidings' end to end."""
        from bench import ingest

        spec = self.profile["ingest"]
        for system in spec["systems"]:
            point = f"{system}, {spec['notifications']:,} notifications"
            self.guarded(f"ingest {system} bare", lambda: self.record(
                "ingest", point, f"bare {system} consumer", [
                    ingest.bare_round(system, spec["notifications"], self.deadline)
                    for _ in range(self.repeat)]))

            def tidings() -> None:
                store_dir = tempfile.mkdtemp(prefix="tidings-bench-ingest-")
                try:
                    self.record("ingest", point, "tidings", [
                        ingest.tidings_round(system, spec["notifications"], self.deadline,
                                             store_dir) for _ in range(self.repeat)])
                finally:
                    shutil.rmtree(store_dir, ignore_errors=True)

            self.guarded(f"ingest {system} tidings", tidings)

    # ---- cluster ---------------------------------------------------------------------

    def cluster(self) -> None:
        """Three nodes per broker: Tidings on each broker (PostgreSQL store), the Socket.IO
        peers on their Redis adapters. Same room fan-out and direct messages as one node."""
        spec = self.profile["cluster"]
        kinds = [("tidings", kind, url) for kind, url in BROKERS.items()
                 if kind in spec.get("brokers", BROKERS)]
        kinds += [(peer, "redis", BROKERS["redis"]) for peer in spec.get("peers", [])]
        for target, kind, url in kinds:
            self.guarded(f"cluster {target} on {kind}",
                         lambda: self._cluster_point(target, kind, url, spec))

    def _cluster_point(self, target: str, kind: str, url: str, spec: dict,
                       scenario: str = "cluster", point: str = "3 nodes",
                       broker_cpu: Callable[[], float] | None = None) -> None:
        label = f"{target} on {kind}"
        fan, dm = [], []
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        store = f"{PG}?schema={schema}" if target == "tidings" else None
        try:
            with namespaced(kind, url) as url, Cluster(target, url, store) as cluster:
                urls = [n.url for n in cluster.nodes]
                subscribers, publications = spec["fanout"]
                setups = sc.room_setups(cluster.proto, urls, urls[0], subscribers)
                with sc.Rounds(setups, cluster.cpu_seconds, cluster.broker_read) as rounds:
                    warm = sc.room_round(rounds, max(sc.PUBLISHERS, publications // 10), 0,
                                         self.deadline)
                    count = self._sized(warm["deliveries_per_s"] / subscribers, publications)
                    for _ in range(self.repeat):
                        run = _with_broker_cpu(broker_cpu, lambda: sc.room_round(
                            rounds, count, 0, self.deadline))
                        run["broker_messages_per_publication"] = (
                            run["extra"] / max(run["publications"], 1))
                        fan.append(run)
                pairs, per_user = spec["direct"]
                setups, partner = sc.pair_setups(cluster.proto, urls, pairs)
                with sc.Rounds(setups, cluster.cpu_seconds, cluster.broker_read) as rounds:
                    warm = sc.pair_round(rounds, partner, 1, self.deadline)
                    per_user = self._sized(warm["messages_per_s"] / (2 * pairs), per_user,
                                           least=2)
                    for _ in range(self.repeat):
                        run = _with_broker_cpu(broker_cpu, lambda: sc.pair_round(
                            rounds, partner, per_user, self.deadline))
                        run["broker_messages_per_message"] = (
                            run["extra"] / max(run["messages"], 1))
                        dm.append(run)
        finally:
            if store:
                drop_schema(PG, schema)
        self.record(f"{scenario} fan-out", point, label, fan)
        self.record(f"{scenario} direct", point, label, dm)

    def shards(self) -> None:
        """Three Tidings nodes on 1, 2 and 3 independent Redis servers of the bench's own,
        sharded by channel: does throughput follow the shards, and what does each cost?"""
        spec = self.profile["cluster"]
        for count in self.profile.get("shards", [1, 2, 3]):
            def point(count: int = count) -> None:
                with RedisShards(count) as shards:
                    self._cluster_point("tidings", "redis", shards.url, spec,
                                        scenario="shards", point=f"{count} Redis shards",
                                        broker_cpu=shards.cpu_seconds)

            self.guarded(f"shards {count}", point)


def _with_broker_cpu(broker_cpu: Callable[[], float] | None, measure: Callable[[], dict]) -> dict:
    """`measure()`'s figures, with the broker servers' CPU seconds during it if known."""
    before = broker_cpu() if broker_cpu else 0.0
    run = measure()
    if broker_cpu:
        run["broker_cpu_seconds"] = broker_cpu() - before
    return run

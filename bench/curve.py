"""The latency curve: publish-to-receive latency at fixed delivery rates, every server alike.

Each server gets N subscribers in one room (connected once) and, on the same connections:

- the **floor**: isolated publications (two a second, so each is written to all N sockets
  and read by the clients before the next one comes): what this machine needs to write one
  publication to N sockets. On the bare relay that is the stack's own floor; no server on
  it can do better.
- one point per **delivery rate** (deliveries/s = publications/s x N): the publishers pace
  their publications evenly and stamp each with the time it was due, so a server that falls
  behind shows it in its tail rather than in a slower send rate. A point is **sustained**
  when every delivery arrived and the publishers kept at least 90% of the rate; once a
  server fails to sustain a rate, its higher rates are not run (they cannot be sustained
  either, and an overloaded round would spill its backlog into the next).
"""

from __future__ import annotations

from bench import scenarios as sc
from bench.report import sustained

FLOOR_RATE = 2.0  # publications/s: far enough apart that one is done before the next
SUSTAINED = 0.9  # of the offered publication rate


def curve(runner, targets: list[str]) -> None:
    spec = runner.profile["curve"]
    for subscribers in spec["points"]:
        for target in targets:
            runner.guarded(f"latency curve N={subscribers} {target}",
                           lambda: _point(runner, target, subscribers, spec))


def _point(runner, target: str, subscribers: int, spec: dict) -> None:
    with runner.server(target, tag=f"curve-N{subscribers}") as server:
        setups = sc.room_setups(server.proto, [server.url] * sc.SUB_AGENTS, server.url,
                                subscribers)
        with sc.Rounds(setups, server.cpu_seconds) as rounds:
            sc.room_round(rounds, sc.PUBLISHERS, FLOOR_RATE * 5, runner.deadline)  # warm-up
            runner.record("latency floor", f"N={subscribers}", target, [
                _paced(rounds, sc.PUBLISHERS, FLOOR_RATE, runner.deadline)
                for _ in range(runner.repeat)])
            for deliveries in spec["rates"]:
                rate = deliveries / subscribers
                count = max(sc.PUBLISHERS, round(rate * spec["seconds"]))
                runs = [_paced(rounds, count, rate, runner.deadline)
                        for _ in range(runner.repeat)]
                for run in runs:
                    run["offered_deliveries_per_s"] = deliveries
                runner.record("latency curve", f"N={subscribers}, {deliveries:,}/s", target,
                              runs)
                if not sustained(runs):
                    break


def _paced(rounds: sc.Rounds, count: int, rate: float, deadline: float) -> dict:
    run = sc.room_round(rounds, count, rate, deadline)
    run["sustained"] = (run["deliveries"] == run["expected"]
                        and run["publications_per_s"] >= SUSTAINED * rate)
    return run

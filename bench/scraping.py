"""A Prometheus stand-in for the metrics-cost scenario: a thread that GETs `/metrics`.

It scrapes every `every` seconds (much more often than Prometheus' usual 15 s, so that any
cost shows), in the benchmark's own process, never in a load-generator agent. It records
how long each scrape took and how large the body was, so the report can say what one scrape
costs besides what scraping does to the traffic.


`cpu_per_scrape` measures what one scrape costs the server by itself: back-to-back scrapes of
an idle server, its CPU seconds (from /proc) divided by their count.
"""

from __future__ import annotations

import threading
import time
import urllib.request


class Scraper:
    def __init__(self, url: str, every: float):
        self.url = f"{url}/metrics"
        self.every = every
        self.seconds: list[float] = []
        self.bytes = 0
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-scraper", daemon=True)

    def __enter__(self) -> "Scraper":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            try:
                self.scrape_once()
                self.seconds.append(time.perf_counter() - started)
            except OSError:
                self.failures += 1
            self._stop.wait(self.every)

    def scrape_once(self) -> None:
        with urllib.request.urlopen(self.url, timeout=5) as resp:
            self.bytes = len(resp.read())

    def figures(self) -> dict:
        ordered = sorted(self.seconds)
        return {"scrapes": len(ordered), "scrape_failures": self.failures,
                "scrape_p50_ms": ordered[len(ordered) // 2] * 1000 if ordered else 0.0,
                "scrape_bytes": self.bytes, "scrape_every": self.every}


def cpu_per_scrape(url: str, cpu_seconds, count: int = 200) -> float:
    """Server CPU seconds one `/metrics` scrape costs, from `count` scrapes in a row."""
    scraper = Scraper(url, 0)
    before = cpu_seconds()
    for _ in range(count):
        scraper.scrape_once()
    return (cpu_seconds() - before) / count

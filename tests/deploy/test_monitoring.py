"""The Prometheus alert rules and the Grafana dashboard in deploy/: they parse, every PromQL
expression parses (promql-parser, the Rust parser's Python binding), and every metric an
expression names is one a real node exports on /metrics. Each alert links to its section
of docs/operations.md, which says what it means and what to do."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import aiohttp
import promql_parser
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import free_port

ROOT = Path(__file__).parents[2]
ALERTS = ROOT / "deploy" / "prometheus" / "tidings-alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "tidings.json"
OPERATIONS = ROOT / "docs" / "operations.md"
SCRAPE_SERIES = {"up"}  # Prometheus's own, per target
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"),
            "gauge": ("",), "summary": ("", "_sum", "_count", "_created"), "untyped": ("",)}


def _rules() -> list[dict]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def _dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def _grafana_to_promql(expr: str) -> str:
    """What Grafana sends Prometheus: its range variable replaced by a duration."""
    return expr.replace("$__rate_interval", "5m").replace("$__interval", "1m")


def metric_names(expr: str) -> set[str]:
    names: set[str] = set()

    def visit(node) -> bool:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)
        return True

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


@pytest.fixture
async def exported(make_server) -> set[str]:
    """Every series name a node's /metrics can carry (families with no sample yet included)."""
    async with make_server() as server:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{server.url}/metrics") as resp:
                text = await resp.text()
    return {family.name + suffix for family in text_string_to_metric_families(text)
            for suffix in SUFFIXES[family.type]}


def _headings() -> set[str]:
    """GitHub's anchors of the headings of docs/operations.md."""
    anchors = set()
    for line in OPERATIONS.read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", title)))
    return anchors


def test_every_alert_rule_is_complete():
    rules = _rules()
    assert len(rules) >= 20
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names))
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert rule["labels"]["severity"] in ("critical", "warning", "info"), rule["alert"]
        assert {"summary", "description", "runbook_url"} <= set(rule["annotations"]), rule["alert"]
        if "for" in rule:
            promql_parser.parse_duration(rule["for"])


async def test_every_alert_expression_parses_and_names_exported_metrics(exported):
    for rule in _rules():
        unknown = metric_names(rule["expr"]) - exported - SCRAPE_SERIES
        assert not unknown, f"{rule['alert']} names metrics no node exports: {unknown}"


def test_every_alert_has_its_section_in_the_operations_doc():
    anchors, text = _headings(), OPERATIONS.read_text()
    for rule in _rules():
        url = rule["annotations"]["runbook_url"]
        assert url.startswith("docs/operations.md#"), url
        assert url.split("#", 1)[1] in anchors, f"{rule['alert']}: no heading for {url}"
        assert f"`{rule['alert']}`" in text, f"{rule['alert']} is not named in operations.md"


def test_an_unknown_metric_or_a_broken_expression_is_caught():
    assert metric_names('rate(tidings_nothing_total{code="1"}[5m]) / on() tidings_x') == {
        "tidings_nothing_total", "tidings_x"}
    with pytest.raises(ValueError):
        promql_parser.parse("rate(tidings_publish_seconds_bucket[5m]")


def _panels(dashboard: dict) -> list[dict]:
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def test_the_dashboard_is_a_grafana_dashboard_with_a_node_variable():
    dashboard = _dashboard()
    assert dashboard["uid"] and dashboard["schemaVersion"] >= 36
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"
    panels = _panels(dashboard)
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    for panel in panels:
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] != "row":
            assert panel["targets"], panel["title"]
            assert all('instance=~"$instance"' in t["expr"] or "cluster_nodes" in t["expr"]
                       for t in panel["targets"]), panel["title"]


async def test_every_dashboard_query_parses_and_names_exported_metrics(exported):
    dashboard = _dashboard()
    variable = next(v for v in dashboard["templating"]["list"] if v["name"] == "instance")
    queries = [variable["definition"].replace("label_values(", "").split(",")[0]]
    queries += [_grafana_to_promql(target["expr"]) for panel in _panels(dashboard)
                for target in panel.get("targets", [])]
    assert len(queries) > 30
    for query in queries:
        unknown = metric_names(query) - exported
        assert not unknown, f"{query} names metrics no node exports: {unknown}"


# ---- with Prometheus itself (Debian's, installed by scripts/test-tools.sh) -------------------

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
RULE_TESTS = Path(__file__).parent / "alert_rule_tests.yml"


def _tool(path: str) -> str:
    if not Path(path).exists():
        pytest.fail(f"{path} is missing: run scripts/test-tools.sh")
    return path


def test_promtool_accepts_the_rules():
    result = subprocess.run([_tool(PROMTOOL), "check", "rules", str(ALERTS)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in result.stdout


def test_alerts_fire_on_the_series_they_watch_and_not_before(tmp_path):
    """promtool's rule unit tests: synthetic series in, the alerts expected at given times."""
    tests = tmp_path / "tests.yml"
    tests.write_text(RULE_TESTS.read_text().replace("RULES", str(ALERTS)))
    result = subprocess.run([_tool(PROMTOOL), "test", "rules", str(tests)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@contextlib.contextmanager
def private_prometheus(tmp_path: Path, target_port: int):
    """A Prometheus of this test's own on a free port, scraping one node every second."""
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ALERTS)],
        "scrape_configs": [{"job_name": "tidings",
                            "static_configs": [{"targets": [f"127.0.0.1:{target_port}"]}]}],
    }))
    proc = subprocess.Popen(
        [_tool(PROMETHEUS), f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}",
         f"--storage.tsdb.path={tmp_path / 'data'}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _until(http, url: str, predicate, timeout: float = 30):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        with contextlib.suppress(aiohttp.ClientError):
            async with http.get(url) as resp:
                if resp.status == 200 and predicate(body := await resp.json()):
                    return body
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting on {url}")
        await asyncio.sleep(0.5)


async def test_prometheus_evaluates_every_rule_and_dashboard_query_on_a_real_node(
        tmp_path, make_server):
    async with make_server() as server:
        alice = await server.client("alice")
        await alice.call("subscribe", {"channel": "room:lobby"})
        for n in range(5):
            await alice.call("publish", {"channel": "room:lobby", "data": n})
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{server.url}/metrics") as resp:
                scraped = {sample.name for family in text_string_to_metric_families(
                    await resp.text()) for sample in family.samples}
        with private_prometheus(tmp_path, server.port) as prometheus:
            async with aiohttp.ClientSession() as http:
                # two scrapes at least, so rates have two points
                await _until(http, f"{prometheus}/api/v1/query?query=count_over_time("
                                   "up[1m])", lambda b: b["data"]["result"] and float(
                                       b["data"]["result"][0]["value"][1]) >= 3)
                rules = await _until(http, f"{prometheus}/api/v1/rules", lambda b: all(
                    rule.get("lastEvaluation", "").startswith("20")  # not 0001-01-01: never
                    for group in b["data"]["groups"] for rule in group["rules"]))
                for group in rules["data"]["groups"]:
                    for rule in group["rules"]:
                        assert rule["health"] == "ok", (rule["name"], rule.get("lastError"))
                        assert rule["state"] != "firing", rule["name"]  # a healthy node
                for query in _dashboard_queries():
                    async with http.get(f"{prometheus}/api/v1/query",
                                        params={"query": query}) as resp:
                        body = await resp.json()
                    assert body["status"] == "success", (query, body)
                    if metric_names(query) <= scraped:  # every series it reads exists
                        assert body["data"]["result"], f"{query} matches nothing"


def _dashboard_queries() -> list[str]:
    return [_grafana_to_promql(target["expr"]).replace("$instance", ".*")
            for panel in _panels(_dashboard()) for target in panel.get("targets", [])]

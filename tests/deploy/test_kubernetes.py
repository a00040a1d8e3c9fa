"""deploy/kubernetes/tidings.yaml parses, its settings load, its drain fits its grace period,
and its probes name paths a node serves."""

from __future__ import annotations

import tomllib
from pathlib import Path

import aiohttp
import yaml

from tidings.auth import check_exposure
from tidings.config import load_settings

MANIFEST = Path(__file__).parents[2] / "deploy" / "kubernetes" / "tidings.yaml"


def _documents() -> dict[str, dict]:
    return {doc["kind"]: doc for doc in yaml.safe_load_all(MANIFEST.read_text())}


def _container() -> dict:
    return _documents()["Deployment"]["spec"]["template"]["spec"]["containers"][0]


def _settings(tmp_path, monkeypatch):
    config = tmp_path / "tidings.toml"
    config.write_text(_documents()["ConfigMap"]["data"]["tidings.toml"])
    for var in _container()["env"]:  # what the pod's environment adds, secrets made up
        monkeypatch.setenv(var["name"], var.get("value") or f"from-{var['name'].lower()}")
    return load_settings(config)


def test_it_holds_a_configmap_a_deployment_and_a_service():
    assert set(_documents()) == {"ConfigMap", "Deployment", "Service"}


def test_the_configmap_and_environment_make_valid_public_settings(tmp_path, monkeypatch):
    settings = _settings(tmp_path, monkeypatch)
    check_exposure(settings)  # 0.0.0.0 with auth: accepted
    assert settings.host == "0.0.0.0" and settings.auth_enabled and settings.api_key
    assert settings.log_format == "json"


def test_the_grace_period_outlasts_prestop_plus_the_drain(tmp_path, monkeypatch):
    settings = _settings(tmp_path, monkeypatch)
    pod = _documents()["Deployment"]["spec"]["template"]["spec"]
    pre_stop = _container()["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod["terminationGracePeriodSeconds"] > pre_stop + settings.shutdown_grace


def test_service_and_probes_point_at_the_port_the_node_listens_on(tmp_path, monkeypatch):
    settings = _settings(tmp_path, monkeypatch)
    port = _container()["ports"][0]
    service = _documents()["Service"]["spec"]
    pod_labels = _documents()["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert port["containerPort"] == settings.port
    assert service["ports"][0]["targetPort"] == port["name"]
    assert service["selector"].items() <= pod_labels.items()
    for probe in ("readinessProbe", "livenessProbe"):
        assert _container()[probe]["httpGet"]["port"] == port["name"]


def _probe_paths() -> list[str]:
    return [_container()[p]["httpGet"]["path"] for p in ("readinessProbe", "livenessProbe")]


async def test_every_probe_path_answers_200_on_a_running_node(server):
    async with aiohttp.ClientSession() as http:
        for path in _probe_paths():
            async with http.get(server.url + path) as resp:
                assert resp.status == 200, path


def test_the_configmap_is_plain_toml():
    tomllib.loads(_documents()["ConfigMap"]["data"]["tidings.toml"])

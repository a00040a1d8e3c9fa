"""The `tidings` command: refuses what cannot work, serves, and drains on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request

import pytest

from tests.conftest import free_port, start_process


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    """Only the variables a test gives reach the command."""
    for name in list(os.environ):
        if name.startswith("TIDINGS_"):
            monkeypatch.delenv(name)


def _serve(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tidings", "serve", *args],
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=30)


def test_public_address_without_auth_exits_2_saying_auth_is_needed():
    result = _serve("--host", "0.0.0.0", TIDINGS_PORT=str(free_port()))
    assert result.returncode == 2
    assert "without auth" in result.stderr and "jwt_secret" in result.stderr


def test_public_address_from_the_environment_without_auth_exits_2():
    result = _serve(TIDINGS_HOST="0.0.0.0", TIDINGS_PORT=str(free_port()))
    assert result.returncode == 2 and "without auth" in result.stderr


def test_bad_setting_exits_2_naming_it():
    result = _serve(TIDINGS_PORT="abc")
    assert result.returncode == 2
    assert "port" in result.stderr and result.stderr.startswith("tidings: ")


def test_unknown_store_scheme_exits_2():
    result = _serve(TIDINGS_PORT=str(free_port()), TIDINGS_STORE="mongodb://x")
    assert result.returncode == 2
    assert "unknown store URL scheme" in result.stderr


def test_unknown_broker_scheme_exits_2(tmp_path):
    result = _serve(TIDINGS_PORT=str(free_port()), TIDINGS_BROKER="kafka2://x",
                    TIDINGS_STORE=f"sqlite:///{tmp_path / 'b.db'}")
    assert result.returncode == 2
    assert "kafka2" in result.stderr


@pytest.mark.parametrize("broker", ["kafka://127.0.0.1:1", "redis://127.0.0.1:1/0",
                                    "redis+cluster://127.0.0.1:1"])
def test_unreachable_broker_at_start_exits_1_saying_so(tmp_path, broker):
    result = _serve(TIDINGS_PORT=str(free_port()), TIDINGS_BROKER=broker,
                    TIDINGS_STORE=f"sqlite:///{tmp_path / 'b.db'}")
    assert result.returncode == 1
    assert "tidings: " in result.stderr and "127.0.0.1:1" in result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_mysql_store_at_start_exits_1_saying_so():
    result = _serve(TIDINGS_PORT=str(free_port()), TIDINGS_STORE="mysql://root@127.0.0.1:1/t")
    assert result.returncode == 1
    assert "tidings: mysql: database unreachable" in result.stderr


def test_missing_config_file_exits_2_naming_it(tmp_path):
    result = _serve("--config", str(tmp_path / "absent.toml"))
    assert result.returncode == 2
    assert "absent.toml" in result.stderr


def test_bad_value_in_the_config_file_exits_2_naming_it(tmp_path):
    config = tmp_path / "tidings.toml"
    config.write_text("[namespaces.room]\npublish = 'everybody'\n")
    result = _serve("--config", str(config))
    assert result.returncode == 2
    assert "namespaces.room.publish" in result.stderr


def test_serves_health_and_exits_0_on_sigterm(tmp_path):
    port = free_port()
    proc = start_process({"TIDINGS_PORT": str(port), "TIDINGS_NODE_NAME": "cli-node",
                          "TIDINGS_STORE": f"sqlite:///{tmp_path / 'cli.db'}"})
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as resp:
            assert resp.status == 200
            body = json.loads(resp.read())
        assert body["status"] == "ok" and body["node"] == "cli-node"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        assert b"INSECURE MODE" in proc.stdout.read()  # no auth on loopback: said loudly
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serves_from_a_config_file_with_the_environment_overriding_it(tmp_path):
    port = free_port()
    config = tmp_path / "tidings.toml"
    config.write_text(f'node_name = "from-file"\nport = 1\nstore = "sqlite:///{tmp_path / "f.db"}"\n')
    proc = start_process({"TIDINGS_PORT": str(port)}, "--config", str(config))
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as resp:
            assert json.loads(resp.read())["node"] == "from-file"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

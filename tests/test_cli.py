"""The `tidings` command: refuses what cannot work, serves, and drains on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request

from tests.conftest import free_port, start_process


def _serve(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tidings", "serve", *args],
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=30)


def test_public_address_without_auth_refuses_to_start():
    result = _serve("--host", "0.0.0.0", TIDINGS_PORT=str(free_port()))
    assert result.returncode == 2
    assert "without auth" in result.stderr


def test_bad_setting_exits_2_naming_it():
    result = _serve(TIDINGS_PORT="abc")
    assert result.returncode == 2
    assert "port" in result.stderr


def test_unknown_store_scheme_exits_2():
    result = _serve(TIDINGS_PORT=str(free_port()), TIDINGS_STORE="mongodb://x")
    assert result.returncode == 2
    assert "unknown store URL scheme" in result.stderr


def test_serves_health_and_exits_0_on_sigterm(tmp_path):
    port = free_port()
    proc = start_process({"TIDINGS_PORT": str(port),
                          "TIDINGS_STORE": f"sqlite:///{tmp_path / 'cli.db'}"})
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as resp:
            assert resp.status == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        assert b"INSECURE MODE" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()

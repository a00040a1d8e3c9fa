"""`tidings genconfig`: a file `check` and `serve` accept as is, with fresh secrets, 0600."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import stat
import urllib.request

from tests.conftest import free_port, start_process
from tidings.config import Settings, load_settings


async def test_writes_a_0600_file_with_auth_on_and_fresh_secrets(tidings, tmp_path):
    first, second = tmp_path / "a.toml", tmp_path / "b.toml"
    assert (await tidings("genconfig", "-o", str(first))).returncode == 0
    assert (await tidings("genconfig", "-o", str(second))).returncode == 0
    assert stat.S_IMODE(first.stat().st_mode) == 0o600
    a, b = load_settings(first), load_settings(second)
    assert a.auth_enabled and a.api_key and len(a.jwt_secret) >= 32
    assert a.jwt_secret != b.jwt_secret and a.api_key != b.api_key
    assert a.log_format == "text"


async def test_every_setting_it_names_even_commented_out_is_a_real_one(tidings, tmp_path):
    text = (await tidings("genconfig")).stdout
    named = set(re.findall(r"^#?\s*([a-z_]+)\s*=", text, re.M))
    top_level = named - {"history_size", "history_ttl", "publish"}  # namespace options
    assert top_level <= set(Settings.model_fields), top_level - set(Settings.model_fields)
    assert {"host", "port", "store", "broker", "jwt_secret", "api_key", "log_format"} <= top_level


async def test_refuses_to_overwrite_without_force(tidings, tmp_path):
    path = tmp_path / "t.toml"
    path.write_text("# mine\n")
    refused = await tidings("genconfig", "-o", str(path))
    assert refused.returncode == 2 and "--force" in refused.stderr
    assert path.read_text() == "# mine\n"
    assert (await tidings("genconfig", "-o", str(path), "--force")).returncode == 0
    assert "jwt_secret" in path.read_text()


async def test_check_and_serve_accept_the_file_as_is(tidings, tmp_path):
    path, port = tmp_path / "t.toml", free_port()
    written = await tidings("genconfig", "-o", str(path), "--port", str(port),
                            "--store", f"sqlite:///{tmp_path / 'gen.db'}")
    assert written.returncode == 0
    checked = await tidings("check", "--config", str(path))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "note:" not in checked.stdout  # auth and an API key: nothing to warn about
    loop = asyncio.get_running_loop()
    proc = await loop.run_in_executor(None, start_process, {"TIDINGS_PORT": str(port)},
                                      "--config", str(path))
    try:
        key = load_settings(path).api_key
        info = await tidings("info", "--json", env={"TIDINGS_URL": f"http://127.0.0.1:{port}",
                                                    "TIDINGS_API_KEY": key})
        assert info.returncode == 0, info.stderr
        assert json.loads(info.stdout)["nodes"][0]["address"] == f"127.0.0.1:{port}"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as resp:
            assert resp.status == 200
        proc.send_signal(signal.SIGTERM)
        assert await loop.run_in_executor(None, proc.wait, 15) == 0
        assert b"INSECURE" not in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def test_the_admin_console_is_off_until_its_generated_token_is_uncommented(tidings, tmp_path):
    path = tmp_path / "t.toml"
    assert (await tidings("genconfig", "-o", str(path))).returncode == 0
    assert load_settings(path).admin_token is None
    text = path.read_text()
    path.write_text(text.replace("# admin_token = ", "admin_token = "))
    enabled = load_settings(path)
    assert len(enabled.admin_token) >= 32
    assert enabled.admin_token not in (enabled.api_key, enabled.jwt_secret)

"""`tidings check`: exit 0 when everything answers, 2 for a wrong configuration, 3 when a
service cannot be reached; plain words, passwords masked."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from tests.conftest import free_port
from tidings.commands import check


async def test_a_valid_sqlite_configuration_is_fine(tidings, tmp_path):
    config = tmp_path / "t.toml"
    config.write_text(f'store = "sqlite:///{tmp_path / "c.db"}"\n')
    result = await tidings("check", "--config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "configuration: valid" in result.stdout
    assert "store sqlite:" in result.stdout and "answers" in result.stdout
    assert "broker memory://: in-process" in result.stdout
    assert "note: no JWT auth" in result.stdout and "note: no api_key" in result.stdout


@pytest.mark.services
async def test_real_postgresql_and_redis_are_reached(tidings, tmp_path):
    tag = f"chk{uuid.uuid4().hex[:8]}"
    env = {"TIDINGS_STORE": f"postgresql://postgres@127.0.0.1:5432/test?schema={tag}",
           "TIDINGS_BROKER": f"redis://127.0.0.1:6379/0?prefix={tag}"}
    try:
        result = await tidings("check", env=env)
    finally:
        conn = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/test")
        await conn.execute(f'DROP SCHEMA IF EXISTS "{tag}" CASCADE')
        await conn.close()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "store postgresql://" in result.stdout and "history epoch" in result.stdout
    assert "broker redis://" in result.stdout and "live node(s)" in result.stdout


async def test_unreachable_services_exit_3_naming_each_with_the_password_masked(tidings, tmp_path):
    dead_pg, dead_redis = free_port(), free_port()
    env = {"TIDINGS_STORE": f"postgresql://tidings:pg-pass-42@127.0.0.1:{dead_pg}/db",
           "TIDINGS_BROKER": f"redis://:redis-pass-42@127.0.0.1:{dead_redis}/0"}
    result = await tidings("check", "--timeout", "3", env=env)
    assert result.returncode == 3
    lines = result.stdout.splitlines()
    assert any(line.startswith("store postgresql://tidings:***@") and "cannot reach" in line
               for line in lines)
    assert any(line.startswith("broker redis://:***@") and "cannot reach" in line
               for line in lines)
    assert "pass-42" not in result.stdout + result.stderr


@pytest.mark.parametrize(("env", "says"), [
    ({"TIDINGS_PORT": "abc"}, "port"),
    ({"TIDINGS_HOST": "0.0.0.0"}, "without auth"),
    ({"TIDINGS_STORE": "oracle://x"}, "unknown store URL scheme"),
    ({"TIDINGS_STORE": "mysql://x"}, "the URL must name a database"),
    ({"TIDINGS_BROKER": "kafka9://x"}, "unknown broker URL scheme"),
    ({"TIDINGS_JWT_PUBLIC_KEY": "/nonexistent/jwt.pem"}, "jwt_public_key"),
    ({"TIDINGS_LOG_FORMAT": "xml"}, "log_format"),
], ids=["bad-value", "public-without-auth", "store-scheme", "store-url", "broker-scheme", "key-file",
       "log-format"])
async def test_a_wrong_configuration_exits_2_saying_what(tidings, env, says):
    result = await tidings("check", env=env)
    assert result.returncode == 2
    assert result.stderr.startswith("configuration: ") and says in result.stderr


async def test_a_missing_file_exits_2(tidings, tmp_path):
    result = await tidings("check", "--config", str(tmp_path / "absent.toml"))
    assert result.returncode == 2 and "absent.toml" in result.stderr


def test_every_kind_of_service_is_one_entry():
    assert [service.__name__ for service in check.SERVICES] == ["_store_probes", "_broker_probes"]


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql://u:secret@h:5432/db?schema=s", "postgresql://u:***@h:5432/db?schema=s"),
    ("redis://:secret@h/0", "redis://:***@h/0"),
    ("amqp://guest:guest@127.0.0.1:5672/", "amqp://guest:***@127.0.0.1:5672/"),
    ("nats://h:4222", "nats://h:4222"),
])
def test_masked_hides_only_the_password(url, shown):
    assert check.masked(url) == shown

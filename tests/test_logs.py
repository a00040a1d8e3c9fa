"""Structured logs: each format's shape, the node on every line, the session on every line
about one, and no secret of a real node's traffic on any line."""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import signal
import time

import jwt
import websockets

from tests.conftest import free_port, start_process
from tidings.logs import (
    ContextFilter, JsonFormatter, KeyValueFormatter, TextFormatter, bind_session, session_fields,
)


class FakeIdentity:  # a session as the log sees it: two attributes
    def __init__(self, client: str, user: str):
        self.client, self.user = client, user


def _record(message: str, *args, **extra) -> logging.LogRecord:
    record = logging.LogRecord("tidings.test", logging.INFO, __file__, 1, message, args, None)
    for name, value in extra.items():
        setattr(record, name, value)
    return record


def _format(formatter: logging.Formatter, record: logging.LogRecord, node: str = "n1") -> str:
    ContextFilter(node).filter(record)
    return formatter.format(record)


def test_json_line_names_node_session_and_message():
    def inside_a_session() -> str:
        bind_session(FakeIdentity("c-1", "alice"))
        return _format(JsonFormatter(), _record("subscribed to %s", "room:lobby"))

    line = json.loads(contextvars.copy_context().run(inside_a_session))
    assert line["node"] == "n1" and line["client"] == "c-1" and line["user"] == "alice"
    assert line["msg"] == "subscribed to room:lobby" and line["level"] == "info"
    assert line["logger"] == "tidings.test" and line["time"].endswith("Z")


def test_a_line_outside_any_session_has_no_session_fields():
    line = json.loads(contextvars.copy_context().run(
        lambda: _format(JsonFormatter(), _record("listening"))))
    assert "client" not in line and "user" not in line and line["node"] == "n1"


def test_a_line_naming_a_session_wins_over_the_bound_one():
    def elsewhere() -> str:
        bind_session(FakeIdentity("c-api", ""))
        named = session_fields(FakeIdentity("c-2", "bob"))["extra"]
        return _format(JsonFormatter(), _record("closing", **named))

    line = json.loads(contextvars.copy_context().run(elsewhere))
    assert (line["client"], line["user"]) == ("c-2", "bob")


def test_key_value_line_quotes_what_needs_quoting():
    line = contextvars.copy_context().run(
        lambda: _format(KeyValueFormatter(), _record('said "hi" = %s', "a\nb")))
    assert "node=n1 " in line and "level=info" in line
    assert 'msg="said \\"hi\\" = a\\nb"' in line


def test_exceptions_are_one_field_of_one_line():
    try:
        raise ValueError("boom")
    except ValueError:
        import sys
        record = _record("failed")
        record.exc_info = sys.exc_info()
    line = json.loads(contextvars.copy_context().run(lambda: _format(JsonFormatter(), record)))
    assert "ValueError: boom" in line["exc"] and "\n" not in json.dumps(line)


def test_only_whitelisted_fields_reach_a_line():
    line = json.loads(contextvars.copy_context().run(lambda: _format(
        JsonFormatter(), _record("request", headers={"Authorization": "apikey s3cret"}))))
    assert "s3cret" not in json.dumps(line) and set(line) <= {
        "time", "level", "logger", "node", "client", "user", "msg", "exc"}


def test_text_line_names_node_and_session():
    def inside() -> str:
        bind_session(FakeIdentity("c-3", "carol"))
        return _format(TextFormatter(), _record("connected"))

    line = contextvars.copy_context().run(inside)
    assert "node=n1 client=c-3 user=carol: connected" in line


async def test_a_real_node_logs_json_lines_naming_sessions_and_never_its_secrets(tmp_path):
    secret, key = "jwt-secret-that-must-never-be-logged-0123", "api-key-that-must-never-be-logged"
    port = free_port()
    env = {"TIDINGS_PORT": str(port), "TIDINGS_NODE_NAME": "logged", "TIDINGS_LOG_FORMAT": "json",
           "TIDINGS_STORE": f"sqlite:///{tmp_path / 'log.db'}", "TIDINGS_JWT_SECRET": secret,
           "TIDINGS_API_KEY": key, "TIDINGS_SHUTDOWN_GRACE": "1"}
    loop = asyncio.get_running_loop()
    proc = await loop.run_in_executor(None, start_process, env, "--log-level", "debug")
    token = jwt.encode({"sub": "erin", "exp": int(time.time()) + 60}, secret)
    try:
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws") as ws:
            await ws.send(json.dumps({"id": 1, "connect": {"token": token}}))
            client = json.loads(await ws.recv())["connect"]["client"]
            await ws.send(json.dumps({"id": 2, "subscribe": {"channel": "room:logs"}}))
            await ws.recv()
            proc.send_signal(signal.SIGTERM)  # the drain closes the session from another task
            await asyncio.wait_for(ws.wait_closed(), 10)
        await loop.run_in_executor(None, proc.wait, 15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = proc.stdout.read().decode()
    lines = [json.loads(line) for line in output.splitlines() if line.strip()]
    assert lines and all(line["node"] == "logged" for line in lines)
    about_session = [line for line in lines if line.get("client") == client]
    assert any(line["msg"] == "connected" for line in about_session)
    assert any(line["msg"].startswith("closing with 4006") for line in about_session)
    assert all(line.get("user") == "erin" for line in about_session)
    assert secret not in output and key not in output and token not in output

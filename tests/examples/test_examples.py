"""The examples of docs/python-client.md run as written against a real node."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from tidings.client import ApiClient

EXAMPLES = Path(__file__).parents[2] / "examples"


async def _run(script: str, env: dict[str, str], *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, str(EXAMPLES / script), *args, env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)


async def test_publish_example_sends_reads_back_and_shows_a_refusal(server):
    proc = await _run("publish.py", {"TIDINGS_URL": server.url})
    out = (await asyncio.wait_for(proc.communicate(), 30))[0].decode()
    assert proc.returncode == 0, out
    assert "stored in user:bob at offset 1" in out
    assert "1 billing {'text': 'invoice ready'}" in out
    assert "refused: 107" in out


async def test_echo_bot_answers_in_the_room(server):
    bot = await _run("echo_bot.py", {"TIDINGS_WS_URL": server.ws_url}, "--answers", "1")
    try:
        line = await asyncio.wait_for(bot.stdout.readline(), 20)
        assert line.startswith(b"connected to ")
        async with ApiClient(server.url) as api:
            await api.publish("room:lobby", {"text": "!echo hello there"})
            await asyncio.wait_for(bot.wait(), 20)
            page = await api.history("room:lobby", reverse=True, limit=1)
    finally:
        if bot.returncode is None:
            bot.kill()
            await bot.wait()
    assert bot.returncode == 0
    newest = page.publications[0]
    assert newest.data == {"text": "hello there"} and newest.sender == "echo-bot"

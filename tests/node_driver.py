"""A real JavaScript client library in a Node process, driven line by line.

Each driver script in tests/js reads one JSON command per line on stdin (`{"op": ...}`) and
writes one JSON event per line on stdout; a subclass says what to do with the events.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

JS = Path(__file__).parent / "js"


class NodeDriver:
    script = ""  # the driver in tests/js

    def __init__(self, proc: asyncio.subprocess.Process):
        self.proc = proc
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, url: str, **config):
        proc = await asyncio.create_subprocess_exec(
            "node", str(JS / cls.script), json.dumps({"url": url, **config}),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=JS)
        return cls(proc)

    async def _read(self) -> None:
        while line := await self.proc.stdout.readline():
            self.received(json.loads(line))

    def received(self, event: dict) -> None:
        raise NotImplementedError

    async def do(self, op: str, **params) -> None:
        self.proc.stdin.write((json.dumps({"op": op, **params}) + "\n").encode())
        await self.proc.stdin.drain()

    async def stop(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ConnectionError):
                await self.do("exit")
            try:
                await asyncio.wait_for(self.proc.wait(), 5)
            except asyncio.TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        self.reader.cancel()

"""Running the `tidings` command's own `main` on a worker thread (it calls asyncio.run, and
the node under test often runs in the test's loop), with its output captured."""

from __future__ import annotations

import asyncio
import io
import os
import sys
from dataclasses import dataclass

import pytest

from tidings.cli import main


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def tidings(capsys, monkeypatch):
    """`await tidings("check", "--config", path, env={...})`: exit status and output."""
    async def run(*args: str, env: dict[str, str] | None = None,
                  stdin: str | None = None) -> Result:
        for name, value in (env or {}).items():
            monkeypatch.setenv(name, value)
        if stdin is not None:
            monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        capsys.readouterr()
        try:
            code = await asyncio.get_running_loop().run_in_executor(None, main, list(args))
        except SystemExit as exc:  # argparse refusing the arguments
            code = exc.code
        finally:
            for name in env or {}:
                monkeypatch.delenv(name)
        out, err = capsys.readouterr()
        return Result(code, out, err)
    return run


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in list(os.environ):
        if name.startswith("TIDINGS_"):
            monkeypatch.delenv(name)

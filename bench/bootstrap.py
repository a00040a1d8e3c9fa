"""Install what the benchmark needs under bench/.peers and re-run `python -m bench` there.

The suite must not depend on what happens to be in the project's venv, and must not change
it: the load generator (picows), the Python peers (python-socketio, websockets), plotting
(matplotlib) and the profiler (py-spy) live in their own venv, `bench/.peers/venv`, built
from `bench/requirements.txt` (PyPI only) and rebuilt when that file changes. The Node peer's
packages go to `bench/peers/node_modules` (npm only), pinned by the committed lockfile.
Tidings itself always runs from the project's venv, exactly as a user installs it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
VENV = BENCH / ".peers" / "venv"
PYTHON = VENV / "bin" / "python"
REQUIREMENTS = BENCH / "requirements.txt"
STAMP = VENV / "requirements.sha256"
PEERS = BENCH / "peers"


def _digest() -> str:
    return hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()


def ensure_venv() -> None:
    """Create or refresh bench/.peers/venv; a no-op when it matches requirements.txt."""
    if PYTHON.exists() and STAMP.exists() and STAMP.read_text() == _digest():
        return
    print("bench: installing the load generator and Python peers into bench/.peers/venv",
          file=sys.stderr, flush=True)
    if not PYTHON.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    done = subprocess.run([str(PYTHON), "-m", "pip", "install", "-q",
                           "--disable-pip-version-check", "-r", str(REQUIREMENTS)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit("bench: pip install -r bench/requirements.txt failed")
    STAMP.write_text(_digest())


def in_venv() -> bool:
    return Path(sys.prefix).resolve() == VENV.resolve()


def reexec(argv: list[str]) -> None:
    """Replace this process with `python -m bench ARGV` running in the bench venv."""
    ensure_venv()
    os.chdir(ROOT)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    os.execve(str(PYTHON), [str(PYTHON), "-m", "bench", *argv], env)


def install_node_peer() -> str | None:
    """`npm ci` for the Socket.IO peer; returns why it cannot run, or None when it can."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        return "node/npm not installed"
    if (PEERS / "node_modules" / "socket.io").is_dir():
        return None
    command = ["npm", "ci" if (PEERS / "package-lock.json").exists() else "install",
               "--silent", "--no-audit", "--no-fund"]
    done = subprocess.run(command, cwd=PEERS, capture_output=True, text=True)
    if done.returncode != 0:
        return f"npm failed: {(done.stderr or done.stdout).strip()[:300]}"
    return None


def tidings_command() -> list[str]:
    """How to start Tidings: the project's venv (BENCH_TIDINGS overrides, space-separated)."""
    if os.environ.get("BENCH_TIDINGS"):
        return os.environ["BENCH_TIDINGS"].split()
    for candidate in (ROOT / ".venv" / "bin" / "python",):
        if candidate.exists():
            return [str(candidate), "-m", "tidings"]
    found = shutil.which("tidings")
    if found:
        return [found]
    raise SystemExit("bench: no Tidings to run: create the project venv (scripts/install.sh) "
                     "or set BENCH_TIDINGS")


def versions() -> dict[str, str]:
    """Versions of what ran, for the results file."""
    from importlib import metadata

    out = {}
    for name in ("aiohttp", "uvloop", "orjson", "picows", "python-socketio", "websockets"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    command = tidings_command()
    if command[-2:] == ["-m", "tidings"]:
        probe = ("import importlib.metadata as m; print(' '.join(f'{n} {m.version(n)}' "
                 "for n in ('tidings', 'aiohttp', 'uvloop', 'orjson')))")
        try:
            out["tidings stack"] = subprocess.run([command[0], "-c", probe], capture_output=True,
                                                  text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            pass
    node = shutil.which("node")
    if node:
        out["node"] = subprocess.run([node, "--version"], capture_output=True,
                                     text=True).stdout.strip()
        lock = PEERS / "node_modules" / "socket.io" / "package.json"
        if lock.exists():
            import json

            out["socket.io"] = json.loads(lock.read_text())["version"]
    return out

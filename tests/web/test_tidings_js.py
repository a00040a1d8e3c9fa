"""tidings.js under Node's own test runner (tests/js/*.test.mjs), against real nodes.

The JavaScript tests start and stop their own `tidings serve` processes (server restarts,
JWT auth), so this wrapper only runs them and reports their output.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

JS = Path(__file__).parents[1] / "js"


def run_node_tests(name: str) -> None:
    if shutil.which("node") is None:
        pytest.fail("node is not installed: run scripts/test-clients.sh")
    result = subprocess.run(
        ["node", "--test", "--test-concurrency=1", "--test-reporter=spec", str(JS / name)],
        env={"TIDINGS_PYTHON": sys.executable, "PATH": "/usr/bin:/bin:/usr/local/bin"},
        capture_output=True, text=True, timeout=300, cwd=JS,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]


def test_tidings_js_client_against_a_real_node():
    run_node_tests("tidings.test.mjs")


def test_offline_queue_idempotency_key_is_deduplicated_by_the_node():
    run_node_tests("idempotency.test.mjs")

"""deploy/systemd/tidings@.service passes `systemd-analyze verify` without a warning."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).parents[2] / "deploy" / "systemd" / "tidings@.service"
INSTALLED_AT = "/opt/tidings/.venv/bin/tidings"
ANALYZE = shutil.which("systemd-analyze")

pytestmark = pytest.mark.skipif(ANALYZE is None,
                                reason="systemd-analyze missing: scripts/test-tools.sh installs it")


def _verify(tmp_path: Path, text: str) -> subprocess.CompletedProcess:
    # verify checks that ExecStart names an executable: point it at this checkout's command
    here = str(Path(sys.executable).with_name("tidings"))
    unit = tmp_path / "tidings@8001.service"
    unit.write_text(text.replace(INSTALLED_AT, here))
    return subprocess.run([ANALYZE, "verify", str(unit)], capture_output=True, text=True,
                          timeout=60)


def test_the_unit_verifies_clean(tmp_path):
    result = _verify(tmp_path, UNIT.read_text())
    assert result.returncode == 0 and result.stderr == "" and result.stdout == "", result.stderr


def test_a_broken_unit_would_be_reported(tmp_path):
    result = _verify(tmp_path, UNIT.read_text().replace("Type=exec", "Type=sometimes"))
    assert "Type" in result.stderr or "type" in result.stderr


def test_stop_timeout_outlasts_the_default_drain():
    from tidings.config import Settings

    text = UNIT.read_text()
    timeout = int(text.split("TimeoutStopSec=")[1].split()[0])
    assert timeout > Settings.model_fields["shutdown_grace"].default
    assert "RestartPreventExitStatus=2" in text  # a bad configuration is not retried forever

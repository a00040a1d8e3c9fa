#!/usr/bin/env bash
# Create .venv (Python 3.11+) and install Tidings into it; EXTRAS=test adds the test tools.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
  echo "install: Tidings needs Python 3.11 or newer ($python is $("$python" --version 2>&1))" >&2
  exit 1
}
[ -x .venv/bin/python ] || "$python" -m venv .venv
spec="."
[ -n "${EXTRAS:-}" ] && spec=".[${EXTRAS}]"
.venv/bin/python -m pip install -q --disable-pip-version-check -e "$spec"

#!/usr/bin/env bash
# Install Tidings and run one node on the embedded defaults (SQLite file, in-process broker)
# at http://127.0.0.1:8000. Extra arguments go to `tidings serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec .venv/bin/tidings serve "$@"

#!/usr/bin/env bash
# Install Tidings with its test tools and the real client libraries the tests drive (npm,
# tests/js), start the services if they are down (installing any that is missing), then run
# the whole test suite.
# Extra arguments go to pytest.
set -euo pipefail
trap 'echo "test: a setup step failed: $BASH_COMMAND" >&2' ERR
cd "$(dirname "$0")/.."
EXTRAS=test bash scripts/install.sh
bash scripts/test-clients.sh
bash scripts/test-tools.sh
bash scripts/services.sh
exec .venv/bin/python -m pytest "$@"

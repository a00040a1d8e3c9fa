#!/usr/bin/env bash
# Install Tidings with its test tools, start PostgreSQL, Redis, RabbitMQ and NATS if they
# are down (installing any that is missing), then run the whole test suite.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS=test bash scripts/install.sh
bash scripts/services.sh
exec .venv/bin/python -m pytest "$@"

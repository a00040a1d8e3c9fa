#!/usr/bin/env bash
# Install the system tools the deployment tests drive: Debian's nginx (run by the tests as a
# private instance on free ports, never as the system service), systemd-analyze, and
# Debian's Prometheus (promtool checks the alert rules; the tests run a private server on a
# free port, never the system service).
set -euo pipefail
missing=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

#!/usr/bin/env bash
# Install the JavaScript clients the test suite drives (tests/js: stompjs, sockjs-client,
# centrifuge, ws, playwright-core) from the committed lockfile, with the machine's Node.
# Installs Node and npm from Debian first if they are missing, and Debian's Chromium (the
# browser the page's tests drive; browser downloads are not used). Skips npm when the
# lockfile has not changed since the last install.
set -euo pipefail
cd "$(dirname "$0")/../tests/js"
if ! command -v npm >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi
# Debian's Chromium for the browser tests, and a CJK font so the Chinese UI's screenshots
# show its text rather than empty boxes.
if [ ! -x /usr/bin/chromium ] || [ ! -d /usr/share/fonts/truetype/wqy ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-wqy-microhei >/dev/null
fi
stamp=node_modules/.tidings-lock
if [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json "$stamp"
fi

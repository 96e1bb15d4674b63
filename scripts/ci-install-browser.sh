#!/usr/bin/env bash
# Install Debian's Chromium for the browser tests (tests/test_web.py), only if it is missing.
# Playwright's own browser download cannot work here; apt's package can.
# Idempotent and quiet: a machine that already has /usr/bin/chromium is left alone at once.
# Recommends (printer tools, notification daemons...) are skipped; the fonts the page and
# docs/screenshot.png are drawn in are named explicitly.
set -euo pipefail

if [[ -x /usr/bin/chromium ]]; then
    exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then
    SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
echo "installing chromium for the browser tests (apt-get)..."
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core fonts-liberation >/dev/null
/usr/bin/chromium --version 2>/dev/null | grep -i chromium

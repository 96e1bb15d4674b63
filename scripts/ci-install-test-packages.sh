#!/usr/bin/env bash
# Debian packages the test suite needs that a fresh CI machine lacks, installed only if missing:
# - chromium, with the fonts the page and docs/screenshot.png are drawn in, for the browser tests
#   (tests/test_web.py; Playwright's own browser download cannot work here, apt's package can);
# - nginx-light, the reverse proxy in front of two replicas (tests/test_replicas.py);
# - curl, one of the clients that must read a shed answer (tests/test_admission.py).
# Idempotent and quiet: one apt-get update, and nothing at all when all are present.
set -euo pipefail

missing=()
[[ -x /usr/bin/chromium ]] || missing+=(chromium fonts-dejavu-core fonts-liberation)
command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || missing+=(nginx-light)
command -v curl >/dev/null 2>&1 || missing+=(curl)
if [[ ${#missing[@]} -eq 0 ]]; then
    exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
echo "installing for the tests (apt-get): ${missing[*]}"
$SUDO apt-get update -qq
# Recommends (printer tools, notification daemons...) are not needed by headless tests.
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

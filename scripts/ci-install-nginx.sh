#!/usr/bin/env bash
# Install Debian's nginx for the replicas test (tests/test_replicas.py), only if it is missing.
# The test puts a real round-robin reverse proxy in front of two uvicorn servers; with CI=true
# a missing nginx fails that test instead of skipping it, so CI runs this first.
# Idempotent and quiet: a machine that already has nginx on its PATH is left alone at once.
# nginx-light is enough: the test uses only the core proxy and upstream modules, and runs its
# own nginx on a temporary config and port, never the system's.
set -euo pipefail

if command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]]; then
    exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then
    SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
echo "installing nginx for the replicas test (apt-get)..."
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends nginx-light >/dev/null
/usr/sbin/nginx -v

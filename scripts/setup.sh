#!/usr/bin/env bash
# One-time (and idempotent) set-up for the README's commands on a Debian host:
# Docker Engine + local registry (scripts/start-services.sh) and a .venv with nox.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/start-services.sh
if [ ! -x .venv/bin/nox ]; then
    python3 -m venv .venv
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q nox
fi
echo "ready: .venv/bin/nox $(.venv/bin/nox --version 2>&1)"

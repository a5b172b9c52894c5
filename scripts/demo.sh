#!/usr/bin/env bash
# The README's first command: installs what Passthru needs, builds it, and shows it working on this host.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/publish.sh
bin=artifacts/bin/passthru
step() { printf '\n\033[1m$ passthru %s\033[0m\n' "$*"; "$bin" "$@" || true; }
step check
step list
step list --groups

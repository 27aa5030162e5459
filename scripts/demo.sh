#!/usr/bin/env bash
# The gateway on the built-in DashScope emulator (no key, no network): Node 24, the locked dependencies, npm run demo.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/node24.sh
. scripts/node24.sh
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
exec npm run demo

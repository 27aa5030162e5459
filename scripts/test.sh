#!/usr/bin/env bash
# The whole test suite on a fresh machine: Node 24, nginx (the topology test runs docker/nginx.conf), the locked
# dependencies, then typecheck + lint + every vitest file. .ci/run calls this script.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/node24.sh
. scripts/node24.sh
if ! command -v nginx >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && (apt-get install -y -qq nginx-light || apt-get install -y -qq nginx)
  else
    echo "nginx is not installed and this is not root: the topology test will be skipped (fatal under CI=true)" >&2
  fi
fi
npm ci --no-audit --no-fund
npm test

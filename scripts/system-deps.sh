#!/usr/bin/env bash
# Install the Debian packages that `make test` (and, with the argument "bench", `make bench`) needs, when they are
# missing: PostgreSQL server binaries; redis-server for the Redis stores' tests; Chromium for the browser test (Playwright drives Debian's /usr/bin/chromium
# and never downloads a browser); wrk for the benchmarks.
# Debian's packages, installed with apt-get (root is needed only when something is missing).
set -euo pipefail

missing=()
compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || missing+=(postgresql-15)
command -v redis-server >/dev/null || [ -x /usr/bin/redis-server ] || missing+=(redis-server)
if [ "${1:-test}" = bench ]; then
  command -v wrk >/dev/null || missing+=(wrk)
else
  [ -x /usr/bin/chromium ] || missing+=(chromium fonts-dejavu-core)
  # Node.js: axe-core for the browser tests (tests/browser) and the real OpenID provider of the OAuth tests
  # (tests/oidc_provider); each harness runs `npm ci`.
  { command -v node && command -v npm; } >/dev/null || missing+=(nodejs npm)
  # The README's curl session (tests/test_readme_curl.py).
  command -v curl >/dev/null || missing+=(curl)
  command -v jq >/dev/null || missing+=(jq)
fi

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "system-deps: installing ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "system-deps: need root to install ${missing[*]} (run: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

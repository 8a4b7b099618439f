#!/usr/bin/env bash
# Set up everything commission-ledger needs on a fresh Debian machine:
# a virtualenv with the package and its dev extras, and the Debian packages the
# integration tests start (PostgreSQL server, kcat, Chromium + ChromeDriver for
# the payout-page test). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
# --test: also the servers and clients the test suite starts (PostgreSQL, kcat,
# Chromium + ChromeDriver, KafkaJS). Without it: only what `demo` and the CLI need.
with_tests=0
[ "${1:-}" = "--test" ] && with_tests=1

need_apt=()
if [ "$with_tests" = 1 ]; then
command -v kcat >/dev/null 2>&1 || need_apt+=(kcat)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)
fi
if [ "${#need_apt[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  echo "installing Debian packages: ${need_apt[*]}"
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[dev]"
# The hot path (decoder, engine) compiled with mypyc in place, from the same
# sources (scripts/compile.py lists the modules). LEDGER_NO_COMPILE=1 keeps the
# interpreted build (same results, slower); otherwise a failed build fails the install.
if [ "${LEDGER_NO_COMPILE:-}" = 1 ]; then
  .venv/bin/python scripts/compile.py --clean
  echo "warning: LEDGER_NO_COMPILE=1: the interpreted build (the same results; the engine ~17% slower per event)" >&2
elif ! .venv/bin/python scripts/compile.py > .venv/compile.log 2>&1; then
  tail -40 .venv/compile.log >&2
  echo "error: compiling the hot path with mypyc failed (log: .venv/compile.log); LEDGER_NO_COMPILE=1 installs the interpreted build" >&2
  exit 1
else
  tail -1 .venv/compile.log
fi
# KafkaJS, a Kafka client nobody here wrote, for the interop test.
if [ "$with_tests" = 1 ] && command -v npm >/dev/null 2>&1; then
  (cd tests/interop && npm install --no-audit --no-fund --silent >/dev/null 2>&1) || echo "note: npm install of KafkaJS failed; its interop test will be skipped"
fi
echo "ready: .venv/bin/commission-ledger"

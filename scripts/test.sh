#!/usr/bin/env bash
# Install the test dependencies and run the whole suite. pytest's exit code is the script's:
# "no tests collected" (5) is a failure like any other.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh "test,local,voice-gpl"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
# Browser tests (tests/browser) use Debian's Chromium and its driver; never a browser download.
# The session-store tests run a real Redis (tests/test_session_store.py starts Debian's redis-server on a
# free loopback port, never the system service).
if ! { command -v chromium && command -v chromedriver && command -v redis-server; } >/dev/null; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver redis-server
fi
exec .venv/bin/python -m pytest -q -W ignore::DeprecationWarning "$@"

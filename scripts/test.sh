#!/usr/bin/env bash
# Install the test dependencies and run the whole suite. pytest's exit code is the script's:
# "no tests collected" (5) is a failure like any other.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh "test,local,voice-gpl"
.venv/bin/ruff check .
# Browser tests (tests/browser) use Debian's Chromium and its driver; never a browser download.
command -v chromium >/dev/null && command -v chromedriver >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; }
exec .venv/bin/python -m pytest -q -W ignore::DeprecationWarning "$@"

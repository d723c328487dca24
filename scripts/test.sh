#!/usr/bin/env bash
# Install the test dependencies and run the whole suite. pytest's exit code is the script's:
# "no tests collected" (5) is a failure like any other.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh "test,local,voice-gpl"
.venv/bin/ruff check .
exec .venv/bin/python -m pytest -q -W ignore::DeprecationWarning "$@"

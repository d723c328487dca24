#!/usr/bin/env bash
# Create .venv (if needed) and install vani with the given extras. Used by up.sh and test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-local,voice-gpl}"
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[${extras}]"

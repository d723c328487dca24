#!/usr/bin/env bash
# Install everything and run vani with the embedded offline providers; prints the URL to open.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh "local,voice-gpl"
exec .venv/bin/vani up "$@"

#!/usr/bin/env bash
# Set up (once) and run the app on the shipped model: bash scripts/app.sh [streamlit options]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh requirements.txt
# Two glibc heap arenas, not up to 8 per core: Streamlit runs each session's script in a new thread,
# and every arena keeps what it once held, so the server's memory crept up session after session.
export MALLOC_ARENA_MAX="${MALLOC_ARENA_MAX:-2}"
exec .venv/bin/python -m streamlit run app.py "$@"

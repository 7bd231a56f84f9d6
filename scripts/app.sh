#!/usr/bin/env bash
# Set up (once) and run the app on the shipped model: bash scripts/app.sh [streamlit options]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh requirements.txt
exec .venv/bin/python -m streamlit run app.py "$@"

#!/usr/bin/env bash
# Set up (once) and run every check: lint, format, unit, end-to-end, AppTest and browser tests.
#   bash scripts/test.sh [pytest options]
# Runs on the committed fixture; tests/test_full_dataset.py also runs when the dataset is found
# ($PNEUMO_DATA, else data/chest_xray in the project).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh requirements-dev.txt
if [ ! -x /usr/bin/chromium ] && [ -z "${PLAYWRIGHT_CHROMIUM:-}" ]; then
  # No system Chromium: let Playwright fetch its own (needs network on a user's machine).
  .venv/bin/python -m playwright install chromium
fi
.venv/bin/ruff check .
.venv/bin/ruff format --check .
exec .venv/bin/python -m pytest "$@"

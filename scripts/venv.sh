# Sourced by app.sh, test.sh and pneumo (from the project folder): create .venv with Python >= 3.11
# and install a requirements file into it, once per version of that file.
PYTHON=${PYTHON:-python3}
"$PYTHON" - <<'PY' || { echo "Python 3.11+ is required (set PYTHON=/path/to/python3.11)" >&2; exit 1; }
import sys
sys.exit(0 if sys.version_info >= (3, 11) else 1)
PY
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
stamp_for() { echo ".venv/.installed-$(cat "$1" requirements.txt | sha1sum | cut -c1-12)"; }
if [ ! -f "$(stamp_for "$1")" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -r "$1"
  touch "$(stamp_for "$1")"
  # requirements-dev.txt includes requirements.txt: the app's set is installed too
  [ "$1" = requirements.txt ] || touch "$(stamp_for requirements.txt)"
fi

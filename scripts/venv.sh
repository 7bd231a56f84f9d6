# Sourced by app.sh and test.sh: create .venv with Python >= 3.11 and install a requirements file.
PYTHON=${PYTHON:-python3}
"$PYTHON" - <<'PY' || { echo "Python 3.11+ is required (set PYTHON=/path/to/python3.11)" >&2; exit 1; }
import sys
sys.exit(0 if sys.version_info >= (3, 11) else 1)
PY
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
stamp=".venv/.installed-$(cat "$1" requirements.txt | sha1sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -r "$1"
  touch "$stamp"
fi

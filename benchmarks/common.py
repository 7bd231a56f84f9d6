"""What the benchmark scripts share: where they look for the dataset unless told.

Benchmarks are run from the team's checkout, where the dataset sits beside the project (the
tests' default too, ``tests/conftest.py``); the app, ``train.py`` and the CLI default to
``pneumo_core.data.resolve_data_dir`` instead (``$PNEUMO_DATA`` or ``data/chest_xray``).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data" / "chest_xray"


def default_data_dir() -> Path:
    """``$PNEUMO_DATA`` if set, else ``../shared/data/chest_xray`` beside the project (from any working folder)."""
    return Path(os.environ.get("PNEUMO_DATA") or SHARED_DATA)


def add_data_argument(parser: argparse.ArgumentParser) -> None:
    """``--data DIR``, defaulting to :func:`default_data_dir`."""
    parser.add_argument(
        "--data",
        type=Path,
        default=default_data_dir(),
        help="dataset root with train/, val/ and test/ (default: $PNEUMO_DATA or ../shared/data/chest_xray)",
    )

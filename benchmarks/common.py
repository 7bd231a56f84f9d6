"""What the benchmark scripts share: the dataset argument, with the project's one default
(``pneumo_core.data.resolve_data_dir``: ``$PNEUMO_DATA``, else ``data/chest_xray`` in the project)."""

from __future__ import annotations

import argparse
from pathlib import Path

from pneumo_core.data import DATA_HELP, resolve_data_dir

ROOT = Path(__file__).resolve().parent.parent


def add_data_argument(parser: argparse.ArgumentParser) -> None:
    """``--data DIR``, defaulting to the project's dataset default."""
    parser.add_argument(
        "--data", type=Path, default=resolve_data_dir(), help=f"dataset root with train/, val/ and test/ ({DATA_HELP})"
    )

"""What the benchmark scripts share: the dataset argument, with the project's one default
(``pneumo_core.data.resolve_data_dir``: ``$PNEUMO_DATA``, else ``data/chest_xray`` in the project)."""

from __future__ import annotations

import argparse
import shutil
import subprocess
from pathlib import Path

from pneumo_core.data import DATA_HELP, resolve_data_dir

ROOT = Path(__file__).resolve().parent.parent


def add_data_argument(parser: argparse.ArgumentParser) -> None:
    """``--data DIR``, defaulting to the project's dataset default."""
    parser.add_argument(
        "--data", type=Path, default=resolve_data_dir(), help=f"dataset root with train/, val/ and test/ ({DATA_HELP})"
    )


def scratch_copy(destination: Path) -> None:
    """Copy the working tree as it is now (tracked files and untracked ones git does not ignore)
    into ``destination``, for benchmarks that edit code: the working tree itself is never touched."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, listed):
        source = ROOT / name.decode()
        if source.is_file():
            target = destination / name.decode()
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)

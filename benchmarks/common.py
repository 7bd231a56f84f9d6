"""What the benchmark scripts share: the dataset argument, with the project's one default
(``pneumo_core.data.resolve_data_dir``: ``$PNEUMO_DATA``, else ``data/chest_xray`` in the project)."""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

from pneumo_core.data import DATA_HELP, resolve_data_dir

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
"""Headless Chromium for the browser benchmarks."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (for a benchmark's own Streamlit server)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def add_data_argument(parser: argparse.ArgumentParser) -> None:
    """``--data DIR``, defaulting to the project's dataset default."""
    parser.add_argument(
        "--data", type=Path, default=resolve_data_dir(), help=f"dataset root with train/, val/ and test/ ({DATA_HELP})"
    )


def rewrite_metadata(folder: Path, metadata: dict[str, Any]) -> None:
    """Store a benchmark's figures: write ``metadata`` as the model folder's metadata and rewrite its
    card from it."""
    from pneumo_core import registry
    from pneumo_core.card import card_for

    (folder / registry.METADATA_FILE).write_text(json.dumps(metadata, indent=2))
    (folder / registry.CARD_FILE).write_text(card_for(metadata))


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

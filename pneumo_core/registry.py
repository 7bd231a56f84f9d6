"""The model registry: one folder per model under ``models/``, one of them the default.

A model folder holds ``model.keras``, ``metadata.json`` (contract, training config, data summary,
metrics, history, timing), ``test_predictions.csv`` and ``MODEL_CARD.md``. Folders are written
under a temporary name and renamed into place, so a reader never sees half a model.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ModelLoadError

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
DEFAULT_POINTER = "DEFAULT"
MODEL_FILE = "model.keras"
METADATA_FILE = "metadata.json"
PREDICTIONS_FILE = "test_predictions.csv"
CARD_FILE = "MODEL_CARD.md"
SHIPPED_DEFAULT = "pneumonia-cnn-v3"
"""The model committed with the project: the fallback when the configured default is unusable."""

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def models_dir() -> Path:
    return Path(os.environ.get("PNEUMO_MODELS", MODELS_DIR))


def check_name(name: str) -> str:
    """Reject names that are not a plain folder name (path traversal, hidden or temp folders)."""
    if not isinstance(name, str) or not _NAME.match(name) or name.startswith(".") or ".." in name:
        raise ValueError(f"invalid model name {name!r}: use letters, digits, '.', '_' and '-' only")
    return name


def model_path(name: str) -> Path:
    path = (models_dir() / check_name(name)).resolve()
    if path.parent != models_dir().resolve():
        raise ValueError(f"model name {name!r} escapes the models folder")
    return path


def resolve(model: str | os.PathLike | None = None) -> Path:
    """``None`` -> the default model; a registry name -> its folder; an existing folder path -> itself."""
    if model is None:
        return model_path(default_name())
    candidate = Path(model)
    if candidate.is_dir() and (candidate / METADATA_FILE).exists():
        return candidate
    return model_path(str(model))


def default_name() -> str:
    pointer = models_dir() / DEFAULT_POINTER
    try:
        name = pointer.read_text().strip()
        return check_name(name)
    except (OSError, ValueError):
        return SHIPPED_DEFAULT


def set_default(name: str) -> None:
    path = model_path(name)
    read_metadata(path)  # refuse to point the default at something unreadable
    _atomic_write_text(models_dir() / DEFAULT_POINTER, name + "\n")


def read_metadata(path: Path) -> dict[str, Any]:
    path = Path(path)
    meta_file = path / METADATA_FILE
    if not (path / MODEL_FILE).is_file():
        raise ModelLoadError(f"model folder {path} has no {MODEL_FILE}")
    try:
        metadata = json.loads(meta_file.read_text())
    except FileNotFoundError:
        raise ModelLoadError(f"model folder {path} has no {METADATA_FILE}") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{meta_file} is unreadable: {exc}") from None
    if not isinstance(metadata, dict) or "contract" not in metadata:
        raise ModelLoadError(f"{meta_file} has no model contract")
    return metadata


@dataclass
class ModelInfo:
    name: str
    path: Path
    metadata: dict[str, Any]
    is_default: bool


def list_models() -> list[ModelInfo]:
    """Readable models, default first then newest first; broken folders are skipped."""
    root = models_dir()
    default = default_name()
    found = []
    for path in sorted(root.iterdir()) if root.is_dir() else []:
        if not path.is_dir() or not _NAME.match(path.name):
            continue
        try:
            metadata = read_metadata(path)
        except ModelLoadError:
            continue
        found.append(ModelInfo(path.name, path, metadata, path.name == default))
    found.sort(key=lambda m: (not m.is_default, -_created(m)))
    return found


def model_names() -> list[str]:
    """The names ``list_models()`` gives, in its order, listed again only when the models folder,
    a model's metadata or the default changes. The app asks several times per rerun, and parsing
    every model's metadata each time was one of the largest items in a profile of its server."""
    return list(_names_for(_folder_state()))


def _folder_state() -> tuple:
    """What the listing depends on: each model folder's metadata file (time, size) and model file,
    and the default."""
    root = models_dir()
    entries = []
    for path in sorted(root.iterdir()) if root.is_dir() else []:
        if path.is_dir() and _NAME.match(path.name):
            with contextlib.suppress(OSError):
                stat = (path / METADATA_FILE).stat()
                entries.append((path.name, stat.st_mtime_ns, stat.st_size, (path / MODEL_FILE).is_file()))
    return str(root), default_name(), tuple(entries)


@functools.lru_cache(maxsize=4)
def _names_for(state: tuple) -> tuple[str, ...]:
    return tuple(info.name for info in list_models())


def _created(info: ModelInfo) -> float:
    return float(info.metadata.get("created_unix", 0.0))


def read_predictions(path: Path) -> list[dict[str, Any]]:
    """Per-image test predictions stored with a model: path, label (0/1), probability_pneumonia."""
    file = Path(path) / PREDICTIONS_FILE
    if not file.exists():
        return []
    with file.open(newline="") as handle:
        return [
            {
                "path": row["path"],
                "label": int(row["label"]),
                "probability_pneumonia": float(row["probability_pneumonia"]),
            }
            for row in csv.DictReader(handle)
        ]


def save_model_folder(
    folder: Path,
    writers: dict[str, Callable[[Path], None]],
    metadata: dict[str, Any],
    predictions: list[dict[str, Any]],
    card: str,
    before_commit: Callable[[], None] | None = None,
) -> Path:
    """Write a complete model folder atomically; an existing folder of that name is replaced.

    ``writers`` maps file names (``model.keras``, ``gate.npz``) to functions that write them.
    ``before_commit`` runs once everything is staged, before the folder takes its name; if it
    raises, the staged files are removed and the registry is unchanged (a late cancel).
    """
    final = Path(folder).resolve()
    name = final.name
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=final.parent))
    try:
        for file_name, write in writers.items():
            write(staging / file_name)
        (staging / METADATA_FILE).write_text(json.dumps(metadata, indent=2, default=_json_default))
        with (staging / PREDICTIONS_FILE).open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["path", "label", "probability_pneumonia"])
            writer.writeheader()
            writer.writerows(predictions)
        (staging / CARD_FILE).write_text(card)
        if before_commit is not None:
            before_commit()
        if final.exists():
            trash = final.parent / f".{name}.old"
            shutil.rmtree(trash, ignore_errors=True)
            os.replace(final, trash)
            os.replace(staging, final)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def _atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(handle, "w") as out:
        out.write(text)
    os.replace(tmp, path)

"""The Kaggle / Mendeley chest_xray layout: listing, patient ids, grouped splits, loading.

Layout: ``ROOT/{train,val,test}/{NORMAL,PNEUMONIA}/*`` at any image size.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from .config import TrainingConfig
from .contract import CLASS_NAMES, ModelContract
from .imaging import IMAGE_SUFFIXES, load_for_model

DATA_ENV_VAR = "PNEUMO_DATA"
DEFAULT_DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "chest_xray"
"""The one dataset default of the app, the CLI, ``train.py``, the tests and the benchmarks."""
DATA_HELP = f"--data, else ${DATA_ENV_VAR}, else data/chest_xray in the project folder"

_PATIENT_PATTERNS = (
    re.compile(r"^(person\d+)_", re.IGNORECASE),
    re.compile(r"^((?:NORMAL2-)?IM-\d+)", re.IGNORECASE),
)


def resolve_data_dir(explicit: str | os.PathLike | None = None) -> Path:
    """``--data`` if given, else ``$PNEUMO_DATA``, else ``data/chest_xray`` in the project folder
    (whatever the working folder)."""
    if explicit:
        return Path(explicit)
    return Path(os.environ.get(DATA_ENV_VAR) or DEFAULT_DATA_DIR)


def patient_id(filename: str) -> str:
    """``person123_bacteria_4.jpeg`` -> ``person123``; ``NORMAL2-IM-0012-0001.jpeg`` -> ``NORMAL2-IM-0012``.

    Unknown names fall back to the file stem, so such a file is its own group.
    """
    name = Path(filename).name
    for pattern in _PATIENT_PATTERNS:
        match = pattern.match(name)
        if match:
            return match.group(1)
    return Path(name).stem


@dataclass(frozen=True)
class Sample:
    path: Path
    label: int

    @property
    def patient_id(self) -> str:
        return patient_id(self.path.name)


def list_split(root: Path, split: str) -> list[Sample]:
    """All images of ``root/split/{NORMAL,PNEUMONIA}``, sorted for reproducibility."""
    samples = []
    for label, class_name in enumerate(CLASS_NAMES):
        folder = Path(root) / split / class_name if split else Path(root) / class_name
        if not folder.is_dir():
            raise FileNotFoundError(
                f"missing folder {folder} (expected the {{train,val,test}}/{{NORMAL,PNEUMONIA}} layout)"
            )
        samples += [Sample(p, label) for p in sorted(folder.rglob("*")) if p.suffix.lower() in IMAGE_SUFFIXES]
    return samples


def grouped_split(
    samples: Sequence[Sample], validation_fraction: float, seed: int
) -> tuple[list[Sample], list[Sample]]:
    """Stratified split with every patient's images on one side only."""
    n_folds = max(2, round(1 / validation_fraction))
    labels = np.array([s.label for s in samples])
    groups = np.array([s.patient_id for s in samples])
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    train_idx, val_idx = next(splitter.split(np.zeros(len(samples)), labels, groups))
    return [samples[i] for i in train_idx], [samples[i] for i in val_idx]


def training_split(root: Path, config: TrainingConfig) -> tuple[list[Sample], list[Sample]]:
    """The (fit, validation) samples a training configuration uses: the patient-grouped split of
    ``root/train``, then the stratified subsets when ``config.train_subset`` is set."""
    fit, val = grouped_split(list_split(root, "train"), config.validation_fraction, config.seed)
    if config.train_subset:
        fit = subsample(fit, config.train_subset, config.seed)
        val = subsample(val, max(64, config.train_subset // 4), config.seed)
    return fit, val


def subsample(samples: Sequence[Sample], n: int, seed: int) -> list[Sample]:
    """A stratified random subset of ``n`` samples (all of them if ``n`` >= len)."""
    if n >= len(samples):
        return list(samples)
    rng = np.random.default_rng(seed)
    labels = np.array([s.label for s in samples])
    chosen: list[int] = []
    for label in (0, 1):
        idx = np.flatnonzero(labels == label)
        take = max(1, round(n * len(idx) / len(samples)))
        chosen += rng.choice(idx, size=min(take, len(idx)), replace=False).tolist()
    return [samples[i] for i in sorted(chosen)]


def class_weights(labels: Sequence[int]) -> dict[int, float]:
    """Inverse-frequency weights that make both classes count equally in the loss."""
    counts = np.bincount(np.asarray(labels, dtype=int), minlength=2)
    if np.any(counts == 0):
        raise ValueError("only one class present; class weights need both NORMAL and PNEUMONIA")
    total = counts.sum()
    return {label: float(total / (2 * count)) for label, count in enumerate(counts)}


def load_arrays(
    samples: Sequence[Sample],
    contract: ModelContract,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Decode samples through the app's own preprocessing: ``(N, S, S, 1) float32``, ``(N,) int``."""
    images = np.empty((len(samples), contract.input_size, contract.input_size, 1), dtype=np.float32)

    def load(i: int) -> None:
        images[i, :, :, 0] = load_for_model(samples[i].path, contract)[0]

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        for done, _ in enumerate(pool.map(load, range(len(samples))), start=1):
            if progress and (done % 200 == 0 or done == len(samples)):
                progress(done, len(samples))
    labels = np.array([s.label for s in samples], dtype=np.int64)
    return images, labels


def summarize(samples: Sequence[Sample]) -> dict[str, int]:
    labels = [s.label for s in samples]
    return {
        "n": len(samples),
        "normal": int(labels.count(0)),
        "pneumonia": int(labels.count(1)),
        "patients": len({s.patient_id for s in samples}),
    }

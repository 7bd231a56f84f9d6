"""Original-size uploads reach the shipped model looking like its 224 px training copies."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmarks import full_resolution


def test_full_size_and_kaggle_style_copy_agree(shipped_classifier, data_root: Path) -> None:
    """The Kaggle copies were made with Pillow's default resize and re-saved as JPEG; an original
    and such a copy of it must get (nearly) the same probability and the same verdict (or, right at
    the threshold, both the 'borderline: review' flag)."""
    originals = sorted((data_root / "val").rglob("*.jpeg"))
    assert len(originals) == 16
    differences, same_label = [], []
    for path in originals:
        full = shipped_classifier.predict(path)
        copy = shipped_classifier.predict(full_resolution.kaggle_copy(path))
        differences.append(abs(full.probability_pneumonia - copy.probability_pneumonia))
        same_label.append(full.label == copy.label or full.band == copy.band == "borderline: review")
    assert np.mean(differences) < 0.03 and max(differences) < 0.1, differences
    assert all(same_label)

"""Shortcut-learning check: does the model look at the chest, or at text and markers near the borders?

Two measures on a labelled image set:
- the share of Grad-CAM mass that falls in the border band (outside the central chest region);
- the change in accuracy and AUC when that band of the model input is blacked out.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from .classifier import Classifier
from .errors import InputError
from .imaging import decode, frame, normalized

BORDER_FRACTION = 0.12
"""Width of the border band on each side, as a fraction of the image side."""


def border_mask(height: int, width: int, fraction: float = BORDER_FRACTION) -> np.ndarray:
    """Boolean H x W array, True in the border band."""
    mask = np.ones((height, width), bool)
    dy, dx = round(height * fraction), round(width * fraction)
    mask[dy : height - dy, dx : width - dx] = False
    return mask


def shortcut_check(classifier: Classifier, paths: Sequence[Path], labels: Sequence[int]) -> dict[str, Any]:
    """Grad-CAM border mass and masked-border accuracy/AUC change, over ``paths`` with ``labels``."""
    threshold = classifier.contract.operating_threshold
    border_shares, plain, masked, kept_labels = [], [], [], []
    for path, label in zip(paths, labels, strict=True):
        try:
            decoded = decode(path)
            analysis = classifier.analyze(decoded)
        except InputError:
            continue
        cam = analysis.heatmap
        total = float(cam.sum())
        mask = border_mask(*cam.shape)
        border_shares.append(float(cam[mask].sum()) / total if total > 0 else 0.0)
        # Mask the image's border band after normalization (so the centre is unchanged) and before
        # framing, and ask the model itself: the input gate would (rightly) refuse some masked images.
        model_input = normalized(decoded.pixels, classifier.contract)
        model_input[border_mask(*model_input.shape)] = 0.0
        model_input = frame(model_input, classifier.contract.frame_scale)
        masked.append(float(classifier.probabilities(model_input[None, :, :, None])[0]))
        plain.append(analysis.prediction.probability_pneumonia)
        kept_labels.append(label)
    y = np.array(kept_labels)
    plain_p, masked_p = np.array(plain), np.array(masked)
    area = float(border_mask(100, 100).mean())
    return {
        "n": int(y.size),
        "border_fraction": BORDER_FRACTION,
        "border_area_share": area,
        "gradcam_border_mass_mean": float(np.mean(border_shares)),
        "gradcam_border_mass_median": float(np.median(border_shares)),
        "accuracy_plain": float(np.mean((plain_p >= threshold) == y)),
        "accuracy_border_masked": float(np.mean((masked_p >= threshold) == y)),
        "auc_plain": float(roc_auc_score(y, plain_p)),
        "auc_border_masked": float(roc_auc_score(y, masked_p)),
    }

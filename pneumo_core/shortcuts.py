"""Shortcut-learning check: does the model look at the chest, or at text, markers and framing?

Three measures on a labelled image set:
- the share of Grad-CAM mass that falls in the border band (outside the central chest region);
- the change in accuracy and AUC when that band of the model input is blacked out;
- the change when the image is collimated tighter (its central part enlarged to fill the input):
  how much of the neck, arms and abdomen a radiograph shows says nothing about pneumonia, yet a
  model trained on this dataset can learn to read a tight field of view as pneumonia.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from .classifier import Classifier
from .errors import InputError
from .imaging import decode, frame, normalized, to_model_input

BORDER_FRACTION = 0.12
"""Width of the border band on each side, as a fraction of the image side."""

TIGHT_CROP = 0.15
"""Share of each side cut away to simulate tight collimation (the central 70% of the image kept)."""


def tightly_collimated(pixels: np.ndarray, fraction: float = TIGHT_CROP) -> np.ndarray:
    """The central part of an H x W image, ``fraction`` of each side cut away (at its own resolution)."""
    height, width = pixels.shape[:2]
    dy, dx = round(height * fraction), round(width * fraction)
    return pixels[dy : height - dy, dx : width - dx]


def border_mask(height: int, width: int, fraction: float = BORDER_FRACTION) -> np.ndarray:
    """Boolean H x W array, True in the border band."""
    mask = np.ones((height, width), bool)
    dy, dx = round(height * fraction), round(width * fraction)
    mask[dy : height - dy, dx : width - dx] = False
    return mask


def shortcut_check(classifier: Classifier, paths: Sequence[Path], labels: Sequence[int]) -> dict[str, Any]:
    """Grad-CAM border mass, and accuracy/AUC (and specificity for the crop) with the border band
    masked or the image collimated tighter, over ``paths`` with ``labels``."""
    threshold = classifier.contract.operating_threshold
    border_shares, plain, masked, cropped, kept_labels = [], [], [], [], []
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
        tight = to_model_input(tightly_collimated(decoded.pixels), classifier.contract)
        masked_probability, cropped_probability = classifier.probabilities(np.stack([model_input, tight])[..., None])
        masked.append(float(masked_probability))
        cropped.append(float(cropped_probability))
        plain.append(analysis.prediction.probability_pneumonia)
        kept_labels.append(label)
    y = np.array(kept_labels)
    plain_p, masked_p, cropped_p = np.array(plain), np.array(masked), np.array(cropped)
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
        "tight_crop_fraction": TIGHT_CROP,
        "accuracy_tight_crop": float(np.mean((cropped_p >= threshold) == y)),
        "auc_tight_crop": float(roc_auc_score(y, cropped_p)),
        "specificity_plain": float(np.mean(plain_p[y == 0] < threshold)),
        "specificity_tight_crop": float(np.mean(cropped_p[y == 0] < threshold)),
    }

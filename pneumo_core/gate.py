"""The input gate: is this a frontal chest radiograph the model may score?

Three layers of evidence, cheapest first:
1. DICOM header: modality and body part.
2. Image statistics: colour, flat or blank images, extreme aspect ratios.
3. Learned: Mahalanobis distance of the model's pooled features to the training images'
   distribution, with a cut-off set so a fixed share of *validation* radiographs pass.

Every rejection is an ``InputError("not_chest_xray", reason)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.covariance import LedoitWolf

from .errors import InputError
from .imaging import DecodedImage

GATE_FILE = "gate.npz"
RADIOGRAPH_MODALITIES = {"CR", "DX", "DR", "RG", "PX", "OT", "SC"}
"""Projection radiography and generic secondary-capture; CT, MR, US, NM, PT etc. are refused."""
CHEST_BODY_PARTS = {"CHEST", "THORAX", "LUNG", "LUNGS", "PORT CHEST", "TORSO", "BODY"}
MAX_COLORFULNESS = 12.0
"""Gray radiographs saved as RGB JPEG score < 3; photographs and screenshots typically > 20."""
MIN_CONTRAST_STD = 12.0
MAX_ASPECT = 2.2
VALIDATION_PASS_RATE = 0.995


def _reject(reason: str) -> InputError:
    return InputError("not_chest_xray", f"Not a chest X-ray: {reason}. Upload a frontal chest radiograph.")


def check_header_and_statistics(decoded: DecodedImage) -> None:
    """Rules that need no model. Raises ``InputError`` when the image is clearly not a chest X-ray."""
    facts = decoded.facts
    modality = str(facts.get("modality", "")).upper()
    if modality and modality not in RADIOGRAPH_MODALITIES:
        raise _reject(f"the DICOM modality is {modality}, not projection radiography (CR/DX)")
    body_part = str(facts.get("body_part", "")).upper()
    if body_part and body_part not in CHEST_BODY_PARTS:
        raise _reject(f"the DICOM body part is {body_part}")
    if decoded.colorfulness > MAX_COLORFULNESS:
        raise _reject("it is a colour image (radiographs are grayscale)")
    aspect = max(decoded.width, decoded.height) / max(1, min(decoded.width, decoded.height))
    if aspect > MAX_ASPECT:
        raise _reject(f"its aspect ratio is {aspect:.1f}:1, far from a chest film's")
    contrast = float(decoded.pixels.std())
    if contrast < MIN_CONTRAST_STD:
        raise _reject("the image is blank or nearly uniform")


@dataclass
class FeatureGate:
    """Mahalanobis distance to the training images in the model's pooled-feature space."""

    mean: np.ndarray
    precision: np.ndarray
    threshold: float

    @classmethod
    def fit(cls, train_embeddings: np.ndarray, validation_embeddings: np.ndarray) -> FeatureGate:
        estimator = LedoitWolf().fit(train_embeddings)
        gate = cls(estimator.location_, estimator.precision_, float("inf"))
        distances = gate.distances(validation_embeddings)
        # A margin over the validation quantile: real uploads vary more than one hospital's files.
        gate.threshold = float(np.quantile(distances, VALIDATION_PASS_RATE) * 1.25)
        return gate

    def distances(self, embeddings: np.ndarray) -> np.ndarray:
        centered = np.atleast_2d(embeddings) - self.mean
        return np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", centered, self.precision, centered), 0.0))

    def check(self, embedding: np.ndarray) -> None:
        distance = float(self.distances(embedding)[0])
        if distance > self.threshold:
            raise _reject(
                f"it looks unlike the radiographs the model was trained on (feature distance "
                f"{distance:.0f}, limit {self.threshold:.0f})"
            )

    def save(self, path: Path) -> None:
        np.savez(path, mean=self.mean, precision=self.precision, threshold=np.array(self.threshold))

    @classmethod
    def load(cls, path: Path) -> FeatureGate | None:
        if not Path(path).exists():
            return None
        with np.load(path, allow_pickle=False) as data:
            return cls(data["mean"], data["precision"], float(data["threshold"]))

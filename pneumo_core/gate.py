"""The input gate: is this a frontal chest radiograph the model may score?

Three layers of evidence, cheapest first:
1. DICOM header: modality and body part.
2. Image statistics: colour, flat or blank images, extreme aspect ratios.
3. Learned: Mahalanobis distance of the model's pooled features to the training images'
   distribution, with a cut-off set so a fixed share of *validation* radiographs pass.

Every rejection is an ``InputError("not_chest_xray", reason)``.
"""

from __future__ import annotations

import itertools
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
    """Mahalanobis distance to the training images, separately for each feature layer.

    Each layer gets its own cut-off (the validation quantile times a margin); an image is refused
    when any layer finds it too far. Shallow layers catch non-radiograph textures (photos, print,
    noise), deep ones catch radiographs of something other than a chest.
    """

    sizes: list[int]
    means: list[np.ndarray]
    precisions: list[np.ndarray]
    thresholds: list[float]

    @classmethod
    def fit(
        cls, train_embeddings: np.ndarray, validation_embeddings: np.ndarray, sizes: list[int] | None = None
    ) -> FeatureGate:
        sizes = list(sizes or [train_embeddings.shape[1]])
        if sum(sizes) != train_embeddings.shape[1]:
            raise ValueError(f"feature sizes {sizes} do not add up to {train_embeddings.shape[1]}")
        gate = cls(sizes, [], [], [])
        for train_part in gate._split(train_embeddings):
            estimator = LedoitWolf().fit(train_part)
            gate.means.append(estimator.location_)
            gate.precisions.append(estimator.precision_)
        # A margin over the validation quantile: real uploads vary more than one hospital's files.
        per_layer = gate.distances(validation_embeddings)
        gate.thresholds = [float(np.quantile(d, VALIDATION_PASS_RATE) * 1.25) for d in per_layer.T]
        return gate

    def _split(self, embeddings: np.ndarray) -> list[np.ndarray]:
        bounds = np.cumsum([0, *self.sizes])
        return [np.atleast_2d(embeddings)[:, a:b] for a, b in itertools.pairwise(bounds)]

    def distances(self, embeddings: np.ndarray) -> np.ndarray:
        """``(N, layers)`` Mahalanobis distances."""
        columns = []
        for part, mean, precision in zip(self._split(embeddings), self.means, self.precisions, strict=True):
            centered = part - mean
            columns.append(np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", centered, precision, centered), 0.0)))
        return np.stack(columns, axis=1)

    def outlier_scores(self, embeddings: np.ndarray) -> np.ndarray:
        """``(N,)`` worst distance-to-cut-off ratio over layers; above 1 is refused."""
        return (self.distances(embeddings) / np.array(self.thresholds)).max(axis=1)

    def check(self, embedding: np.ndarray) -> None:
        score = float(self.outlier_scores(embedding)[0])
        if score > 1.0:
            raise _reject(
                f"it looks unlike the radiographs the model was trained on (outlier score {score:.1f}; "
                "chest X-rays score below 1)"
            )

    def save(self, path: Path) -> None:
        arrays = {"sizes": np.array(self.sizes), "thresholds": np.array(self.thresholds)}
        for i, (mean, precision) in enumerate(zip(self.means, self.precisions, strict=True)):
            arrays[f"mean_{i}"], arrays[f"precision_{i}"] = mean, precision
        np.savez(path, **arrays)

    @classmethod
    def load(cls, path: Path) -> FeatureGate | None:
        if not Path(path).exists():
            return None
        with np.load(path, allow_pickle=False) as data:
            sizes = [int(v) for v in data["sizes"]]
            means = [data[f"mean_{i}"] for i in range(len(sizes))]
            precisions = [data[f"precision_{i}"] for i in range(len(sizes))]
            return cls(sizes, means, precisions, [float(t) for t in data["thresholds"]])

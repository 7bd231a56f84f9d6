"""Calibration on the validation split: framing, temperature, operating threshold, input gate.

Works on a plain ``Network`` (logits and embeddings) and the contract it was trained for; the
result is the contract a model ships with.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .contract import ModelContract
from .evaluation import choose_threshold, temperature_scaled
from .gate import FeatureGate
from .imaging import frame

FRAME_SCALES = (1.0, 0.97, 0.94, 0.91, 0.88)
"""Candidate inference framings (``ModelContract.frame_scale``), scored on validation."""


@dataclass
class Calibration:
    contract: ModelContract
    threshold_method: str
    val_probabilities: np.ndarray
    val_embeddings: np.ndarray
    log_loss_by_frame_scale: dict[str, float]


def framed(images: np.ndarray, scale: float) -> np.ndarray:
    """``imaging.frame`` over a batch ``(N, S, S, 1)``."""
    return images if scale == 1.0 else np.stack([frame(image, scale) for image in images])


def calibrate(
    model: object,
    contract: ModelContract,
    x_val: np.ndarray,
    y_val: np.ndarray,
    target_sensitivity: float | None = None,
) -> Calibration:
    """Frame scale and temperature by calibrated validation log-loss, then the operating threshold.

    ``x_val`` is unframed (loaded at ``frame_scale`` 1.0); ``contract``'s own calibration is replaced.
    """
    from .network import Network

    scores, best = {}, None
    for scale in FRAME_SCALES:
        logits, embeddings = Network(model, contract.feature_layers, scale).outputs(framed(x_val, scale))
        key = f"{scale:.2f}"
        temperature, probabilities, scores[key] = temperature_scaled(y_val, logits)
        if best is None or scores[key] < best[0]:
            best = (scores[key], scale, temperature, probabilities, embeddings)
    _, scale, temperature, probabilities, embeddings = best
    threshold, method = choose_threshold(y_val, probabilities, target_sensitivity=target_sensitivity)
    calibrated = contract.with_calibration(
        operating_threshold=threshold, temperature=temperature, frame_scale=scale,
        calibration_prevalence=round(float(np.mean(y_val)), 4),
    )  # fmt: skip
    return Calibration(calibrated, method, probabilities, embeddings, scores)


def fit_feature_gate(
    model: object, contract: ModelContract, x_fit: np.ndarray, val_embeddings: np.ndarray
) -> FeatureGate:
    """The input gate from ~2000 evenly spaced training images and all validation images.

    ``x_fit`` is unframed; it is framed here as the calibrated ``contract`` says.
    """
    from .network import Network

    network = Network(model, contract.feature_layers, contract.frame_scale)
    sample = framed(x_fit[:: max(1, len(x_fit) // 2000)], contract.frame_scale)
    return FeatureGate.fit(network.outputs(sample)[1], val_embeddings, network.feature_sizes)

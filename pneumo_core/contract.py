"""The model contract: the one place that says what a model expects and what its output means.

Every saved model carries its contract in ``metadata.json``; loading a model restores it, so no
other module repeats the input size, the class names or the operating threshold.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

CLASS_NAMES: tuple[str, str] = ("NORMAL", "PNEUMONIA")
"""Label order: index 1 is the positive class the sigmoid output scores."""

NORMALIZATIONS = ("equalize_hist", "none")
GRADCAM_LAYER = "gradcam_target"
"""The convolutional layer whose activations Grad-CAM explains (every architecture names one so)."""


@dataclass(frozen=True)
class ModelContract:
    """What goes into a model and what comes out.

    Attributes:
        input_size: side of the square model input in pixels (images are resized without keeping
            the aspect ratio, as the Kaggle 224 px copies were).
        channels: model input channels (1: grayscale).
        normalization: intensity normalization applied by ``imaging.to_model_input`` before the
            model; ``"equalize_hist"`` maps any monotone contrast change to the same input.
        class_names: labels for output 0 and 1; the sigmoid scores ``class_names[1]``.
        operating_threshold: calibrated probability at or above which the verdict is the positive
            class; chosen on the validation split, never on test.
        temperature: logit temperature fitted on validation (1.0 = uncalibrated).
        frame_scale: the normalized image is shrunk by this factor about its centre inside the
            model's input, black outside (1.0 = fills the input). Training augmentation (zoom and
            shift with black fill) shows the model framed images, so the scale that serves it best
            is chosen on validation, with the temperature.
        calibration_prevalence: share of pneumonia in the validation split the temperature was
            fitted on: the prevalence the probabilities are calibrated for (``None``: not recorded).
        borderline_margin: probabilities within this distance of the threshold are "borderline".
        gradcam_layer: name of the convolutional layer whose activations Grad-CAM explains.
        feature_layers: layers whose spatially averaged activations form the input gate's features.
    """

    input_size: int = 224
    channels: int = 1
    normalization: str = "equalize_hist"
    class_names: tuple[str, str] = CLASS_NAMES
    operating_threshold: float = 0.5
    temperature: float = 1.0
    frame_scale: float = 1.0
    borderline_margin: float = 0.1
    calibration_prevalence: float | None = None
    gradcam_layer: str = GRADCAM_LAYER
    feature_layers: tuple[str, ...] = ("pool",)

    def __post_init__(self) -> None:
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(f"unknown normalization {self.normalization!r}; use one of {NORMALIZATIONS}")
        if not 32 <= self.input_size <= 1024:
            raise ValueError(f"input_size must be in [32, 1024], got {self.input_size}")
        if self.channels != 1:
            raise ValueError("only single-channel (grayscale) models are supported")
        if not 0.0 < self.operating_threshold < 1.0:
            raise ValueError(f"operating_threshold must be in (0, 1), got {self.operating_threshold}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")
        if self.calibration_prevalence is not None and not 0.0 < self.calibration_prevalence < 1.0:
            raise ValueError(f"calibration_prevalence must be in (0, 1), got {self.calibration_prevalence}")
        if not 0.5 <= self.frame_scale <= 1.0:
            raise ValueError(f"frame_scale must be in [0.5, 1], got {self.frame_scale}")
        if not 0.0 <= self.borderline_margin < 0.5:
            raise ValueError(f"borderline_margin must be in [0, 0.5), got {self.borderline_margin}")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["class_names"] = list(self.class_names)
        out["feature_layers"] = list(self.feature_layers)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelContract:
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        for key in ("class_names", "feature_layers"):
            if key in kwargs:
                kwargs[key] = tuple(kwargs[key])
        return cls(**kwargs)

    def with_calibration(
        self,
        *,
        operating_threshold: float,
        temperature: float,
        frame_scale: float | None = None,
        calibration_prevalence: float | None = None,
    ) -> ModelContract:
        """A copy with new calibration; ``None`` keeps the current frame scale and prevalence."""
        return replace(
            self,
            operating_threshold=float(operating_threshold),
            temperature=float(temperature),
            frame_scale=self.frame_scale if frame_scale is None else float(frame_scale),
            calibration_prevalence=(
                self.calibration_prevalence if calibration_prevalence is None else float(calibration_prevalence)
            ),
        )

    def label_for(self, probability_pneumonia: float) -> str:
        return self.class_names[int(probability_pneumonia >= self.operating_threshold)]

    def band_for(self, probability_pneumonia: float) -> str:
        """Plain-language confidence band for a clinician reading the verdict."""
        distance = probability_pneumonia - self.operating_threshold
        if abs(distance) < self.borderline_margin:
            return "borderline: review"
        return "likely pneumonia" if distance >= 0 else "likely normal"  # as label_for: >= is pneumonia

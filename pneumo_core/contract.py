"""The model contract: the one place that says what a model expects and what its output means.

Every saved model carries its contract in ``metadata.json``; loading a model restores it, so no
other module repeats the input size, the class names or the operating threshold.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

CLASS_NAMES: tuple[str, str] = ("NORMAL", "PNEUMONIA")
"""Label order: index 1 is the positive class the sigmoid output scores."""

NORMALIZATIONS = ("equalize_hist", "clahe", "none")
CLAHE_CLIP_LIMIT = 2.0
CLAHE_TILES = 8
"""``"clahe"``: contrast-limited adaptive histogram equalization (Zuiderveld 1994) on an
``CLAHE_TILES`` x ``CLAHE_TILES`` grid of the model-size image, clipped at ``CLAHE_CLIP_LIMIT``."""
LR_SCHEDULES = ("plateau", "cosine")
MONITORS = ("val_loss", "val_calibrated_loss")
ZOOM_OUT = 0.12
"""Training zoom-out of up to this fraction (the image shrunk inside a black frame)."""


@dataclass(frozen=True)
class ModelContract:
    """What goes into a model and what comes out.

    Attributes:
        input_size: side of the square model input in pixels (images are resized without keeping
            the aspect ratio, as the Kaggle 224 px copies were).
        channels: model input channels (1: grayscale).
        normalization: intensity normalization applied by ``imaging.to_model_input`` before the
            model; ``"equalize_hist"`` maps any monotone contrast change to the same input;
            ``"clahe"`` equalizes each region of the image separately (local contrast).
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
    gradcam_layer: str = "gradcam_target"
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
        return "likely pneumonia" if distance > 0 else "likely normal"


@dataclass
class TrainingConfig:
    """Everything ``train.py`` needs to reproduce a model; saved in its metadata."""

    epochs: int = 14
    batch_size: int = 32
    learning_rate: float = 2e-3
    image_size: int = 224
    normalization: str = "equalize_hist"
    """The contract's intensity normalization (``NORMALIZATIONS``): ``"equalize_hist"``, global
    histogram equalization; ``"clahe"``, local (tiled, contrast-limited) equalization."""
    arch: str = "compact_resnet"
    width: int = 32
    dropout: float = 0.3
    label_smoothing: float = 0.05
    augment: bool = True
    acquisition_augment: bool = False
    mixup: float = 0.0
    border_erase: float = 0.0
    max_zoom_in: float = 0.12
    """Training zoom-in of up to this fraction (0.3: the central 70% of the image filling the
    input), so how tightly a radiograph is collimated carries no label information."""
    balanced_sampling: bool = False
    """Draw each epoch's images with replacement so that both classes are equally frequent, instead
    of weighting the loss by inverse class frequency (the default, class weights)."""
    validation_fraction: float = 0.15
    train_subset: int | None = None
    early_stopping_patience: int = 4
    lr_schedule: str = "plateau"
    """``"plateau"``: halve the learning rate when validation loss stalls for 2 epochs;
    ``"cosine"``: cosine decay to 1% of it over ``epochs``."""
    monitor: str = "val_loss"
    """What early stopping, the plateau schedule and the kept epoch follow: ``"val_loss"``, the
    training loss on validation (label-smoothed, uncalibrated), or ``"val_calibrated_loss"``, the
    validation log-loss after fitting a temperature to the unframed validation images (the default
    model is chosen by this proper scoring rule, after framing)."""
    weight_average: float = 0.0
    """Momentum of an exponential moving average of the weights (Polyak averaging; 0 = off, 0.99:
    about the last 100 steps). Validation, early stopping and the saved model use the average."""
    weight_decay: float = 0.0
    """Decoupled weight decay (AdamW, Loshchilov & Hutter 2019): each step shrinks convolution and
    dense kernels by ``learning_rate * weight_decay`` of themselves; BatchNorm scales and shifts and
    biases are left alone. 0 = off."""
    bn_momentum: float = 0.99
    """Momentum of the BatchNorm moving statistics that validation and inference use (Keras'
    default 0.99: about the last 100 batches; 0.9: the last 10). With fast-moving weights early in
    training, 0.99 lags them, and validation sees a network that no longer exists
    (``benchmarks/bn_statistics.py``)."""
    bn_reestimate: int = 0
    """Before each validation pass, replace the BatchNorm moving statistics with ones estimated
    afresh at the current weights on this many training images (a fixed random subset; 0 = off).
    Validation loss, early stopping, the schedule and the kept weights then see the network as it
    is. About 12 s per epoch per 1000 images at 224 px on the 2-core CPU. It did not make a better
    model: the stored statistics of v1's final weights score better than re-estimated ones
    (``benchmarks/bn_statistics.py --trained``)."""
    members: int = 1
    """Networks trained one after the other (seeds ``seed``, ``seed + 1``, ...; the split always
    uses ``seed``), each for up to ``epochs``, and merged into one model averaging their logits."""
    target_sensitivity: float | None = 0.97
    """Operating threshold: the highest with at least this validation sensitivity (the clinical
    priority: a missed pneumonia costs more than a false alarm); ``None``: Youden's J."""
    seed: int = 1337
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Reject settings that would only fail after minutes of training."""
        problems = []
        if self.epochs < 1 or self.batch_size < 1 or self.early_stopping_patience < 0:
            problems.append("epochs and batch_size must be >= 1, patience >= 0")
        if self.learning_rate <= 0:
            problems.append(f"learning_rate must be positive, got {self.learning_rate}")
        if self.mixup < 0:
            problems.append(f"mixup must be >= 0 (0 = off), got {self.mixup}")
        if not 0 <= self.border_erase <= 1:
            problems.append(f"border_erase is a probability in [0, 1], got {self.border_erase}")
        if not 0 <= self.max_zoom_in < 1:
            problems.append(f"max_zoom_in is a fraction in [0, 1), got {self.max_zoom_in}")
        if not 0 <= self.weight_average < 1:
            problems.append(f"weight_average is a momentum in [0, 1) (0 = off), got {self.weight_average}")
        if self.weight_decay < 0:
            problems.append(f"weight_decay must be >= 0 (0 = off), got {self.weight_decay}")
        if not 0 < self.bn_momentum < 1:
            problems.append(f"bn_momentum must be in (0, 1), got {self.bn_momentum}")
        if self.bn_reestimate < 0:
            problems.append(f"bn_reestimate is a number of images (0 = off), got {self.bn_reestimate}")
        if self.bn_reestimate and self.weight_average:
            problems.append(
                "bn_reestimate and weight_average cannot be combined (the averaged weights have no statistics of their own)"
            )
        if self.normalization not in NORMALIZATIONS:
            problems.append(f"normalization must be one of {NORMALIZATIONS}, got {self.normalization!r}")
        if self.monitor not in MONITORS:
            problems.append(f"monitor must be one of {MONITORS}, got {self.monitor!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            problems.append(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if not 1 <= self.members <= 4:
            problems.append(f"members must be 1 to 4, got {self.members}")
        if self.target_sensitivity is not None and not 0 < self.target_sensitivity <= 1:
            problems.append(f"target_sensitivity must be in (0, 1], got {self.target_sensitivity}")
        if problems:
            raise ValueError("; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

"""``TrainingConfig``: everything ``train.py`` needs to reproduce a model; saved in its metadata.

The input size and normalization a configuration trains for come from ``ModelContract``
(``contract_for``), so the two never disagree.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from .contract import ModelContract

ARCHITECTURES = ("compact_resnet", "resnet50", "efficientnetb0", "densenet121")
ZOOM_OUT = 0.12
"""Training zoom-out of up to this fraction (the image shrunk inside a black frame; the contract's
``frame_scale`` is chosen among such framings on validation)."""
ZOOM_IN = 0.12
"""Training zoom-in of up to this fraction (a tighter field of view)."""

RETIRED_FIELDS: dict[str, Any] = {
    "normalization": "equalize_hist",
    "acquisition_augment": False,
    "mixup": 0.0,
    "border_erase": 0.0,
    "max_zoom_in": 0.12,
    "balanced_sampling": False,
    "lr_schedule": "plateau",
    "monitor": "val_loss",
    "weight_average": 0.0,
    "weight_decay": 0.0,
    "bn_momentum": 0.99,
    "bn_reestimate": 0,
    "extra": {},
}
"""Options of experiments that were rejected or tied (docs/experiments.md), with the value that
means "off". Metadata written before they left may carry them; at that value they are what the
recipe does anyway, any other value names a recipe this code no longer trains."""
MIN_WIDTH = 16
"""The narrowest compact_resnet that trains here: at width 8 TensorFlow 2.21's oneDNN CPU kernels
aborted or crashed the whole process (2026-12-02, this machine; TF_ENABLE_ONEDNN_OPTS=0 avoided it)."""
RETIRED_AT = "1ccd8ac"
"""The last commit whose ``train.py`` still trains the retired options."""


@dataclass
class TrainingConfig:
    """The training recipe: architecture, optimisation, data split and threshold rule."""

    epochs: int = 14
    batch_size: int = 32
    learning_rate: float = 2e-3
    image_size: int = ModelContract.input_size
    arch: str = "compact_resnet"
    width: int = 32
    """compact_resnet's stage-1 channels (the stem has half, later stages 2, 4 and 6 times), at least ``MIN_WIDTH``."""
    dropout: float = 0.3
    label_smoothing: float = 0.05
    augment: bool = True
    validation_fraction: float = 0.15
    train_subset: int | None = None
    early_stopping_patience: int = 4
    members: int = 1
    """Networks trained one after the other (seeds ``seed``, ``seed + 1``, ...; the split always
    uses ``seed``), each for up to ``epochs``, and merged into one model averaging their logits."""
    target_sensitivity: float | None = 0.97
    """Operating threshold: the highest with at least this validation sensitivity (the clinical
    priority: a missed pneumonia costs more than a false alarm); ``None``: Youden's J."""
    seed: int = 1337

    def __post_init__(self) -> None:
        """Reject settings that would only fail after minutes of training."""
        problems = []
        if self.epochs < 1 or self.batch_size < 1 or self.early_stopping_patience < 0:
            problems.append("epochs and batch_size must be >= 1, patience >= 0")
        if self.learning_rate <= 0:
            problems.append(f"learning_rate must be positive, got {self.learning_rate}")
        if self.arch not in ARCHITECTURES:
            problems.append(f"arch must be one of {ARCHITECTURES}, got {self.arch!r}")
        if not 1 <= self.members <= 4:
            problems.append(f"members must be 1 to 4, got {self.members}")
        if self.arch == "compact_resnet" and self.width < MIN_WIDTH:
            problems.append(
                f"width must be at least {MIN_WIDTH}, got {self.width} (TensorFlow 2.21's oneDNN CPU kernels "
                "crashed the process training width 8, whose stem has 4 channels)"
            )
        if self.members > 1 and self.arch != "compact_resnet":
            problems.append(f"ensembles (members > 1) are built for compact_resnet only, not {self.arch!r}")
        if self.train_subset is not None and self.train_subset < 1:
            problems.append(f"train_subset must be a positive number of images, got {self.train_subset}")
        if self.target_sensitivity is not None and not 0 < self.target_sensitivity <= 1:
            problems.append(f"target_sensitivity must be in (0, 1], got {self.target_sensitivity}")
        try:
            contract_for(self)
        except ValueError as exc:
            problems.append(str(exc))
        if problems:
            raise ValueError("; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingConfig:
        """Read a saved configuration. Retired options at their "off" value are dropped; anything
        else unknown is refused, so an old recipe is never silently trained as a different one."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(
            key for key, value in data.items() if key not in known and RETIRED_FIELDS.get(key, object()) != value
        )
        if unknown:
            raise ValueError(
                f"this configuration uses options this version does not train: {', '.join(unknown)} "
                f"(retired experiments, see docs/experiments.md; commit {RETIRED_AT} still trains them)"
            )
        return cls(**{k: v for k, v in data.items() if k in known})


def contract_for(config: TrainingConfig) -> ModelContract:
    """The contract a configuration trains for, before calibration: input size and the input
    gate's feature layers. Training, and every benchmark that retrains, load images through it."""
    return ModelContract(input_size=config.image_size, feature_layers=feature_layers(config.arch, config.members))


def feature_layers(arch: str, members: int = 1) -> tuple[str, ...]:
    """Layers whose mean activations the input gate models: several depths see both texture
    (is this a radiograph at all?) and anatomy (is it a chest?). An ensemble uses its first
    member's stages and the pooled features of all members."""
    if arch == "compact_resnet":
        prefix = member_prefix(0) if members > 1 else ""
        return (f"{prefix}stage1_out", f"{prefix}stage2_out", f"{prefix}stage3_out", "pool")
    return ("pool",)


def member_prefix(index: int) -> str:
    """Layer-name prefix of ensemble member ``index`` inside a merged model."""
    return f"m{index}_"

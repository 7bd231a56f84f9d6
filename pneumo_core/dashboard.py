"""Data for the Evaluation page: a model's stored test predictions, metric tables, error gallery."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import registry
from .errors import InputError, ModelLoadError
from .evaluation import bootstrap_ci, expected_calibration_error
from .render import overlay


@dataclass
class ModelResults:
    name: str
    y_true: np.ndarray
    y_prob: np.ndarray
    paths: list[str]
    threshold: float
    class_names: tuple[str, str]
    test_report: dict[str, Any]
    validation_report: dict[str, Any] | None = None
    history: dict[str, list[float]] = field(default_factory=dict)
    member_epochs: list[int] = field(default_factory=list)
    """Epochs each ensemble member ran, in order: ``history`` runs the members one after another."""
    kind: str = "official test set"
    """What the stored predictions are: the official test set, or a site's out-of-fold predictions."""

    @property
    def on_official_test_set(self) -> bool:
        """Whether the predictions are of the dataset's test/ images (which the gallery can reopen)."""
        return self.kind == "official test set"

    @property
    def description(self) -> str:
        """One line saying what these figures are and are not."""
        if self.on_official_test_set:
            return (
                f"{self.name}: the official test set ({self.y_true.size} images), scored when the model was trained "
                "(or recalibrated); nothing was tuned on it."
            )
        return (
            f"{self.name}: {self.kind} ({self.y_true.size} images of one site): each image scored by a model "
            "fitted without that patient. Not comparable with the official test set's figures."
        )


def load_test_predictions(name: str) -> ModelResults | None:
    """The per-image test predictions saved with a model; ``None`` if it has none."""
    try:
        path = registry.model_path(name)
        metadata = registry.read_metadata(path)
    except (ValueError, ModelLoadError):
        return None
    rows = registry.read_predictions(path)
    if not rows or not metadata.get("test"):
        return None
    contract = metadata["contract"]
    return ModelResults(
        name=name,
        y_true=np.array([r["label"] for r in rows]),
        y_prob=np.array([r["probability_pneumonia"] for r in rows]),
        paths=[r["path"] for r in rows],
        threshold=float(contract["operating_threshold"]),
        class_names=tuple(contract["class_names"]),
        test_report=metadata["test"],
        validation_report=metadata.get("validation"),
        history=metadata.get("history", {}),
        member_epochs=list(metadata.get("member_epochs", [])),
        kind=metadata.get("evaluation_kind", "official test set"),
    )


def _ece(y_true: np.ndarray, y_prob: np.ndarray) -> dict[str, float]:
    return {"ece": expected_calibration_error(y_true, y_prob)}


def metric_table(models: dict[str, ModelResults], split: str = "test") -> list[dict[str, str]]:
    """One row per model: value and 95% CI of each metric at its frozen threshold, on ``split``."""
    rows = []
    for name, results in models.items():
        report = results.test_report if split == "test" else results.validation_report
        if not report:
            continue
        row = {"model": name, "split": split, "n": str(report["n"]), "threshold": f"{report['threshold']:.3f}"}
        for key in ("auc", "accuracy", "sensitivity", "specificity", "precision", "f1"):
            low, high = report["ci95"].get(key, (float("nan"), float("nan")))
            row[key] = f"{report[key]:.3f} ({low:.3f}-{high:.3f})"
        row["brier"] = f"{report['brier']:.3f}"
        ece = report["ci95"].get("ece")
        if ece is None and split == "test":  # stored before ECE was bootstrapped: the same bootstrap, now
            ece = bootstrap_ci(results.y_true, results.y_prob, _ece)["ece"]
        row["ece"] = f"{report['ece']:.3f}" + (f" ({ece[0]:.3f}-{ece[1]:.3f})" if ece else "")
        rows.append(row)
    return rows


METRIC_LABELS = {
    "n": "images", "threshold": "threshold", "auc": "AUC", "accuracy": "accuracy", "sensitivity": "sensitivity",
    "specificity": "specificity", "precision": "precision", "f1": "F1", "brier": "Brier score", "ece": "ECE",
}  # fmt: skip


def metrics_by_row(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """``metric_table`` turned on its side: one row per metric, one column per model and split, so a
    comparison stays narrow enough to read whole."""
    return [
        {"metric": label, **{f"{row['model']} ({row['split']})": row[key] for row in rows}}
        for key, label in METRIC_LABELS.items()
    ]


@dataclass
class GalleryItem:
    image: np.ndarray
    caption: str


def misclassified(
    results: ModelResults, data_dir: Path, classifier: Any, limit: int = 8, threshold: float | None = None
) -> list[GalleryItem]:
    """The most confidently wrong test images at ``threshold`` (the model's own by default), with
    their Grad-CAM overlay."""
    threshold = results.threshold if threshold is None else threshold
    wrong = np.flatnonzero((results.y_prob >= threshold).astype(int) != results.y_true)
    order = wrong[np.argsort(-np.abs(results.y_prob[wrong] - threshold))]
    items = []
    for index in order[:limit]:
        path = Path(data_dir) / results.paths[index]
        try:
            analysis = classifier.analyze(path)
        except InputError as error:
            items.append(GalleryItem(np.zeros((64, 64), np.uint8), f"{path.name}: {error.message}"))
            continue
        truth = results.class_names[results.y_true[index]]
        caption = f"{path.name}: true {truth}, P(pneumonia) {100 * results.y_prob[index]:.0f}%"
        items.append(GalleryItem(overlay(analysis.pixels, analysis.heatmap, 0.4), caption))
    return items

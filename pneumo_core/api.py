"""The core as the app sees it: the one module ``ui.py`` and the pages import from ``pneumo_core``.

It names what a page may use (models, verdicts, the worklist, evaluation data, plots, retraining
runs) and holds the little logic pages would otherwise compute themselves. Nothing here imports
Streamlit; nothing in a page imports another core module.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import jobs, plots, registry
from .classifier import Analysis, Classifier, Prediction
from .config import TrainingConfig
from .contract import CLASS_NAMES
from .dashboard import ModelResults, load_test_predictions, metric_table, misclassified
from .data import resolve_data_dir
from .errors import InputError
from .evaluation import threshold_metrics
from .imaging import MAX_UPLOAD_MB
from .render import DISCLAIMER, DISCLAIMER_LONG, overlay, percent, probability_percent, report_png
from .worklist import example_images, worklist_csv, worklist_rows

__all__ = [
    "CLASS_NAMES",
    "DISCLAIMER",
    "DISCLAIMER_LONG",
    "MAX_UPLOAD_MB",
    "Analysis",
    "Classifier",
    "InputError",
    "ModelResults",
    "PrevalenceSetting",
    "TrainingConfig",
    "data_dir",
    "example_images",
    "facts_line",
    "jobs",
    "load_test_predictions",
    "metric_table",
    "misclassified",
    "model_card",
    "overlay",
    "percent",
    "plots",
    "prevalence_setting",
    "probability_percent",
    "registry",
    "report_png",
    "threshold_metrics",
    "verdict_color",
    "worklist_csv",
    "worklist_rows",
]


def data_dir() -> Path | None:
    """The configured dataset folder if it holds a split (examples, gallery, retraining), else ``None``."""
    path = resolve_data_dir()
    return path if (path / "test").is_dir() or (path / "train").is_dir() else None


def model_card(classifier: Classifier) -> str:
    card = classifier.path / registry.CARD_FILE
    return card.read_text() if card.exists() else "This model has no model card."


@dataclass(frozen=True)
class PrevalenceSetting:
    """The prevalence a model's probabilities are calibrated for, and how to explain it."""

    calibrated_for: float
    help: str

    @property
    def default_percent(self) -> int:
        return round(100 * self.calibrated_for)

    def prevalence(self, chosen_percent: int) -> float:
        """The prevalence to state probabilities for: exactly the calibrated one at the default."""
        return self.calibrated_for if chosen_percent == self.default_percent else chosen_percent / 100


def prevalence_setting(classifier: Classifier) -> PrevalenceSetting | None:
    """``None`` when the model did not record the prevalence it is calibrated for."""
    calibrated_for = classifier.contract.calibration_prevalence
    if calibrated_for is None:
        return None
    test = classifier.metadata.get("test") or {}
    test_share = f" (the official test set has {percent(test['n_positive'] / test['n'])})" if test else ""
    return PrevalenceSetting(
        calibrated_for,
        f"The probabilities are calibrated for the {percent(calibrated_for, 0)} pneumonia among the validation "
        f"patients{test_share}. Set the share of pneumonia among the patients you image and each probability is "
        "re-expressed for it by Bayes' rule. Verdicts do not change: the threshold moves with the probabilities.",
    )


def facts_line(prediction: Prediction) -> str:
    """The image facts safe to show, as one line."""
    return ", ".join(f"{key.replace('_', ' ')}: {value}" for key, value in prediction.facts.items())


def verdict_color(label: str) -> str:
    """Streamlit's colour name for a verdict: red for the positive class, green otherwise."""
    return "red" if label == CLASS_NAMES[1] else "green"

"""The core as the app sees it: the one module ``ui.py`` and the pages import from ``pneumo_core``.

It names what a page may use (models, verdicts, the worklist, evaluation data, plots, retraining
runs) and holds the little logic pages would otherwise compute themselves. Nothing here imports
Streamlit; nothing in a page imports another core module.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from . import jobs, plots, registry
from .adapt import AdaptJob, SiteDataError, from_archive, from_folder
from .classifier import Analysis, Classifier, Prediction
from .config import TrainingConfig
from .contract import CLASS_NAMES
from .dashboard import ModelResults, load_test_predictions, metric_table, metrics_by_row, misclassified
from .data import resolve_data_dir
from .errors import InputError
from .evaluation import roc_band, threshold_metrics
from .imaging import MAX_UPLOAD_MB, decode
from .inputs import gather_paths, skipped_message, zip_images
from .render import DISCLAIMER, DISCLAIMER_LONG, count, percent, probability_percent, report_png, screen_jpegs
from .site import CHECK_WITH_DIAGNOSE_FROM as SITE_CHECK_WITH_DIAGNOSE_FROM
from .site import MIN_IMAGES as SITE_MIN_IMAGES
from .site import SiteCheck, check_analyzed, check_site
from .worklist import WORKLIST_HEADERS, example_images, worklist_csv, worklist_rows

ImageSource = bytes | Path | InputError

__all__ = [
    "CLASS_NAMES",
    "DISCLAIMER",
    "DISCLAIMER_LONG",
    "MAX_UPLOAD_MB",
    "SITE_CHECK_WITH_DIAGNOSE_FROM",
    "SITE_MIN_IMAGES",
    "WORKLIST_HEADERS",
    "AdaptJob",
    "Analysis",
    "Classifier",
    "InputError",
    "ModelResults",
    "PrevalenceSetting",
    "SiteCheck",
    "SiteDataError",
    "TrainingConfig",
    "adapted_figures",
    "check_analyzed",
    "check_site",
    "comparison_note",
    "count",
    "data_dir",
    "example_images",
    "facts_line",
    "folder_images",
    "from_archive",
    "from_folder",
    "gather_uploads",
    "jobs",
    "load_test_predictions",
    "metric_table",
    "metrics_by_row",
    "misclassified",
    "model_card",
    "new_model_name",
    "percent",
    "plain",
    "plots",
    "prevalence_setting",
    "probability_percent",
    "registry",
    "report_png",
    "roc_band",
    "screen_jpegs",
    "threshold_metrics",
    "thumbnail",
    "verdict_color",
    "worklist_csv",
    "worklist_rows",
]


_MARKDOWN = re.compile(r"([\\`*_{}\[\]()!|<>~:$&])")
_BLOCK_START = re.compile(r"^(\s*\d*)([-+#>=.)])")


def plain(text: object) -> str:
    """Text a user controls (file names, DICOM fields, messages quoting them) made safe to show in
    Streamlit's Markdown: every Markdown, directive (``:green[...]``), LaTeX and HTML character is
    backslash-escaped and line breaks become spaces, so it reads exactly as written."""
    escaped = _MARKDOWN.sub(r"\\\1", " ".join(str(text).splitlines()))
    return _BLOCK_START.sub(r"\1\\\2", escaped)  # a list, heading or quote marker at the start


def import_model_libraries() -> None:
    """Import the libraries every model needs (TensorFlow and Keras), which loading the first model
    would otherwise do: for a server that wants them in memory before it serves anyone."""
    import keras  # noqa: F401


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

    @property
    def caption(self) -> str:
        """One visible line under the slider: what its default is and what moving it does."""
        return (
            f"{self.default_percent}% is the share of pneumonia among the validation patients the probabilities "
            "are calibrated for. Set your own and each probability is restated for it; verdicts stay the same."
        )

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


def comparison_note(validation: list[dict[str, str]], test: list[dict[str, str]]) -> str:
    """What the comparison table's sizes mean: each model's validation split is its own, the test
    set is shared (rows from ``dashboard.metric_table``)."""

    def sizes(rows: list[dict[str, str]]) -> str:
        return ", ".join(f"{row['model']} on {row['n']} images" for row in rows)

    shared = {row["n"] for row in test}
    note = f"Validation: each model was scored on its own validation split ({sizes(validation)})"
    note += ", so those figures do not compare like for like. " if len({r["n"] for r in validation}) > 1 else ". "
    if len(shared) == 1 and len(test) > 1:
        note += f"Test: every model was scored on the same {shared.pop()} images."
    elif len(shared) > 1:
        note += f"Test: {sizes(test)}, so not the same images either."
    return note


def facts_line(prediction: Prediction) -> str:
    """The image facts safe to show, as one line."""
    return ", ".join(f"{key.replace('_', ' ')}: {value}" for key, value in prediction.facts.items())


def verdict_color(label: str) -> str:
    """Streamlit's colour name for a verdict: red for the positive class, green otherwise."""
    return "red" if label == CLASS_NAMES[1] else "green"


def gather_uploads(files: list[tuple[str, bytes]]) -> list[tuple[str, ImageSource]]:
    """Uploaded files as ``(name, source)`` images: zip archives are unpacked (members named
    ``archive.zip/inside/path``), other files pass as they are; a bad archive becomes one
    ``InputError`` entry, so it is listed with its reason and the rest still count."""
    images: list[tuple[str, ImageSource]] = []
    for name, data in files:
        if name.lower().endswith(".zip"):
            try:
                images += [(f"{name}/{inner}", source) for inner, source in zip_images(data)]
            except InputError as error:
                images.append((name, error))
        else:
            images.append((name, data))
    return images


def folder_images(folder: str) -> tuple[list[tuple[str, ImageSource]], str | None]:
    """The image files under a folder on the server, named by their path inside it, and one line
    naming the files left out for their names (other formats), or ``None`` when there are none.

    Raises:
        InputError: the folder does not exist.
    """
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise InputError("no_folder", f"There is no folder {folder} on the server.")
    read, skipped = gather_paths([str(root)])
    return [(str(path.relative_to(root)), path) for path in read], skipped_message(skipped) if skipped else None


def thumbnail(source: ImageSource, side: int = 160):
    """A small grayscale copy of an image for a gallery, or ``None`` if it cannot be read."""
    import cv2

    try:
        pixels = decode(source).pixels
    except (InputError, TypeError):
        return None
    scale = side / max(pixels.shape)
    return cv2.resize(pixels, (max(1, round(pixels.shape[1] * scale)), max(1, round(pixels.shape[0] * scale))))


def new_model_name(base: str) -> str:
    """A fresh registry name for a model adapted from ``base``."""
    import time

    return registry.check_name(f"{base}-site-{time.strftime('%Y%m%d-%H%M%S')}")


def adapted_figures(metadata: dict) -> list[dict[str, str]]:
    """Rows for the page: the adapted model out of fold, the base model on the same images, and the
    adapted model at home, each with its number of images."""
    adaptation = metadata["adaptation"]
    # models adapted before home images were replayed were scored on the whole validation split
    home = "validation patients, not replayed" if "replayed_home_images" in adaptation else "validation split"
    rows = []
    for label, report in (
        (f"{metadata['name']}: site-adapted, out of fold", metadata["test"]),
        (f"{adaptation['base_model']} before adapting (same images)", adaptation["before"]),
        (
            f"{metadata['name']} at home ({adaptation['base_model']}'s {home})",
            adaptation.get("home"),
        ),
    ):
        if report:
            rows.append({
                "what": label, "images": str(report["n"]), "AUC": f"{report['auc']:.3f}",
                **{k: percent(report[k]) for k in ("accuracy", "sensitivity", "specificity")},
                "ECE": f"{report['ece']:.3f}",
            })  # fmt: skip
    return rows

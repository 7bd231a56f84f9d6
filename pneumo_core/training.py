"""A training run: data -> fit -> calibrate on validation -> report on test -> registry.

``train`` is the one entry point, used by ``train.py`` and so by the app's Retrain page (through a
subprocess running ``train.py``); ``recalibrate`` redoes the calibration of a trained network.
Progress goes to an ``on_event`` callback as plain dicts (``progress``). The steps live in their own
modules: ``data`` (listing, patient-grouped split, loading), ``fitting`` (the recipe),
``calibration`` and ``registry``.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import registry
from .calibration import calibrate, fit_feature_gate
from .card import model_card
from .config import TrainingConfig, contract_for
from .contract import ModelContract
from .data import Sample, class_weights, list_split, load_arrays, summarize, training_split
from .evaluation import evaluate, expected_calibration_error, shift_prevalence, sigmoid, summary
from .gate import GATE_FILE
from .progress import EventHandler, StopCheck, TrainingCancelled, check_stop, emit, loading, stage
from .site import REFERENCE_FILE, SiteReference

__all__ = ["TrainResult", "TrainingCancelled", "recalibrate", "train"]


@dataclass
class TrainResult:
    path: Path
    metadata: dict[str, Any]


@dataclass
class _Split:
    """Images of one split, loaded unframed through the contract."""

    samples: list[Sample]
    x: np.ndarray
    y: np.ndarray


def _load(samples: list[Sample], contract: ModelContract, name: str, on_event: EventHandler | None) -> _Split:
    x, y = load_arrays(samples, contract, loading(on_event, name))
    return _Split(samples, x, y)


def train(
    data_dir: Path,
    config: TrainingConfig,
    out: Path,
    *,
    on_event: EventHandler | None = None,
    should_stop: StopCheck | None = None,
    distribute: str = "auto",
    weights: str | None = None,
) -> TrainResult:
    """Train, calibrate and register a model at ``out``. Raises ``TrainingCancelled`` if stopped
    at any step before the model is written; a cancelled run leaves the registry unchanged."""
    from .fitting import FitData, fit

    started = time.time()
    contract = contract_for(config)
    stage(on_event, should_stop, "Listing images")
    fit_samples, val_samples = training_split(data_dir, config)
    stage(on_event, should_stop, f"Loading {len(fit_samples)} training and {len(val_samples)} validation images")
    fit_split = _load(fit_samples, contract, "train", on_event)
    val_split = _load(val_samples, contract, "validation", on_event)
    weights_by_class = class_weights(fit_split.y)
    data = FitData(fit_split.x, fit_split.y, val_split.x, val_split.y, weights_by_class)
    fitted = fit(
        contract, config, data, on_event=on_event, should_stop=should_stop, distribute=distribute, weights=weights
    )
    run = {
        "training_config": config.to_dict(),
        **fitted.record(),
        "training_seconds": round(time.time() - started, 1),
        "data": {"class_weights": weights_by_class},
    }
    return _calibrate_report_register(
        fitted.model, contract, run, data_dir, out, fit_split, val_split, on_event, should_stop, started,
        write_model=fitted.model.save,
    )  # fmt: skip


def recalibrate(
    model_dir: Path,
    data_dir: Path,
    on_event: EventHandler | None = None,
    *,
    target_sensitivity: float | str | None = "keep",
) -> TrainResult:
    """Redo a trained model's calibration step (the one ``train`` ends with) on its own split.

    The network is unchanged; frame scale, temperature, threshold, input gate, reports, test
    predictions and card are rewritten in place. For models trained before a calibration change.
    ``target_sensitivity`` (a float, or ``None`` for Youden's J) replaces the recorded threshold rule.
    """
    import keras

    started = time.time()
    model_dir = Path(model_dir)
    metadata = registry.read_metadata(model_dir)
    if target_sensitivity != "keep":
        metadata["training_config"]["target_sensitivity"] = target_sensitivity
    config = TrainingConfig.from_dict(metadata["training_config"])
    network_file = model_dir / registry.MODEL_FILE
    model = keras.saving.load_model(network_file, compile=False, safe_mode=True)
    contract = ModelContract.from_dict(metadata["contract"]).with_calibration(
        operating_threshold=0.5, temperature=1.0, frame_scale=1.0
    )
    fit_samples, val_samples = training_split(data_dir, config)
    stage(on_event, None, "Loading training and validation images")
    fit_split = _load(fit_samples, contract, "train", on_event)
    val_split = _load(val_samples, contract, "validation", on_event)
    keep = ("training_config", "parameters", "history", "epochs_run", "training_seconds", "total_seconds",
            "machine", "code", "data", "member_epochs")  # fmt: skip
    run = {key: metadata[key] for key in keep if key in metadata}
    return _calibrate_report_register(
        model, contract, run, data_dir, model_dir, fit_split, val_split, on_event, None, started,
        write_model=lambda target: shutil.copyfile(network_file, target),  # the trained file, byte for byte
    )  # fmt: skip


def _calibrate_report_register(
    model: Any,
    contract: ModelContract,
    run: dict[str, Any],
    data_dir: Path,
    out: Path,
    fit_split: _Split,
    val_split: _Split,
    on_event: EventHandler | None,
    should_stop: StopCheck | None,
    started: float,
    write_model: Callable[[Path], None],
) -> TrainResult:
    """Calibrate on validation, fit the input gate, report on test and write the model folder."""
    from .network import Network

    config = TrainingConfig.from_dict(run["training_config"])
    stage(on_event, should_stop, "Calibrating on validation")
    calibration = calibrate(model, contract, val_split.x, val_split.y, config.target_sensitivity)
    contract = calibration.contract
    threshold = contract.operating_threshold
    validation_report = evaluate(
        val_split.y, calibration.val_probabilities, threshold=threshold, n_resamples=300, seed=config.seed
    )
    stage(on_event, should_stop, "Fitting the input gate")
    feature_gate = fit_feature_gate(model, contract, fit_split.x, calibration.val_embeddings)

    test_samples = list_split(data_dir, "test") if (Path(data_dir) / "test").is_dir() else []
    test_report, predictions = None, []
    if test_samples:
        stage(on_event, should_stop, f"Scoring the {len(test_samples)} test images")
        test = _load(test_samples, contract, "test", on_event)
        logits = Network(model, contract.feature_layers, contract.frame_scale).outputs(test.x)[0]
        test_prob = sigmoid(logits, contract.temperature)
        test_report = evaluate(test.y, test_prob, threshold=threshold, seed=config.seed)
        own = float(np.mean(test.y))  # reported only: how much of the test miscalibration prevalence explains
        test_report["ece_at_own_prevalence"] = {
            "prevalence": own,
            "ece": expected_calibration_error(
                test.y, shift_prevalence(test_prob, contract.calibration_prevalence, own)
            ),
        }
        predictions = [
            {
                "path": str(s.path.relative_to(data_dir)),
                "label": int(s.label),
                "probability_pneumonia": round(float(p), 6),
            }
            for s, p in zip(test_samples, test_prob, strict=True)
        ]

    metadata = {
        **run,
        "name": Path(out).name,
        "created_unix": time.time(),
        "created": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "contract": contract.to_dict(),
        "threshold_method": calibration.threshold_method,
        "calibration": {
            "method": "frame scale and temperature by validation log-loss",
            "log_loss_by_frame_scale": calibration.log_loss_by_frame_scale,
        },
        "data": {
            "source": str(data_dir),
            "train": summarize(fit_split.samples),
            "validation": summarize(val_split.samples),
            "test": summarize(test_samples) if test_samples else None,
            "class_weights": run["data"]["class_weights"],
        },
        "total_seconds": run.get("total_seconds", round(time.time() - started, 1)),
        "feature_gate": {"layers": list(contract.feature_layers), "thresholds": feature_gate.thresholds},
        "validation": validation_report,
        "test": test_report,
    }
    writers = {registry.MODEL_FILE: write_model, GATE_FILE: feature_gate.save}
    patients = np.unique([s.patient_id for s in val_split.samples], return_inverse=True)[1]
    if SiteReference.enough(val_split.y, patients):  # a small retraining run's validation split is too small
        reference = SiteReference(calibration.val_embeddings, val_split.y, calibration.val_probabilities, patients)
        writers[REFERENCE_FILE] = reference.save
    stage(on_event, should_stop, "Registering the model")
    path = registry.save_model_folder(
        Path(out), writers, metadata, predictions,
        model_card(metadata), before_commit=lambda: check_stop(should_stop),
    )  # fmt: skip
    emit(
        on_event, "done", path=str(path), validation=summary(validation_report),
        test=summary(test_report) if test_report else None,
    )  # fmt: skip
    return TrainResult(path, metadata)

"""Training: data -> model -> fit -> calibrate on validation -> report on test -> registry.

``train`` is the one entry point, used by ``train.py`` and by the app's Retrain page (through a
subprocess running ``train.py``). Progress goes to an ``on_event`` callback as plain dicts.
"""

from __future__ import annotations

import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import registry
from .card import model_card
from .contract import ModelContract, TrainingConfig
from .data import class_weights, list_split, load_arrays, summarize, training_split
from .evaluation import choose_threshold, evaluate, fit_temperature, sigmoid, summary
from .gate import GATE_FILE, FeatureGate

Event = dict[str, Any]
EventHandler = Callable[[Event], None]


class TrainingCancelled(RuntimeError):
    """The run was stopped on request; nothing was written to the registry."""


@dataclass
class TrainResult:
    path: Path
    metadata: dict[str, Any]


def _emit(handler: EventHandler | None, kind: str, **payload: Any) -> None:
    if handler is not None:
        handler({"type": kind, "time": time.time(), **payload})


def _progress_callback(handler: EventHandler | None, should_stop: Callable[[], bool] | None, epochs: int):
    import keras

    class Progress(keras.callbacks.Callback):
        """Forwards progress to ``handler`` and stops training when ``should_stop()`` says so."""

        def __init__(self) -> None:
            super().__init__()
            self.cancelled = False
            self.start = time.time()
            self.steps = 0

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.epoch_start = time.time()
            _emit(handler, "epoch_begin", epoch=epoch + 1, epochs=epochs)

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            steps = self.params.get("steps") or 1
            done_fraction = (self.epoch_index + (batch + 1) / steps) / epochs
            elapsed = time.time() - self.start
            eta = elapsed / done_fraction - elapsed if done_fraction > 0 else None
            _emit(
                handler, "batch", epoch=self.epoch_index + 1, epochs=epochs, step=batch + 1, steps=steps,
                loss=float((logs or {}).get("loss", float("nan"))), eta_s=eta, progress=done_fraction,
            )  # fmt: skip
            if should_stop is not None and should_stop():
                self.cancelled = True
                self.model.stop_training = True

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            self.epoch_index = epoch + 1
            clean = {k: float(v) for k, v in (logs or {}).items()}
            clean["learning_rate"] = float(self.model.optimizer.learning_rate.numpy())
            _emit(
                handler, "epoch_end", epoch=epoch + 1, epochs=epochs, logs=clean, seconds=time.time() - self.epoch_start
            )

        epoch_index = 0

    return Progress()


def _strategy(distribute: str):
    import tensorflow as tf

    if distribute == "mirrored" or (distribute == "auto" and len(tf.config.list_physical_devices("GPU")) > 1):
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def mixup_batches(
    x: np.ndarray, y: np.ndarray, class_weight: dict[int, float], batch_size: int, alpha: float, seed: int
):
    """Shuffled batches of mixup pairs (Zhang et al. 2018): images and labels blended with
    lambda ~ Beta(alpha, alpha); the class weights blend the same way, as sample weights."""
    import keras

    class Batches(keras.utils.PyDataset):
        def __init__(self) -> None:
            super().__init__()
            self.rng = np.random.default_rng(seed)
            self.order = self.rng.permutation(len(x))
            self.weights = np.array([class_weight[int(label)] for label in y], dtype=np.float32)

        def __len__(self) -> int:
            return int(np.ceil(len(x) / batch_size))

        def __getitem__(self, index: int):
            first = self.order[index * batch_size : (index + 1) * batch_size]
            second = self.rng.permutation(first)
            lam = self.rng.beta(alpha, alpha, size=len(first)).astype(np.float32)
            images = lam[:, None, None, None] * x[first] + (1 - lam[:, None, None, None]) * x[second]
            labels = lam * y[first] + (1 - lam) * y[second]
            weights = lam * self.weights[first] + (1 - lam) * self.weights[second]
            return images, labels.astype(np.float32), weights

        def on_epoch_end(self) -> None:
            self.order = self.rng.permutation(len(x))

    return Batches()


def fit_feature_gate(classifier: Any, x_fit: np.ndarray, val_embeddings: np.ndarray) -> FeatureGate:
    """The input gate from ~2000 evenly spaced training images and all validation images."""
    fit_embeddings = classifier.raw_outputs(x_fit[:: max(1, len(x_fit) // 2000)])[1]
    return FeatureGate.fit(fit_embeddings, val_embeddings, classifier.feature_sizes)


def refit_gate(model_dir: Path, data_dir: Path, feature_layer_names: tuple[str, ...]) -> FeatureGate:
    """Refit a trained model's input gate on its own training/validation split (same seed).

    For upgrading the gate of an existing model without retraining it; ``train`` fits the same
    gate through the same function.
    """
    import json

    from .classifier import Classifier

    metadata = registry.read_metadata(Path(model_dir))
    config = TrainingConfig.from_dict(metadata["training_config"])
    contract = ModelContract.from_dict({**metadata["contract"], "feature_layers": list(feature_layer_names)})
    loaded = Classifier.load(model_dir)
    classifier = Classifier(loaded.model, contract, metadata, Path(model_dir), None)
    fit_samples, val_samples = training_split(data_dir, config)
    x_fit, _ = load_arrays(fit_samples, contract)
    x_val, _ = load_arrays(val_samples, contract)
    gate = fit_feature_gate(classifier, x_fit, classifier.raw_outputs(x_val)[1])
    gate.save(Path(model_dir) / GATE_FILE)
    metadata["contract"] = contract.to_dict()
    metadata["feature_gate"] = {"layers": list(contract.feature_layers), "thresholds": gate.thresholds}
    (Path(model_dir) / registry.METADATA_FILE).write_text(json.dumps(metadata, indent=2))
    return gate


def train(
    data_dir: Path,
    config: TrainingConfig,
    out: Path,
    *,
    on_event: EventHandler | None = None,
    should_stop: Callable[[], bool] | None = None,
    distribute: str = "auto",
    weights: str | None = None,
) -> TrainResult:
    """Train, calibrate and register a model at ``out``. Raises ``TrainingCancelled`` if stopped."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    from .classifier import Classifier
    from .model import build_model, feature_layers

    started = time.time()
    keras.utils.set_random_seed(config.seed)
    contract = ModelContract(input_size=config.image_size, feature_layers=feature_layers(config.arch))

    _emit(on_event, "stage", message="Listing images")
    fit_samples, val_samples = training_split(data_dir, config)
    test_dir = Path(data_dir) / "test"
    test_samples = list_split(data_dir, "test") if test_dir.is_dir() else []

    def loading(split: str) -> Callable[[int, int], None]:
        return lambda done, total: _emit(on_event, "loading", split=split, done=done, total=total)

    _emit(on_event, "stage", message=f"Loading {len(fit_samples)} training and {len(val_samples)} validation images")
    x_fit, y_fit = load_arrays(fit_samples, contract, loading("train"))
    x_val, y_val = load_arrays(val_samples, contract, loading("validation"))
    weights_by_class = class_weights(y_fit)

    strategy = _strategy(distribute)
    with strategy.scope():
        model = build_model(contract, config, weights)
        model.compile(
            optimizer=keras.optimizers.Adam(config.learning_rate),
            loss=keras.losses.BinaryCrossentropy(from_logits=True, label_smoothing=config.label_smoothing),
            metrics=[keras.metrics.AUC(name="auc", from_logits=True)],
        )
    checkpoint_dir = Path(tempfile.mkdtemp(prefix="pneumo-ckpt-"))
    progress = _progress_callback(on_event, should_stop, config.epochs)
    callbacks = [
        progress,
        keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=config.early_stopping_patience, restore_best_weights=True
        ),
        keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2, min_lr=1e-5),
        keras.callbacks.ModelCheckpoint(checkpoint_dir / "best.keras", monitor="val_loss", save_best_only=True),
    ]
    _emit(on_event, "stage", message="Training")
    try:
        validation = (x_val, y_val.astype(np.float32))
        if config.mixup > 0:
            batches = mixup_batches(x_fit, y_fit, weights_by_class, config.batch_size, config.mixup, config.seed)
            history = model.fit(
                batches, validation_data=validation, epochs=config.epochs, callbacks=callbacks, verbose=0
            )
        else:
            history = model.fit(
                x_fit, y_fit.astype(np.float32), validation_data=validation, epochs=config.epochs,
                batch_size=config.batch_size, class_weight=weights_by_class, callbacks=callbacks, verbose=0, shuffle=True,
            )  # fmt: skip
    finally:
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
    if progress.cancelled:
        raise TrainingCancelled("training was cancelled; the registry is unchanged")
    fit_seconds = time.time() - started

    _emit(on_event, "stage", message="Calibrating on validation")
    classifier = Classifier(model, contract, {}, Path(out), None)
    val_logits, val_embeddings = classifier.raw_outputs(x_val)
    temperature = fit_temperature(y_val, val_logits)
    val_prob = sigmoid(val_logits, temperature)
    threshold, threshold_method = choose_threshold(y_val, val_prob, target_sensitivity=config.target_sensitivity)
    contract = contract.with_calibration(operating_threshold=threshold, temperature=temperature)
    validation_report = evaluate(y_val, val_prob, threshold=threshold, n_resamples=300, seed=config.seed)

    feature_gate = fit_feature_gate(classifier, x_fit, val_embeddings)
    del x_fit

    test_report, predictions = None, []
    if test_samples:
        _emit(on_event, "stage", message=f"Reporting on {len(test_samples)} test images")
        x_test, y_test = load_arrays(test_samples, contract, loading("test"))
        test_prob = sigmoid(classifier.raw_outputs(x_test)[0], temperature)
        test_report = evaluate(y_test, test_prob, threshold=threshold, seed=config.seed)
        predictions = [
            {
                "path": str(s.path.relative_to(data_dir)),
                "label": int(s.label),
                "probability_pneumonia": round(float(p), 6),
            }
            for s, p in zip(test_samples, test_prob, strict=True)
        ]

    import tensorflow as tf

    metadata = {
        "name": Path(out).name,
        "created_unix": time.time(),
        "created": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "contract": contract.to_dict(),
        "training_config": config.to_dict(),
        "threshold_method": threshold_method,
        "parameters": int(model.count_params()),
        "data": {
            "source": str(data_dir),
            "train": summarize(fit_samples),
            "validation": summarize(val_samples),
            "test": summarize(test_samples) if test_samples else None,
            "class_weights": weights_by_class,
        },
        "history": {k: [float(v) for v in values] for k, values in history.history.items()},
        "epochs_run": len(history.history.get("loss", [])),
        "training_seconds": round(fit_seconds, 1),
        "total_seconds": round(time.time() - started, 1),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.machine(),
            "cpu_count": os.cpu_count(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
        },
        "feature_gate": {"layers": list(contract.feature_layers), "thresholds": feature_gate.thresholds},
        "validation": validation_report,
        "test": test_report,
    }
    path = registry.save_model_folder(
        Path(out),
        {registry.MODEL_FILE: model.save, GATE_FILE: feature_gate.save},
        metadata,
        predictions,
        model_card(metadata),
    )
    _emit(
        on_event, "done", path=str(path), validation=summary(validation_report),
        test=summary(test_report) if test_report else None,
    )  # fmt: skip
    return TrainResult(path, metadata)

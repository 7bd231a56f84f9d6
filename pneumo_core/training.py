"""Training: data -> model -> fit -> calibrate on validation -> report on test -> registry.

``train`` is the one entry point, used by ``train.py`` and by the app's Retrain page (through a
subprocess running ``train.py``). Progress goes to an ``on_event`` callback as plain dicts.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from . import registry
from .card import model_card
from .contract import ModelContract, TrainingConfig
from .data import class_weights, list_split, load_arrays, summarize, training_split
from .evaluation import (
    choose_threshold,
    evaluate,
    expected_calibration_error,
    shift_prevalence,
    summary,
    temperature_scaled,
)
from .gate import GATE_FILE, FeatureGate
from .imaging import frame

Event = dict[str, Any]
EventHandler = Callable[[Event], None]


FRAME_SCALES = (1.0, 0.97, 0.94, 0.91, 0.88)
"""Candidate inference framings (``ModelContract.frame_scale``), scored on validation."""


class TrainingCancelled(RuntimeError):
    """The run was stopped on request; nothing was written to the registry."""


@dataclass
class TrainResult:
    path: Path
    metadata: dict[str, Any]


def _emit(handler: EventHandler | None, kind: str, **payload: Any) -> None:
    if handler is not None:
        handler({"type": kind, "time": time.time(), **payload})


def _loading(handler: EventHandler | None, split: str) -> Callable[[int, int], None]:
    """A ``load_arrays`` progress callback that emits "loading" events for ``split``."""
    return lambda done, total: _emit(handler, "loading", split=split, done=done, total=total)


def _progress_callback(
    handler: EventHandler | None,
    should_stop: Callable[[], bool] | None,
    epochs: int,
    member: int = 0,
    members: int = 1,
):
    """Progress events for member ``member`` (0-based) of ``members``; fractions and ETA span all."""
    import keras

    where = {"member": member + 1, "members": members}

    class Progress(keras.callbacks.Callback):
        """Forwards progress to ``handler`` and stops training when ``should_stop()`` says so."""

        def __init__(self) -> None:
            super().__init__()
            self.cancelled = False
            self.start = time.time()
            self.steps = 0

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.epoch_start = time.time()
            _emit(handler, "epoch_begin", epoch=epoch + 1, epochs=epochs, **where)

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            steps = self.params.get("steps") or 1
            member_fraction = (self.epoch_index + (batch + 1) / steps) / epochs
            done_fraction = (member + member_fraction) / members
            member_seconds = (time.time() - self.start) / member_fraction  # this member's projected time
            eta = member_seconds * (members - member - member_fraction)
            _emit(
                handler, "batch", epoch=self.epoch_index + 1, epochs=epochs, step=batch + 1, steps=steps,
                loss=float((logs or {}).get("loss", float("nan"))), eta_s=eta, progress=done_fraction, **where,
            )  # fmt: skip
            if should_stop is not None and should_stop():
                self.cancelled = True
                self.model.stop_training = True

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            self.epoch_index = epoch + 1
            clean = {k: float(v) for k, v in (logs or {}).items()}
            clean["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
            _emit(
                handler, "epoch_end", epoch=epoch + 1, epochs=epochs, logs=clean,
                seconds=time.time() - self.epoch_start, **where,
            )  # fmt: skip

        epoch_index = 0

    return Progress()


def _strategy_scope(distribute: str):
    """The scope of TensorFlow's distribution strategy; on another Keras backend (torch, for
    sweeps on a GPU machine without TensorFlow) a no-op."""
    import keras

    if keras.backend.backend() != "tensorflow":
        return contextlib.nullcontext()
    import tensorflow as tf

    if distribute == "mirrored" or (distribute == "auto" and len(tf.config.list_physical_devices("GPU")) > 1):
        return tf.distribute.MirroredStrategy().scope()
    return tf.distribute.get_strategy().scope()


def training_batch(
    x: np.ndarray,
    y: np.ndarray,
    weights: np.ndarray,
    batch_size: int,
    seed: int,
    step: int,
    *,
    mixup: float = 0.0,
    border_erase: float = 0.0,
    balanced: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training batch number ``step`` (counted across epochs): images, labels, sample weights.

    Each epoch is a fresh permutation; everything is drawn from generators seeded by
    (seed, epoch, batch), so batches do not depend on the order they are built in.

    - ``balanced``: each epoch instead draws ``len(x)`` images with replacement, every class
      equally likely (balanced sampling, in place of class weights: pass ``weights`` of ones).
    - ``mixup`` > 0: pairs blended with lambda ~ Beta(mixup, mixup) (Zhang et al. 2018); labels and
      the per-sample ``weights`` (class weights) blend the same way.
    - ``border_erase`` > 0: with this probability per image, each side's border band is blacked out
      to a random depth of up to 12% of the side, where burned-in text and markers sit, so the
      model cannot lean on them.
    """
    steps = int(np.ceil(len(x) / batch_size))
    epoch, index = divmod(int(step), steps)
    if balanced:
        classes = y.astype(int)
        chance = (1.0 / np.bincount(classes))[classes]
        order = np.random.default_rng([seed, epoch]).choice(len(x), size=len(x), p=chance / chance.sum())
    else:
        order = np.random.default_rng([seed, epoch]).permutation(len(x))
    rng = np.random.default_rng([seed, epoch, index])
    first = order[index * batch_size : (index + 1) * batch_size]
    images, labels, blended = x[first].copy(), y[first].astype(np.float32), weights[first].copy()
    if mixup > 0:
        second = rng.permutation(first)
        lam = rng.beta(mixup, mixup, size=len(first)).astype(np.float32)
        images = lam[:, None, None, None] * images + (1 - lam[:, None, None, None]) * x[second]
        labels = lam * labels + (1 - lam) * y[second]
        blended = lam * blended + (1 - lam) * weights[second]
    if border_erase > 0:
        size = images.shape[1]
        depths = rng.integers(0, round(0.12 * size) + 1, size=(len(first), 4))
        for image, erase, (top, bottom, left, right) in zip(
            images, rng.random(len(first)) < border_erase, depths, strict=True
        ):
            if erase:
                image[:top], image[size - bottom :], image[:, :left], image[:, size - right :] = 0, 0, 0, 0
    return images.astype(np.float32), labels.astype(np.float32), blended.astype(np.float32)


def training_dataset(
    x: np.ndarray,
    y: np.ndarray,
    class_weight: dict[int, float],
    config: TrainingConfig,
):
    """``(tf.data.Dataset, steps_per_epoch)`` of ``training_batch`` for ``config.epochs`` epochs.

    Built on two threads ahead of the model, so batch building overlaps training.
    """
    import tensorflow as tf

    if config.balanced_sampling:
        weights = np.ones(len(y), dtype=np.float32)
    else:
        weights = np.array([class_weight[int(label)] for label in y], dtype=np.float32)
    labels = y.astype(np.float32)
    steps = int(np.ceil(len(x) / config.batch_size))
    size = x.shape[1:]

    def make(step: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return training_batch(
            x, labels, weights, config.batch_size, config.seed, int(step),
            mixup=config.mixup, border_erase=config.border_erase, balanced=config.balanced_sampling,
        )  # fmt: skip

    def build(step):
        images, mixed, blended = tf.numpy_function(make, [step], [tf.float32, tf.float32, tf.float32])
        return tf.ensure_shape(images, [None, *size]), tf.ensure_shape(mixed, [None]), tf.ensure_shape(blended, [None])

    dataset = tf.data.Dataset.range(steps * config.epochs).map(build, num_parallel_calls=2, deterministic=True)
    return dataset.prefetch(2), steps


def framed(images: np.ndarray, scale: float) -> np.ndarray:
    """``imaging.frame`` over a batch ``(N, S, S, 1)``."""
    return images if scale == 1.0 else np.stack([frame(image, scale) for image in images])


def fit_feature_gate(classifier: Any, x_fit: np.ndarray, val_embeddings: np.ndarray) -> FeatureGate:
    """The input gate from ~2000 evenly spaced training images and all validation images.

    ``x_fit`` is unframed; it is framed here as the classifier's contract says.
    """
    sample = framed(x_fit[:: max(1, len(x_fit) // 2000)], classifier.contract.frame_scale)
    fit_embeddings = classifier.raw_outputs(sample)[1]
    return FeatureGate.fit(fit_embeddings, val_embeddings, classifier.feature_sizes)


@dataclass
class Calibration:
    contract: ModelContract
    threshold_method: str
    val_probabilities: np.ndarray
    val_embeddings: np.ndarray
    log_loss_by_frame_scale: dict[str, float]


def calibrate(
    classifier: Any, x_val: np.ndarray, y_val: np.ndarray, target_sensitivity: float | None = None
) -> Calibration:
    """Frame scale and temperature by calibrated validation log-loss, then the operating threshold.

    ``x_val`` is unframed (loaded with ``frame_scale`` 1.0); ``classifier`` only provides the
    network, its contract's calibration is replaced.
    """
    from .classifier import Classifier

    scores, best = {}, None
    for scale in FRAME_SCALES:
        candidate = classifier.contract.with_calibration(operating_threshold=0.5, temperature=1.0, frame_scale=scale)
        framed_classifier = Classifier(classifier.model, candidate, {}, classifier.path, None)
        logits, embeddings = framed_classifier.raw_outputs(framed(x_val, scale))
        temperature, probabilities, scores[f"{scale:.2f}"] = temperature_scaled(y_val, logits)
        if best is None or scores[f"{scale:.2f}"] < best[0]:
            best = (scores[f"{scale:.2f}"], scale, temperature, probabilities, embeddings)
    _, scale, temperature, probabilities, embeddings = best
    threshold, method = choose_threshold(y_val, probabilities, target_sensitivity=target_sensitivity)
    contract = classifier.contract.with_calibration(
        operating_threshold=threshold, temperature=temperature, frame_scale=scale,
        calibration_prevalence=round(float(np.mean(y_val)), 4),
    )  # fmt: skip
    return Calibration(contract, method, probabilities, embeddings, scores)


def contract_for(config: TrainingConfig) -> ModelContract:
    """The contract a configuration trains for, before calibration: input size, normalization and
    the input gate's feature layers (training, and benchmarks that retrain, load images through it)."""
    from .model import feature_layers

    return ModelContract(
        input_size=config.image_size,
        normalization=config.normalization,
        feature_layers=feature_layers(config.arch, config.members),
    )


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
    from .model import merge_members

    started = time.time()
    contract = contract_for(config)

    _emit(on_event, "stage", message="Listing images")
    fit_samples, val_samples = training_split(data_dir, config)

    _emit(on_event, "stage", message=f"Loading {len(fit_samples)} training and {len(val_samples)} validation images")
    x_fit, y_fit = load_arrays(fit_samples, contract, _loading(on_event, "train"))
    x_val, y_val = load_arrays(val_samples, contract, _loading(on_event, "validation"))
    weights_by_class = class_weights(y_fit)

    members, histories = [], []
    for member in range(config.members):
        model, history = _fit_member(
            contract, replace(config, seed=config.seed + member), member, (x_fit, y_fit), (x_val, y_val),
            weights_by_class, on_event, should_stop, distribute, weights,
        )  # fmt: skip
        members.append(model)
        histories.append(history)
    model = members[0] if config.members == 1 else merge_members(contract, config, members)
    fit_seconds = time.time() - started

    import tensorflow as tf

    run = {
        "name": Path(out).name,
        "training_config": config.to_dict(),
        "parameters": int(model.count_params()),
        "history": {key: [v for history in histories for v in history.get(key, [])] for key in histories[0]},
        "member_epochs": [len(history.get("loss", [])) for history in histories],
        "epochs_run": sum(len(history.get("loss", [])) for history in histories),
        "training_seconds": round(fit_seconds, 1),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.machine(),
            "cpu_count": os.cpu_count(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
        },
        "data": {"class_weights": weights_by_class},
    }
    return _calibrate_and_save(
        Classifier(model, contract, {}, Path(out), None), run, data_dir, out,
        (fit_samples, x_fit), (val_samples, x_val, y_val), on_event, started,
    )  # fmt: skip


def loss(config: TrainingConfig) -> Any:
    """The training loss: binary cross-entropy on the logit, with ``config.label_smoothing``."""
    import keras

    return keras.losses.BinaryCrossentropy(from_logits=True, label_smoothing=config.label_smoothing)


def optimizer(config: TrainingConfig, learning_rate: Any) -> Any:
    """Adam; AdamW when ``config.weight_decay`` is set (kernels only), keeping a moving average of
    the weights when ``config.weight_average`` is set."""
    import keras

    averaging = {"use_ema": True, "ema_momentum": config.weight_average} if config.weight_average else {}
    if not config.weight_decay:
        return keras.optimizers.Adam(learning_rate, **averaging)
    adamw = keras.optimizers.AdamW(learning_rate, weight_decay=config.weight_decay, **averaging)
    adamw.exclude_from_weight_decay(var_names=["gamma", "beta", "bias"])
    return adamw


def reestimate_batchnorm(model: Any, images: np.ndarray, batch_size: int = 64) -> None:
    """Replace every BatchNorm layer's moving statistics with the mean of its batch statistics over
    ``images`` at the current weights ("precise BatchNorm", Wu & Johnson 2021).

    The images pass through the model as in training (augmentation and dropout active, as when the
    moving averages are normally updated), with the weights fixed. Each layer's momentum is set to
    ``1 - 1/k`` for the k-th batch, so the moving statistics become the plain mean of the per-batch
    statistics, then restored.
    """
    import keras

    norms = [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)]
    momenta = [layer.momentum for layer in norms]
    for layer in norms:
        layer.moving_mean.assign(keras.ops.zeros_like(layer.moving_mean))
        layer.moving_variance.assign(keras.ops.ones_like(layer.moving_variance))
    try:
        for k, start in enumerate(range(0, len(images), batch_size), start=1):
            for layer in norms:
                layer.momentum = 1.0 - 1.0 / k
            model(images[start : start + batch_size], training=True)
    finally:
        for layer, momentum in zip(norms, momenta, strict=True):
            layer.momentum = momentum


def batchnorm_subset(config: TrainingConfig, x_fit: np.ndarray) -> np.ndarray:
    """The fixed ``config.bn_reestimate`` training images (drawn with ``config.seed``, in training
    order) that re-estimate the BatchNorm statistics."""
    chosen = np.random.default_rng([config.seed, 7]).permutation(len(x_fit))[: config.bn_reestimate]
    return x_fit[np.sort(chosen)]


def _precise_batchnorm_callback(images: np.ndarray):
    import keras

    class PreciseBatchNorm(keras.callbacks.Callback):
        """Re-estimates the BatchNorm statistics before each validation pass, so validation, early
        stopping, the schedule and the kept weights all see the network as it is, not moving
        averages that lag behind it (``benchmarks/bn_statistics.py``)."""

        def on_test_begin(self, logs: dict | None = None) -> None:
            reestimate_batchnorm(self.model, images)

    return PreciseBatchNorm()


def _calibrated_loss_callback(x_val: np.ndarray, y_val: np.ndarray):
    import keras

    class CalibratedValidationLoss(keras.callbacks.Callback):
        """Adds ``val_calibrated_loss`` to each epoch's logs: the validation log-loss of
        ``sigmoid(logit / T)`` with the temperature T fitted on those logits (the unframed images;
        the frame scale is chosen once, at the end)."""

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            logits = np.asarray(self.model.predict(x_val, batch_size=64, verbose=0)).reshape(-1)
            if logs is not None:
                logs["val_calibrated_loss"] = temperature_scaled(y_val, logits)[2]

    return CalibratedValidationLoss()


def epoch_callbacks(
    config: TrainingConfig,
    x_fit: np.ndarray | None = None,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
) -> list[Any]:
    """Early stopping with the best weights restored, and the learning-rate schedule.

    With weight averaging, the averaged weights are swapped into the model at the end of each epoch
    (and for validation), so validation loss, early stopping and the restored model all use them.
    With ``config.bn_reestimate``, ``batchnorm_subset`` of ``x_fit`` re-estimates the BatchNorm
    statistics before each validation pass. Early stopping and the plateau schedule follow
    ``config.monitor``; for ``"val_calibrated_loss"``, ``validation`` (images, labels) is scored
    once more at the end of each epoch.
    """
    import keras

    callbacks = []
    if config.bn_reestimate:
        if x_fit is None:
            raise ValueError("bn_reestimate needs the training images")
        callbacks.append(_precise_batchnorm_callback(batchnorm_subset(config, x_fit)))
    if config.weight_average:
        callbacks.append(keras.callbacks.SwapEMAWeights(swap_on_epoch=True))  # before EarlyStopping copies weights
    if config.monitor == "val_calibrated_loss":
        if validation is None:
            raise ValueError("monitor val_calibrated_loss needs the validation images")
        callbacks.append(_calibrated_loss_callback(*validation))  # before the callbacks that read it
    callbacks.append(
        keras.callbacks.EarlyStopping(
            monitor=config.monitor, mode="min", patience=config.early_stopping_patience, restore_best_weights=True
        )
    )
    if config.lr_schedule == "plateau":
        callbacks.append(
            keras.callbacks.ReduceLROnPlateau(monitor=config.monitor, mode="min", factor=0.5, patience=2, min_lr=1e-5)
        )
    return callbacks


def _fit_member(
    contract: ModelContract,
    config: TrainingConfig,
    member: int,
    fit: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    weights_by_class: dict[int, float],
    on_event: EventHandler | None,
    should_stop: Callable[[], bool] | None,
    distribute: str,
    weights: str | None,
) -> tuple[Any, dict[str, list[float]]]:
    """Build and fit one network (seeded by ``config.seed``); raises ``TrainingCancelled``."""
    import keras

    from .model import build_model

    keras.utils.set_random_seed(config.seed)
    (x_fit, y_fit), (x_val, y_val) = fit, val
    steps = int(np.ceil(len(x_fit) / config.batch_size))
    learning_rate = config.learning_rate
    if config.lr_schedule == "cosine":
        learning_rate = keras.optimizers.schedules.CosineDecay(config.learning_rate, steps * config.epochs, alpha=0.01)
    with _strategy_scope(distribute):
        model = build_model(contract, config, weights)
        model.compile(
            optimizer=optimizer(config, learning_rate),
            loss=loss(config),
            metrics=[keras.metrics.AUC(name="auc", from_logits=True)],
        )
    progress = _progress_callback(on_event, should_stop, config.epochs, member, config.members)
    scheduled = epoch_callbacks(config, x_fit, (x_val, y_val))
    readers = (keras.callbacks.EarlyStopping, keras.callbacks.ReduceLROnPlateau)
    # progress after the callbacks that add to the logs, before those that change the learning rate
    callbacks = [
        *(c for c in scheduled if not isinstance(c, readers)),
        progress,
        *(c for c in scheduled if isinstance(c, readers)),
    ]
    which = f" member {member + 1} of {config.members}" if config.members > 1 else ""
    _emit(on_event, "stage", message=f"Training{which}")
    validation = (x_val, y_val.astype(np.float32))
    if config.mixup > 0 or config.border_erase > 0 or config.balanced_sampling:
        batches, steps = training_dataset(x_fit, y_fit, weights_by_class, config)
        # shuffle=False: training_batch draws each epoch's order itself (Keras would only warn)
        history = model.fit(
            batches, validation_data=validation, epochs=config.epochs, steps_per_epoch=steps, shuffle=False,
            callbacks=callbacks, verbose=0,
        )  # fmt: skip
    else:
        history = model.fit(
            x_fit, y_fit.astype(np.float32), validation_data=validation, epochs=config.epochs,
            batch_size=config.batch_size, class_weight=weights_by_class, callbacks=callbacks, verbose=0, shuffle=True,
        )  # fmt: skip
    if progress.cancelled:
        raise TrainingCancelled("training was cancelled; the registry is unchanged")
    return model, {k: [float(v) for v in values] for k, values in history.history.items()}


def _calibrate_and_save(
    classifier: Any,
    run: dict[str, Any],
    data_dir: Path,
    out: Path,
    fit: tuple[list, np.ndarray],
    val: tuple[list, np.ndarray, np.ndarray],
    on_event: EventHandler | None,
    started: float,
    write_model: Callable[[Path], None] | None = None,
) -> TrainResult:
    """Calibrate on validation, fit the input gate, report on test and write the model folder.

    Shared by ``train`` and ``recalibrate``; ``run`` holds what the training run recorded.
    """
    from .classifier import Classifier

    config = TrainingConfig.from_dict(run["training_config"])
    (fit_samples, x_fit), (val_samples, x_val, y_val) = fit, val
    _emit(on_event, "stage", message="Calibrating on validation")
    calibration = calibrate(classifier, x_val, y_val, config.target_sensitivity)
    contract = calibration.contract
    classifier = Classifier(classifier.model, contract, {}, Path(out), None)
    threshold = contract.operating_threshold
    validation_report = evaluate(
        y_val, calibration.val_probabilities, threshold=threshold, n_resamples=300, seed=config.seed
    )
    feature_gate = fit_feature_gate(classifier, x_fit, calibration.val_embeddings)

    test_samples = list_split(data_dir, "test") if (Path(data_dir) / "test").is_dir() else []
    test_report, predictions = None, []
    if test_samples:
        _emit(on_event, "stage", message=f"Reporting on {len(test_samples)} test images")
        x_test, y_test = load_arrays(test_samples, contract, _loading(on_event, "test"))
        test_prob = classifier.probabilities(x_test)
        test_report = evaluate(y_test, test_prob, threshold=threshold, seed=config.seed)
        own = float(np.mean(y_test))  # reported only: how much of the test miscalibration prevalence explains
        test_report["ece_at_own_prevalence"] = {
            "prevalence": own,
            "ece": expected_calibration_error(
                y_test, shift_prevalence(test_prob, contract.calibration_prevalence, own)
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
            "train": summarize(fit_samples),
            "validation": summarize(val_samples),
            "test": summarize(test_samples) if test_samples else None,
            "class_weights": run["data"]["class_weights"],
        },
        "total_seconds": run.get("total_seconds", round(time.time() - started, 1)),
        "feature_gate": {"layers": list(contract.feature_layers), "thresholds": feature_gate.thresholds},
        "validation": validation_report,
        "test": test_report,
    }
    path = registry.save_model_folder(
        Path(out),
        {registry.MODEL_FILE: write_model or classifier.model.save, GATE_FILE: feature_gate.save},
        metadata,
        predictions,
        model_card(metadata),
    )
    _emit(
        on_event, "done", path=str(path), validation=summary(validation_report),
        test=summary(test_report) if test_report else None,
    )  # fmt: skip
    return TrainResult(path, metadata)


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
    from .classifier import Classifier

    started = time.time()
    model_dir = Path(model_dir)
    metadata = registry.read_metadata(model_dir)
    if target_sensitivity != "keep":
        metadata["training_config"]["target_sensitivity"] = target_sensitivity
    config = TrainingConfig.from_dict(metadata["training_config"])
    loaded = Classifier.load(model_dir)
    base = loaded.contract.with_calibration(operating_threshold=0.5, temperature=1.0, frame_scale=1.0)
    classifier = Classifier(loaded.model, base, {}, model_dir, None)
    fit_samples, val_samples = training_split(data_dir, config)
    _emit(on_event, "stage", message="Loading training and validation images")
    x_fit, _ = load_arrays(fit_samples, base)
    x_val, y_val = load_arrays(val_samples, base)
    keep = (
        "training_config",
        "parameters",
        "history",
        "epochs_run",
        "training_seconds",
        "total_seconds",
        "machine",
        "data",
        "member_epochs",
    )
    run = {key: metadata[key] for key in keep if key in metadata}
    network = model_dir / registry.MODEL_FILE  # the trained file itself, byte for byte
    return _calibrate_and_save(
        classifier, run, data_dir, model_dir, (fit_samples, x_fit), (val_samples, x_val, y_val), on_event, started,
        write_model=lambda target: shutil.copyfile(network, target),
    )  # fmt: skip

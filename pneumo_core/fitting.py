"""The fit recipe: build, compile and fit each network of a configuration, then merge them.

Adam on binary cross-entropy of the logit with label smoothing, inverse-frequency class weights,
early stopping on validation loss with the best weights restored, and the learning rate halved
when validation loss stalls. Images arrive as arrays from ``data.load_arrays``.
"""

from __future__ import annotations

import contextlib
import os
import platform
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .config import TrainingConfig
from .contract import ModelContract
from .progress import EventHandler, StopCheck, TrainingCancelled, keras_progress, stage


@dataclass
class FitData:
    """What a fit learns from: training and validation arrays (``data.load_arrays``) and the
    class weights of the training labels."""

    x_fit: np.ndarray
    y_fit: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    class_weight: dict[int, float]


@dataclass
class FitResult:
    """The trained network (merged if several) and what the fit recorded."""

    model: Any
    histories: list[dict[str, list[float]]]

    def record(self) -> dict[str, Any]:
        """The fit's part of a model's metadata."""
        import keras
        import tensorflow as tf

        return {
            "parameters": int(self.model.count_params()),
            "history": {key: [v for h in self.histories for v in h.get(key, [])] for key in self.histories[0]},
            "member_epochs": [len(h.get("loss", [])) for h in self.histories],
            "epochs_run": sum(len(h.get("loss", [])) for h in self.histories),
            "machine": {
                "platform": platform.platform(),
                "processor": platform.machine(),
                "cpu": _cpu_model(),
                "cpu_count": os.cpu_count(),
                "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count(),
                "tensorflow": tf.__version__,
                "keras": keras.__version__,
            },
            "code": _code_version(),
        }


def _cpu_model() -> str:
    """The CPU's model name (Linux), else what ``platform`` knows: results depend on it."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _code_version() -> dict[str, Any] | None:
    """The project's git commit, and whether the working tree differed from it (``None`` outside git)."""
    import subprocess
    from pathlib import Path

    project = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=project, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "pneumo_core", "train.py"],
            cwd=project, capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "modified": bool(changed)}


def fit(
    contract: ModelContract,
    config: TrainingConfig,
    data: FitData,
    *,
    on_event: EventHandler | None = None,
    should_stop: StopCheck | None = None,
    distribute: str = "auto",
    weights: str | None = None,
) -> FitResult:
    """Fit ``config.members`` networks one after the other (seeds ``seed``, ``seed + 1``, ...) and
    merge them into one model averaging their logits. Raises ``TrainingCancelled`` if stopped."""
    from .model import merge_members

    members, histories = [], []
    for member in range(config.members):
        which = f" member {member + 1} of {config.members}" if config.members > 1 else ""
        stage(on_event, should_stop, f"Training{which}")
        model, history = _fit_member(
            contract, replace(config, seed=config.seed + member), data,
            keras_progress(on_event, should_stop, config.epochs, member, config.members), distribute, weights,
        )  # fmt: skip
        members.append(model)
        histories.append(history)
    merged = members[0] if config.members == 1 else merge_members(contract, config, members)
    return FitResult(merged, histories)


def epoch_callbacks(config: TrainingConfig) -> list[Any]:
    """Early stopping with the best weights restored, and the plateau schedule (halve the learning
    rate when validation loss stalls for 2 epochs)."""
    import keras

    return [
        keras.callbacks.EarlyStopping(
            monitor="val_loss", mode="min", patience=config.early_stopping_patience, restore_best_weights=True
        ),
        keras.callbacks.ReduceLROnPlateau(monitor="val_loss", mode="min", factor=0.5, patience=2, min_lr=1e-5),
    ]


def deterministic(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow, and make TensorFlow's ops deterministic (an op without a
    deterministic kernel then raises instead of varying). On one machine (CPU type, thread count and
    TensorFlow build) the same configuration then trains to the same weights; across machines,
    floating-point sums run in another order and the run lands elsewhere within the seed spread."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def _strategy_scope(distribute: str):
    """TensorFlow's distribution strategy scope: mirrored across GPUs when asked (or ``auto`` with
    several GPUs), else the default strategy."""
    import keras

    if keras.backend.backend() != "tensorflow":
        return contextlib.nullcontext()
    import tensorflow as tf

    if distribute == "mirrored" or (distribute == "auto" and len(tf.config.list_physical_devices("GPU")) > 1):
        return tf.distribute.MirroredStrategy().scope()
    return tf.distribute.get_strategy().scope()


def _fit_member(
    contract: ModelContract, config: TrainingConfig, data: FitData, progress: Any, distribute: str, weights: str | None
) -> tuple[Any, dict[str, list[float]]]:
    """Build and fit one network, seeded by ``config.seed``."""
    import keras

    from .model import build_model

    deterministic(config.seed)
    with _strategy_scope(distribute):
        model = build_model(contract, config, weights)
        model.compile(
            optimizer=keras.optimizers.Adam(config.learning_rate),
            loss=keras.losses.BinaryCrossentropy(from_logits=True, label_smoothing=config.label_smoothing),
            metrics=[keras.metrics.AUC(name="auc", from_logits=True)],
        )
    # progress before the callbacks that change the learning rate, so it logs the epoch's own rate
    history = model.fit(
        data.x_fit, data.y_fit.astype(np.float32), validation_data=(data.x_val, data.y_val.astype(np.float32)),
        epochs=config.epochs, batch_size=config.batch_size, class_weight=data.class_weight,
        callbacks=[progress, *epoch_callbacks(config)],
        verbose=0, shuffle=True,
    )  # fmt: skip
    if progress.cancelled:
        raise TrainingCancelled("training was cancelled; the registry is unchanged")
    return model, {k: [float(v) for v in values] for k, values in history.history.items()}

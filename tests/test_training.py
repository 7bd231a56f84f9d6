"""A real (tiny) training run in-process, and cancellation."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import ROOT

from pneumo_core import Classifier
from pneumo_core.contract import TrainingConfig
from pneumo_core.training import FRAME_SCALES, TrainingCancelled, recalibrate, train

TINY = TrainingConfig(epochs=1, train_subset=80, image_size=64, width=8, batch_size=16)


def test_tiny_training_run_registers_a_complete_model(data_root: Path, tmp_path: Path) -> None:
    """Two members with cosine decay, weight decay, weight averaging, CLAHE and balanced sampling
    (the single-member path, with class weights, runs in test_jobs.py through train.py)."""
    events: list[dict] = []
    config = replace(
        TINY,
        members=2,
        lr_schedule="cosine",
        weight_average=0.9,
        weight_decay=0.05,
        monitor="val_calibrated_loss",
        normalization="clahe",
        balanced_sampling=True,
    )
    result = train(data_root, config, tmp_path / "tiny-run", on_event=events.append)
    folder = result.path
    for name in ("model.keras", "metadata.json", "test_predictions.csv", "MODEL_CARD.md", "gate.npz"):
        assert (folder / name).exists(), name
    metadata = json.loads((folder / "metadata.json").read_text())
    assert 0 < metadata["contract"]["operating_threshold"] < 1
    assert metadata["contract"]["input_size"] == 64 and metadata["contract"]["normalization"] == "clahe"
    assert metadata["test"]["n"] == 624 and len((folder / "test_predictions.csv").read_text().splitlines()) == 625
    assert metadata["training_config"]["train_subset"] == 80
    assert metadata["member_epochs"] == [1, 1] and len(metadata["history"]["val_loss"]) == 2
    assert [e["member"] for e in events if e["type"] == "epoch_end"] == [1, 2]
    assert all("val_calibrated_loss" in e["logs"] for e in events if e["type"] == "epoch_end")
    assert len(metadata["history"]["val_calibrated_loss"]) == 2
    progress = [e["progress"] for e in events if e["type"] == "batch"]
    assert progress == sorted(progress) and progress[-1] == pytest.approx(1.0)
    kinds = {e["type"] for e in events}
    assert {"stage", "epoch_begin", "batch", "epoch_end", "done"} <= kinds
    card = (folder / "MODEL_CARD.md").read_text()
    assert "Test" in card and "Reliability" in card and "EMA momentum 0.9" in card
    assert "AdamW (weight decay 0.05 on the kernels)" in card
    assert "early stopping on temperature-calibrated validation log-loss" in card
    assert "intensity normalization `clahe`" in card and "balanced sampling (each epoch" in card
    classifier = Classifier.load(folder)
    assert classifier.model.get_layer("m1_stage4_out") is not None
    assert classifier.contract.operating_threshold == metadata["contract"]["operating_threshold"]
    # the frame scale is the candidate with the lowest validation log-loss
    scores = metadata["calibration"]["log_loss_by_frame_scale"]
    assert len(scores) == len(FRAME_SCALES)
    assert f"{classifier.contract.frame_scale:.2f}" == min(scores, key=scores.get)

    # recalibrating the same network on the same split reproduces the calibration and keeps the run record
    again = recalibrate(folder, data_root).metadata
    assert again["contract"] == metadata["contract"]
    assert again["history"] == metadata["history"] and again["training_seconds"] == metadata["training_seconds"]


def test_cancel_stops_and_writes_nothing(data_root: Path, tmp_path: Path) -> None:
    with pytest.raises(TrainingCancelled):
        train(data_root, TINY, tmp_path / "cancelled", should_stop=lambda: True)
    assert not (tmp_path / "cancelled").exists()


def test_training_batches_mixup_and_border_erase() -> None:
    import numpy as np

    from pneumo_core.training import training_batch, training_dataset

    x = np.stack([np.zeros((50, 50, 1)), np.full((50, 50, 1), 200.0)] * 8).astype(np.float32)
    y = np.array([0, 1] * 8)
    weights = np.where(y == 1, 0.5, 2.0).astype(np.float32)
    labels = y.astype(np.float32)
    images, mixed, mixed_weights = training_batch(x, labels, weights, 4, seed=0, step=0, mixup=0.4)
    assert images.shape == (4, 50, 50, 1) and mixed.shape == (4,) and mixed_weights.shape == (4,)
    # every mixed image is the same blend of its two sources as its label and its weight
    share_of_class_1 = images[:, 25, 25, 0] / 200.0
    assert np.allclose(mixed, share_of_class_1, atol=1e-5)
    assert np.allclose(mixed_weights, 2.0 - 1.5 * share_of_class_1, atol=1e-5)
    # the tf.data pipeline yields exactly these batches, in order, for every epoch
    config = TrainingConfig(batch_size=4, seed=0, epochs=2, mixup=0.4)
    dataset, steps = training_dataset(x, y, {0: 2.0, 1: 0.5}, config)
    batches = list(dataset.as_numpy_iterator())
    assert steps == 4 and len(batches) == 8
    assert np.array_equal(batches[0][0], images)
    later = training_batch(x, labels, weights, 4, seed=0, step=5, mixup=0.4)
    assert np.array_equal(batches[5][1], later[1])
    assert not np.array_equal(batches[1][0], batches[5][0])  # epoch 2 is reshuffled

    # border erase: only border bands (at most 12% deep) go black; the centre and the labels stay
    bright = np.full((16, 50, 50, 1), 200.0, np.float32)
    erased, erased_labels, _ = training_batch(bright, labels, weights, 16, seed=1, step=0, border_erase=1.0)
    assert np.all(erased[:, 6:44, 6:44] == 200.0) and (erased == 0).any()
    assert set(np.unique(erased)) <= {0.0, 200.0} and np.isin(erased_labels, [0.0, 1.0]).all()
    assert np.array_equal(training_batch(bright, labels, weights, 16, seed=1, step=0)[0], bright)


def test_balanced_sampling_draws_both_classes_equally_often() -> None:
    """One normal to three pneumonias: an epoch of balanced sampling shows about as many of each,
    with unit weights (no class weights on top); plain epochs show each image once."""
    import numpy as np

    from pneumo_core.card import _class_balance
    from pneumo_core.training import training_batch, training_dataset

    x = np.arange(400, dtype=np.float32).reshape(400, 1, 1, 1)
    y = (np.arange(400) >= 100).astype(np.float32)
    ones = np.ones(400, np.float32)
    epoch = [training_batch(x, y, ones, 40, seed=1, step=s, balanced=True) for s in range(10)]
    labels = np.concatenate([b[1] for b in epoch])
    assert labels.size == 400 and 0.42 < labels.mean() < 0.58
    assert np.array_equal(np.concatenate([b[0] for b in epoch]).ravel() >= 100, labels == 1)  # images match labels
    plain = np.concatenate([training_batch(x, y, ones, 40, seed=1, step=s)[0] for s in range(10)]).ravel()
    assert np.array_equal(np.sort(plain), np.arange(400))
    config = TrainingConfig(batch_size=40, seed=1, epochs=1, balanced_sampling=True)
    dataset, steps = training_dataset(x, y.astype(int), {0: 2.0, 1: 0.667}, config)
    batches = list(dataset.as_numpy_iterator())
    assert steps == 10 and np.array_equal(batches[3][1], epoch[3][1])
    assert all(np.all(b[2] == 1.0) for b in batches)
    assert _class_balance({"balanced_sampling": True}, {0: 2.0, 1: 0.667}).startswith("balanced sampling")
    assert _class_balance({}, {"0": 2.0, "1": 0.667}) == "class weights NORMAL 2.000, PNEUMONIA 0.667"


def test_merged_members_average_the_logits_and_explain() -> None:
    import keras
    import numpy as np

    from pneumo_core.contract import ModelContract
    from pneumo_core.gradcam import Explainer
    from pneumo_core.model import build_model, feature_layers, merge_members

    config = TrainingConfig(width=8, image_size=64, augment=False)
    contract = ModelContract(input_size=64, feature_layers=feature_layers("compact_resnet", 2))
    members = []
    for seed in (0, 1):
        keras.utils.set_random_seed(seed)
        members.append(build_model(contract, config))
    x = np.random.default_rng(0).uniform(0, 255, (3, 64, 64, 1)).astype(np.float32)
    for member in members:  # non-trivial BatchNorm statistics, as after training
        member(x, training=True)
        for layer in member.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.moving_mean.assign(np.random.default_rng(1).normal(0, 0.1, layer.moving_mean.shape))
    merged = merge_members(contract, config, members)
    expected = np.mean([member.predict(x, verbose=0) for member in members], axis=0)
    np.testing.assert_allclose(merged.predict(x, verbose=0), expected, rtol=1e-4, atol=1e-4)
    assert (
        merged.get_layer("gradcam_target").output.shape[-1]
        == 2 * members[0].get_layer("gradcam_target").output.shape[-1]
    )
    logits, cams, embeddings = Explainer(merged, "gradcam_target", contract.feature_layers).explain(x)
    np.testing.assert_allclose(logits, expected[:, 0], rtol=1e-4, atol=1e-4)
    assert cams.shape == (3, 4, 4) and np.isfinite(cams).all() and embeddings.shape[0] == 3


def test_max_zoom_in_widens_the_training_zoom() -> None:
    """``max_zoom_in`` 0.3 shows the model fields of view up to 30% tighter; the default stays at 12%."""
    import numpy as np

    from pneumo_core.model import augmentation

    square = np.zeros((64, 100, 100, 1), np.float32)
    square[:, 40:60, 40:60] = 255.0

    def largest_square_side(max_zoom_in: float) -> float:
        steps = augmentation(seed=3, max_zoom_in=max_zoom_in).layers
        zoom = next(step for step in steps if type(step).__name__ == "RandomZoom")
        out = np.asarray(zoom(square, training=True))
        return float(np.sqrt((out[..., 0] > 127).sum(axis=(1, 2)).max()))

    assert largest_square_side(0.12) <= 20 / 0.88 + 1  # never enlarged more than 1 / (1 - 0.12)
    assert largest_square_side(0.3) > 20 / 0.88 + 2  # tighter framings than the default ever makes
    assert largest_square_side(0.3) <= 20 / 0.7 + 1


@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
def test_weight_decay_shrinks_kernels_and_leaves_batchnorm_and_biases_alone(weight_decay: float) -> None:
    """With zero gradients Adam's step is zero, so only the decay moves the weights: each step
    multiplies a kernel by (1 - learning_rate * weight_decay)."""
    import keras
    import numpy as np

    from pneumo_core.contract import ModelContract
    from pneumo_core.model import build_model
    from pneumo_core.training import optimizer

    # the names the decay is told to skip are the names the network's variables carry
    network = build_model(ModelContract(input_size=32), TrainingConfig(width=8))
    assert {variable.name for variable in network.trainable_variables} == {"kernel", "gamma", "beta", "bias"}

    variables = [keras.Variable(np.ones((2, 2)), name=name) for name in ("kernel", "gamma", "beta", "bias")]
    adam = optimizer(TrainingConfig(weight_decay=weight_decay), 0.1)
    for _ in range(3):
        adam.apply_gradients([(np.zeros((2, 2), np.float32), variable) for variable in variables])
    kernel, *left_alone = (variable.numpy() for variable in variables)
    np.testing.assert_allclose(kernel, (1 - 0.1 * weight_decay) ** 3, rtol=1e-6)
    for values in left_alone:
        np.testing.assert_array_equal(values, 1.0)


@pytest.mark.parametrize("best", ["last", "first"])
def test_weight_average_keeps_the_averaged_weights_of_the_best_epoch(best: str) -> None:
    """The trained model holds the moving average of the weights as it stood at the end of the
    epoch with the lowest validation loss, not the last raw weights.

    Validation on the true labels improves every epoch (the last is best); on flipped labels it
    gets worse (the first is best, so early stopping's restore must put back averaged weights).
    """
    import keras
    import numpy as np

    from pneumo_core.training import epoch_callbacks, optimizer

    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.float32)
    y_val = y if best == "last" else 1 - y
    config = TrainingConfig(weight_average=0.9, epochs=3, early_stopping_patience=5, lr_schedule="cosine")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer=optimizer(config, 0.1), loss=keras.losses.BinaryCrossentropy(from_logits=True))
    raw: list[list[np.ndarray]] = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            raw.append([w.copy() for w in self.model.get_weights()])

    stopping = epoch_callbacks(config)
    model.fit(x, y, validation_data=(x, y_val), epochs=3, batch_size=16, verbose=0, callbacks=[Record(), *stopping])
    best_epoch = next(c for c in stopping if isinstance(c, keras.callbacks.EarlyStopping)).best_epoch
    assert best_epoch == (2 if best == "last" else 0)

    average = raw[0]
    for weights in raw[1 : 4 * (best_epoch + 1)]:  # 4 steps per epoch
        average = [0.9 * a + 0.1 * w for a, w in zip(average, weights, strict=True)]
    for kept, expected, last in zip(model.get_weights(), average, raw[-1], strict=True):
        np.testing.assert_allclose(kept, expected, atol=1e-5)
        assert not np.allclose(kept, last, atol=1e-3)  # the average, not the last raw weights


def test_precise_batchnorm_statistics_are_the_mean_of_the_batch_statistics() -> None:
    """After re-estimation each BatchNorm layer holds the mean of its per-batch means and
    variances at the current weights, whatever it held before; its momentum (here the
    configured 0.9) is put back."""
    import keras
    import numpy as np

    from pneumo_core.contract import ModelContract
    from pneumo_core.model import build_model
    from pneumo_core.training import reestimate_batchnorm

    config = TrainingConfig(image_size=32, width=8, augment=False, dropout=0.0, bn_momentum=0.9)
    network = build_model(ModelContract(input_size=32), config)
    norms = [layer for layer in network.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms and {layer.momentum for layer in norms} == {0.9}
    stem = network.get_layer("stem_bn")
    stem.moving_mean.assign(np.full(stem.moving_mean.shape, 5.0, np.float32))  # stale statistics
    x = np.random.default_rng(0).uniform(0, 255, (100, 32, 32, 1)).astype(np.float32)

    reestimate_batchnorm(network, x, batch_size=32)

    conv = keras.Model(network.input, network.get_layer("stem_conv").output)
    batches = [keras.ops.convert_to_numpy(conv(x[start : start + 32])) for start in range(0, 100, 32)]
    np.testing.assert_allclose(
        stem.moving_mean.numpy(), np.mean([b.mean(axis=(0, 1, 2)) for b in batches], 0), atol=1e-5
    )
    np.testing.assert_allclose(
        stem.moving_variance.numpy(), np.mean([b.var(axis=(0, 1, 2)) for b in batches], 0), rtol=1e-4, atol=1e-6
    )
    assert {layer.momentum for layer in norms} == {0.9}


def test_precise_batchnorm_runs_before_every_validation_pass() -> None:
    """With ``bn_reestimate``, what validation sees in every epoch is the statistics re-estimated
    at that epoch's weights on the fixed subset, not the moving averages training left behind."""
    import keras
    import numpy as np

    from pneumo_core.training import epoch_callbacks, reestimate_batchnorm

    keras.utils.set_random_seed(0)
    x = np.random.default_rng(1).normal(3.0, 2.0, size=(96, 8, 8, 1)).astype(np.float32)
    y = (x.mean(axis=(1, 2, 3)) > 3.0).astype(np.float32)

    def network() -> keras.Model:
        return keras.Sequential([
            keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3), keras.layers.BatchNormalization(),
            keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(1),
        ])  # fmt: skip

    config = TrainingConfig(bn_reestimate=40, epochs=3, early_stopping_patience=5, lr_schedule="cosine")
    model = network()
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss=keras.losses.BinaryCrossentropy(from_logits=True))
    seen: list[tuple[list[np.ndarray], np.ndarray]] = []

    class Record(keras.callbacks.Callback):
        def on_test_end(self, logs: dict | None = None) -> None:
            seen.append(([w.copy() for w in self.model.get_weights()], self.model.layers[1].moving_mean.numpy()))

    model.fit(x, y, validation_data=(x, y), epochs=3, batch_size=16, verbose=0,
              callbacks=[*epoch_callbacks(config, x), Record()])  # fmt: skip

    subset = x[np.sort(np.random.default_rng([config.seed, 7]).permutation(len(x))[:40])]
    assert len(seen) == 3
    for weights, moving_mean in seen:
        expected = network()
        expected.set_weights(weights)
        reestimate_batchnorm(expected, subset)
        np.testing.assert_allclose(moving_mean, expected.layers[1].moving_mean.numpy(), atol=1e-5)
        assert not np.allclose(moving_mean, 0.0, atol=0.1)  # not the untrained moving average
    with pytest.raises(ValueError, match="training images"):
        epoch_callbacks(config)


def test_train_py_flags_override_the_recorded_configuration() -> None:
    """``train.py --config v1 --bn-reestimate N ...`` is v1's configuration with exactly those
    changes, and the model card says so."""
    import importlib.util

    from pneumo_core.card import _batchnorm, _monitored, _optimizer, _schedule

    spec = importlib.util.spec_from_file_location("train_script", ROOT / "train.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    v1 = json.loads((ROOT / "models" / "pneumonia-cnn-v1" / "metadata.json").read_text())["training_config"]
    flags = [
        "--bn-reestimate",
        "1024",
        "--bn-momentum",
        "0.9",
        "--weight-decay",
        "0.05",
        "--monitor",
        "val_calibrated_loss",
        "--normalization",
        "clahe",
        "--balanced-sampling",
    ]
    config = script.build_config(
        script.parse_args(["--config", str(ROOT / "models/pneumonia-cnn-v1/metadata.json"), *flags])
    )
    changed = {k: v for k, v in config.to_dict().items() if k in v1 and v1[k] != v}
    assert changed == {} and (config.bn_reestimate, config.bn_momentum, config.weight_decay) == (1024, 0.9, 0.05)
    assert config.monitor == "val_calibrated_loss" and TrainingConfig.from_dict(v1).monitor == "val_loss"
    assert config.normalization == "clahe" and TrainingConfig.from_dict(v1).normalization == "equalize_hist"
    assert config.balanced_sampling and not TrainingConfig.from_dict(v1).balanced_sampling
    assert TrainingConfig.from_dict(v1).bn_reestimate == 0 and TrainingConfig.from_dict(v1).bn_momentum == 0.99
    changes = config.to_dict()
    assert "re-estimated on 1024 training images" in _batchnorm(changes) and "momentum 0.9" in _batchnorm(changes)
    assert _optimizer(changes).startswith("AdamW (weight decay 0.05")
    assert _monitored(changes) in _schedule(changes) and "calibrated" in _monitored(changes)
    assert (_batchnorm(v1), _optimizer(v1), _schedule(v1)) == (
        "",
        "Adam",
        "halved when validation loss stalls for 2 epochs",
    )


def test_calibrated_monitor_drives_early_stopping_and_the_schedule() -> None:
    """With ``monitor="val_calibrated_loss"`` every epoch logs the temperature-fitted validation
    log-loss of the weights at that epoch's end, and early stopping keeps the epoch where it is
    lowest; the plateau schedule follows the same figure."""
    import keras
    import numpy as np
    from sklearn.metrics import log_loss

    from pneumo_core.evaluation import fit_temperature, sigmoid
    from pneumo_core.training import epoch_callbacks

    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.float32)
    x_val, y_val = x[:32], (x[:32, 0] > 0).astype(np.float32)
    config = TrainingConfig(monitor="val_calibrated_loss", epochs=4, early_stopping_patience=10)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.3), loss=keras.losses.BinaryCrossentropy(from_logits=True))
    ends: list[list[np.ndarray]] = []

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            ends.append([w.copy() for w in self.model.get_weights()])

    scheduled = epoch_callbacks(config, validation=(x_val, y_val))
    history = model.fit(x, y, validation_data=(x_val, y_val), epochs=4, batch_size=16, verbose=0,
                        callbacks=[Record(), *scheduled])  # fmt: skip
    logged = history.history["val_calibrated_loss"]
    for weights, value in zip(ends, logged, strict=True):
        logits = x_val @ weights[0][:, 0] + weights[1][0]
        p = np.clip(sigmoid(logits, fit_temperature(y_val, logits)), 1e-7, 1 - 1e-7)
        assert value == pytest.approx(log_loss(y_val, p), rel=1e-4)
    stopping = next(c for c in scheduled if isinstance(c, keras.callbacks.EarlyStopping))
    plateau = next(c for c in scheduled if isinstance(c, keras.callbacks.ReduceLROnPlateau))
    assert stopping.monitor == plateau.monitor == "val_calibrated_loss"
    assert stopping.best_epoch == int(np.argmin(logged))
    for kept, expected in zip(model.get_weights(), ends[int(np.argmin(logged))], strict=True):
        np.testing.assert_allclose(kept, expected)
    with pytest.raises(ValueError, match="validation images"):
        epoch_callbacks(config)

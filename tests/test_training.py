"""A real (tiny) training run in-process, cancellation at every step, and the recipe's parts."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import ROOT

from pneumo_core import Classifier
from pneumo_core.calibration import FRAME_SCALES
from pneumo_core.config import TrainingConfig
from pneumo_core.progress import TrainingCancelled
from pneumo_core.site import COMPONENTS
from pneumo_core.training import recalibrate, train

TINY = TrainingConfig(epochs=1, train_subset=80, image_size=64, width=16, batch_size=16)


@pytest.fixture(scope="module")
def two_member_run(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    """One tiny two-member run, shared: what it registers, and (trained again) that it reproduces."""
    events: list[dict] = []
    result = train(
        data_root, replace(TINY, members=2), tmp_path_factory.mktemp("runs") / "tiny-run", on_event=events.append
    )
    return result.path, events


def test_tiny_training_run_registers_a_complete_model(two_member_run: tuple[Path, list[dict]], data_root: Path) -> None:
    """Two members merged into one model (the single-member path runs in test_jobs.py through train.py)."""
    folder, events = two_member_run
    for name in ("model.keras", "metadata.json", "test_predictions.csv", "MODEL_CARD.md", "gate.npz"):
        assert (folder / name).exists(), name
    metadata = json.loads((folder / "metadata.json").read_text())
    assert 0 < metadata["contract"]["operating_threshold"] < 1
    assert metadata["contract"]["input_size"] == 64 and metadata["contract"]["normalization"] == "equalize_hist"
    n_test = len(list((data_root / "test").rglob("*.jpeg")))
    assert metadata["test"]["n"] == n_test
    assert len((folder / "test_predictions.csv").read_text().splitlines()) == n_test + 1
    assert metadata["training_config"]["train_subset"] == 80 and metadata["training_config"]["members"] == 2
    validation = metadata["data"]["validation"]
    # a site reference needs more patients of each class than components: a tiny validation split gets none
    assert min(validation["normal"], validation["pneumonia"]) <= COMPONENTS + 1
    assert not (folder / "site_reference.npz").exists()
    assert metadata["member_epochs"] == [1, 1] and len(metadata["history"]["val_loss"]) == 2
    assert [e["member"] for e in events if e["type"] == "epoch_end"] == [1, 2]
    progress = [e["progress"] for e in events if e["type"] == "batch"]
    assert progress == sorted(progress) and progress[-1] == pytest.approx(1.0)
    stages = [e["message"] for e in events if e["type"] == "stage"]
    assert stages[-3:] == ["Fitting the input gate", f"Scoring the {n_test} test images", "Registering the model"]
    assert events[-1]["type"] == "done"
    card = (folder / "MODEL_CARD.md").read_text()
    assert "Reliability" in card and f"The official test set ({n_test} images)" in card
    assert "ensemble of 2 `compact_resnet` (width 16) networks" in card and "not a medical device" in card
    assert "Adam lr 0.002 (halved when validation loss stalls for 2 epochs)" in card
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


@pytest.mark.parametrize(
    "stop_at",
    ["Loading", "Training", "Calibrating", "Scoring", "Registering"],
)
def test_a_cancel_at_any_step_registers_nothing(data_root: Path, tmp_path: Path, stop_at: str) -> None:
    """The stop is asked for as the named step starts (training: after its first batch); the run
    raises ``TrainingCancelled`` before that step's work and the model folder never appears."""
    asked = []

    def on_event(event: dict) -> None:
        if (event["type"] == "stage" and event["message"].startswith(stop_at)) or (
            stop_at == "Training" and event["type"] == "batch"
        ):
            asked.append(event)

    config = replace(TINY, epochs=2, train_subset=40)
    with pytest.raises(TrainingCancelled):
        train(data_root, config, tmp_path / "cancelled", on_event=on_event, should_stop=lambda: bool(asked))
    assert asked, f"the run never reached {stop_at!r}"
    assert not (tmp_path / "cancelled").exists()
    assert not list(tmp_path.glob(".cancelled*"))  # no staging folder left behind either


def test_merged_members_average_the_logits_and_explain() -> None:
    import keras
    import numpy as np

    from pneumo_core.config import feature_layers
    from pneumo_core.contract import ModelContract
    from pneumo_core.gradcam import Explainer
    from pneumo_core.model import build_model, merge_members
    from pneumo_core.network import Network

    config = TrainingConfig(width=16, image_size=64, augment=False)
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
    network = Network(merged, contract.feature_layers)
    logits, cams, embeddings = Explainer(network, "gradcam_target").explain(x)
    np.testing.assert_allclose(logits, expected[:, 0], rtol=1e-4, atol=1e-4)
    forward_logits, forward_embeddings = network.outputs(x)
    np.testing.assert_allclose(forward_logits, logits, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(forward_embeddings, embeddings, rtol=1e-5, atol=1e-5)
    assert cams.shape == (3, 4, 4) and embeddings.shape == (3, sum(network.feature_sizes))
    # the merged map is the members' class maps averaged, signed by the merged verdict
    member_maps = np.mean([_class_map(Network(m), x) for m in members], axis=0)
    sign = np.where(logits >= 0, 1.0, -1.0)[:, None, None]
    expected_cams = np.maximum(member_maps * sign, 0)
    assert expected_cams.max() > 0
    np.testing.assert_allclose(cams, expected_cams, rtol=1e-3, atol=1e-5 * expected_cams.max())


def _class_map(network, x):
    """A single model's Grad-CAM before ReLU: the gradient-weighted sum of the target layer's channels."""
    import tensorflow as tf

    graph = network.with_layer("gradcam_target")
    with tf.GradientTape() as tape:
        conv, logits, *_ = graph(tf.constant(x), training=False)
        score = tf.reduce_sum(logits)
    weights = tf.reduce_mean(tape.gradient(score, conv), axis=(1, 2), keepdims=True)
    return tf.reduce_sum(conv * weights, axis=-1).numpy()


def test_the_same_configuration_trains_to_the_same_weights_and_figures(
    two_member_run: tuple[Path, list[dict]], data_root: Path, tmp_path: Path
) -> None:
    """Op determinism and fixed seeds: the shared run's configuration, trained again on this machine,
    gives the same weights and figures."""
    import keras
    import numpy as np

    folders = [two_member_run[0], train(data_root, replace(TINY, members=2), tmp_path / "again").path]
    weights = [keras.saving.load_model(f / "model.keras", compile=False).get_weights() for f in folders]
    assert all(np.array_equal(a, b) for a, b in zip(*weights, strict=True))
    first, second = (json.loads((f / "metadata.json").read_text()) for f in folders)
    for key in ("history", "contract", "validation", "test"):
        assert first[key] == second[key], key
    assert first["machine"]["intra_op_threads"] >= 1 and first["machine"]["cpu"]
    assert first["code"] is None or len(first["code"]["commit"]) == 40  # None outside a git checkout
    assert "Training is deterministic on one machine" in (folders[0] / "MODEL_CARD.md").read_text()


def _train_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("train_script", ROOT / "train.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def test_train_py_reproduces_each_shipped_configuration_and_applies_only_the_flags_given() -> None:
    script = _train_script()
    for metadata_file in sorted((ROOT / "models").glob("*/metadata.json")):
        recorded = json.loads(metadata_file.read_text())["training_config"]
        config = script.build_config(script.parse_args(["--config", str(metadata_file)]))
        assert {k: v for k, v in config.to_dict().items() if recorded.get(k, v) != v} == {}, metadata_file
        changed = script.build_config(script.parse_args(["--config", str(metadata_file), "--epochs", "2"]))
        assert {k: v for k, v in changed.to_dict().items() if config.to_dict()[k] != v} == {"epochs": 2}
    v3 = json.loads((ROOT / "models" / "pneumonia-cnn-v3" / "metadata.json").read_text())["training_config"]
    assert TrainingConfig.from_dict(v3).members == 3 and TrainingConfig.from_dict(v3).image_size == 128


def test_a_configuration_of_a_retired_experiment_is_refused_not_trained_differently(tmp_path: Path) -> None:
    """Retired options at their "off" value are what the recipe does anyway; any other value names
    a recipe this code no longer trains, and train.py says so in one line."""
    from pneumo_core.config import RETIRED_AT

    v3 = json.loads((ROOT / "models" / "pneumonia-cnn-v3" / "metadata.json").read_text())["training_config"]
    assert v3["mixup"] == 0.0 and TrainingConfig.from_dict(v3).seed == 1337
    with pytest.raises(ValueError, match=f"mixup.*docs/experiments.md.*{RETIRED_AT}"):
        TrainingConfig.from_dict({**v3, "mixup": 0.2})
    with pytest.raises(ValueError, match="colour_jitter"):
        TrainingConfig.from_dict({**v3, "colour_jitter": True})
    config_file = tmp_path / "old.json"
    config_file.write_text(json.dumps({"training_config": {**v3, "normalization": "clahe"}}))
    assert _train_script().main(["--config", str(config_file), "--data", str(tmp_path)]) == 2


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"members": 5}, "members must be 1 to 4"),
        ({"members": 2, "arch": "resnet50"}, "compact_resnet only"),
        ({"arch": "vgg"}, "arch must be one of"),
        ({"image_size": 16}, "input_size must be in"),
        ({"learning_rate": 0.0}, "learning_rate must be positive"),
        ({"target_sensitivity": 1.5}, "target_sensitivity"),
        ({"width": 8}, "width must be at least 16"),
    ],
)
def test_bad_configurations_fail_before_any_training(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        replace(TINY, **changes)


def test_augmentation_zooms_within_the_recipe_range() -> None:
    """The training zoom shows the model fields of view up to ``ZOOM_IN`` tighter and ``ZOOM_OUT``
    wider (black frame), never more."""
    import numpy as np

    from pneumo_core.config import ZOOM_IN, ZOOM_OUT
    from pneumo_core.model import augmentation

    square = np.zeros((64, 100, 100, 1), np.float32)
    square[:, 40:60, 40:60] = 255.0
    zoom = next(step for step in augmentation(seed=3).layers if type(step).__name__ == "RandomZoom")
    sides = np.sqrt((np.asarray(zoom(square, training=True))[..., 0] > 127).sum(axis=(1, 2)))
    assert sides.max() <= 20 / (1 - ZOOM_IN) + 1 and sides.min() >= 20 / (1 + ZOOM_OUT) - 1
    assert sides.max() > 21 and sides.min() < 19  # both ways actually happen

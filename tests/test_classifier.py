"""Classifier on a tiny untrained model: API, Grad-CAM, batches, threads."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest

from pneumo_core import Classifier, InputError
from pneumo_core.gradcam import gradcam, heatmap
from pneumo_core.imaging import decode


def test_predict_from_path_bytes_and_array_agree(tiny_classifier: Classifier, normal_image: Path) -> None:
    by_path = tiny_classifier.predict(normal_image)
    by_bytes = tiny_classifier.predict(normal_image.read_bytes())
    by_array = tiny_classifier.predict(decode(normal_image).pixels)
    assert 0.0 <= by_path.probability_pneumonia <= 1.0
    assert by_path.label in ("NORMAL", "PNEUMONIA")
    assert by_bytes.probability_pneumonia == pytest.approx(by_path.probability_pneumonia, abs=1e-6)
    assert by_array.probability_pneumonia == pytest.approx(by_path.probability_pneumonia, abs=1e-6)


def test_label_follows_threshold(tiny_classifier: Classifier, normal_image: Path) -> None:
    p = tiny_classifier.predict(normal_image)
    expected = "PNEUMONIA" if p.probability_pneumonia >= tiny_classifier.contract.operating_threshold else "NORMAL"
    assert p.label == expected


def test_gradcam_shape_range_and_resolution(tiny_classifier: Classifier, full_size_image: Path) -> None:
    cam = tiny_classifier.gradcam(full_size_image)
    decoded = decode(full_size_image)
    assert cam.shape == (decoded.height, decoded.width)
    assert cam.dtype == np.float32 and cam.min() >= 0.0
    # normalised to its peak, and a map, not a flat field: part of the image drives the verdict more
    assert cam.max() == pytest.approx(1.0, abs=0.01) and np.mean(cam < 0.5) > 0.05 and np.mean(cam > 0.5) > 0.01


def test_analyze_matches_predict(tiny_classifier: Classifier, pneumonia_image: Path) -> None:
    analysis = tiny_classifier.analyze(pneumonia_image)
    assert analysis.prediction.probability_pneumonia == pytest.approx(
        tiny_classifier.predict(pneumonia_image).probability_pneumonia, abs=1e-5
    )


def test_gradcam_function_and_heatmap_normalisation(tiny_classifier: Classifier) -> None:
    x = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 1)).astype(np.float32)
    maps = gradcam(tiny_classifier.network, x, "gradcam_target")
    assert maps.shape == (2, 64, 64) and maps.min() >= 0 and maps.max() <= 1
    assert heatmap(np.zeros((4, 4)), 8, 8).max() == 0.0
    assert heatmap(np.array([[0, 2], [0, 0]]), 2, 2).max() == pytest.approx(1.0)
    # with a framed input, only the part of the map over the image (not the black frame) is kept
    cam = np.zeros((10, 10), np.float32)
    cam[0, :] = 5.0  # activation on the frame only
    cam[5, 5] = 1.0
    framed = heatmap(cam, 100, 100, frame_scale=0.6)
    assert framed.max() == pytest.approx(1.0) and framed[:10].max() < 0.2


def test_bad_input_in_batch_rejects_only_that_file(
    tiny_classifier: Classifier, data_root: Path, tmp_path: Path
) -> None:
    good = sorted((data_root / "train").rglob("*.jpeg"))[:49]
    bad = tmp_path / "broken.jpeg"
    bad.write_bytes(b"not an image")
    inputs = [*good[:20], bad, *good[20:]]
    progress: list[tuple[int, int]] = []
    results = tiny_classifier.predict_many(
        inputs, batch_size=16, progress=lambda done, total: progress.append((done, total))
    )
    assert progress == [(16, 50), (32, 50), (48, 50), (50, 50)]
    assert len(results) == 50
    assert isinstance(results[20], InputError) and results[20].code == "unsupported_format"
    assert all(not isinstance(r, InputError) for i, r in enumerate(results) if i != 20)
    single = tiny_classifier.predict(good[0]).probability_pneumonia
    assert results[0].probability_pneumonia == pytest.approx(single, abs=1e-5)


def test_read_many_gives_each_input_in_order_with_failures_in_place(
    tiny_classifier: Classifier, data_root: Path
) -> None:
    good = sorted((data_root / "train").rglob("*.jpeg"))[:5]
    earlier = InputError("unsupported_format", "found unreadable while unpacking")
    inputs = [good[0], b"not an image", good[1], earlier, *good[2:]]
    read = list(tiny_classifier.read_many(inputs, batch_size=3))
    assert [index for index, _ in read] == list(range(7))
    assert isinstance(read[1][1], InputError) and read[1][1].code == "unsupported_format"
    assert read[3][1] is earlier
    logit, embedding, decoded = read[2][1]
    assert embedding.shape == (sum(tiny_classifier.network.feature_sizes),)
    assert decoded.pixels.shape[:2] == (decoded.height, decoded.width)
    assert 1 / (1 + np.exp(-logit / tiny_classifier.contract.temperature)) == pytest.approx(
        tiny_classifier.predict(good[1]).probability_pneumonia, abs=1e-5
    )


def test_eight_threads_same_numbers(tiny_classifier: Classifier, data_root: Path) -> None:
    images = sorted((data_root / "test" / "PNEUMONIA").iterdir())[:12]
    sequential = [tiny_classifier.analyze(p).prediction.probability_pneumonia for p in images]
    with ThreadPoolExecutor(max_workers=8) as pool:
        parallel = list(pool.map(lambda p: tiny_classifier.analyze(p).prediction.probability_pneumonia, images * 2))
    assert parallel == pytest.approx(sequential * 2, abs=1e-6)


def test_not_an_xray_gets_a_message(tiny_classifier: Classifier) -> None:
    rng = np.random.default_rng(0)
    color = rng.integers(0, 255, (200, 200, 3), dtype=np.uint8)
    with pytest.raises(InputError) as info:
        tiny_classifier.predict(color)
    assert info.value.code == "not_chest_xray" and "colour" in info.value.message
    with pytest.raises(InputError, match="blank"):
        tiny_classifier.predict(np.full((300, 300), 128, np.uint8))


def test_the_verdict_uses_the_models_own_threshold_not_one_half(
    tiny_classifier: Classifier, normal_image: Path
) -> None:
    """With the threshold just above this image's probability the verdict is NORMAL, just below it
    PNEUMONIA, whichever side of 0.5 the probability lies (the shipped model's threshold is 0.83)."""
    from pneumo_core.contract import ModelContract

    probability = tiny_classifier.predict(normal_image).probability_pneumonia
    labels = []
    for threshold in (probability + 0.01, probability - 0.01):
        contract = ModelContract.from_dict(
            {**tiny_classifier.contract.to_dict(), "operating_threshold": min(0.99, max(0.01, threshold))}
        )
        other = Classifier(tiny_classifier.model, contract, {}, tiny_classifier.path, None)
        labels.append(other.predict(normal_image).label)
    assert labels == ["NORMAL", "PNEUMONIA"]


def test_the_probability_is_the_logit_scaled_by_the_models_temperature(
    tiny_classifier: Classifier, normal_image: Path
) -> None:
    from pneumo_core.contract import ModelContract

    def logit_of(temperature: float) -> float:
        contract = ModelContract.from_dict({**tiny_classifier.contract.to_dict(), "temperature": temperature})
        p = Classifier(tiny_classifier.model, contract, {}, tiny_classifier.path, None).predict(normal_image)
        return float(np.log(p.probability_pneumonia / (1 - p.probability_pneumonia)))

    assert tiny_classifier.contract.temperature == 1.0
    raw = logit_of(1.0)
    assert abs(raw) > 1e-3 and logit_of(2.5) == pytest.approx(raw / 2.5, rel=1e-4)


@pytest.mark.parametrize(("decision_logit", "hot_half"), [(-100.0, "left"), (100.0, "right")])
def test_gradcam_lights_up_what_drives_the_verdict(decision_logit: float, hot_half: str) -> None:
    """A network whose logit is the mean of its input: for a PNEUMONIA verdict the map is where the
    input raises the logit (the bright left half), for a NORMAL verdict where it lowers it (the dark
    right half), from the negated gradient."""
    import keras

    from pneumo_core.gradcam import Explainer
    from pneumo_core.network import Network

    inputs = keras.Input((8, 8, 1))
    target = keras.layers.Conv2D(1, 1, use_bias=False, name="gradcam_target")(inputs)
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(target)
    logit = keras.layers.Dense(1, name="logit")(pooled)
    model = keras.Model(inputs, logit)
    model.get_layer("gradcam_target").set_weights([np.ones((1, 1, 1, 1), np.float32)])
    model.get_layer("logit").set_weights([np.ones((1, 1), np.float32), np.zeros(1, np.float32)])
    image = np.zeros((1, 8, 8, 1), np.float32)
    image[0, :, :4] = 1.0  # raises the logit
    image[0, :, 4:] = -1.0  # lowers it
    _, cams, _ = Explainer(Network(model), "gradcam_target", decision_logit).explain(image)
    cam = heatmap(cams[0], 8, 8)
    left, right = cam[:, :4].mean(), cam[:, 4:].mean()
    assert (left, right) == ((1.0, 0.0) if hot_half == "left" else (0.0, 1.0))


def test_analysis_for_a_screen_is_small_and_says_the_same(tiny_classifier: Classifier, full_size_image: Path) -> None:
    full = tiny_classifier.analyze(full_size_image)
    shown = tiny_classifier.analyze(full_size_image, display_side=300)
    assert shown.prediction == full.prediction  # the verdict always comes from the whole image
    assert max(shown.pixels.shape) == 300 and shown.heatmap.shape == shown.pixels.shape
    assert shown.nbytes < full.nbytes / 10
    shrunk = cv2.resize(full.heatmap, shown.heatmap.shape[::-1], interpolation=cv2.INTER_AREA)
    assert np.abs(shrunk - shown.heatmap).mean() < 0.02  # the same map, drawn smaller
    small = tiny_classifier.analyze(np.tile(np.arange(200, dtype=np.uint8), (180, 1)), display_side=300)
    assert small.pixels.shape == (180, 200)  # never enlarged

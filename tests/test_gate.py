"""The input gate: header rules, image statistics, and the feature-space distance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from dicom_utils import make_dicom

from pneumo_core.errors import InputError
from pneumo_core.gate import FeatureGate, check_header_and_statistics
from pneumo_core.imaging import DecodedImage, decode


@pytest.fixture(scope="module")
def xray_12bit(normal_image: Path) -> np.ndarray:
    return decode(normal_image).pixels.astype(np.uint16) * 16


def rejected(decoded) -> str:
    with pytest.raises(InputError) as info:
        check_header_and_statistics(decoded)
    assert info.value.code == "not_chest_xray"
    return info.value.message


def test_real_xray_passes(normal_image: Path, xray_12bit: np.ndarray) -> None:
    check_header_and_statistics(decode(normal_image))
    check_header_and_statistics(decode(make_dicom(xray_12bit)))


@pytest.mark.parametrize("modality", ["CT", "MR", "US", "NM"])
def test_non_radiograph_modalities(xray_12bit: np.ndarray, modality: str) -> None:
    assert modality in rejected(decode(make_dicom(xray_12bit, modality=modality)))


def test_other_body_part(xray_12bit: np.ndarray) -> None:
    assert "HAND" in rejected(decode(make_dicom(xray_12bit, body_part="HAND")))


def test_colour_photo_flat_and_banner(normal_image: Path) -> None:
    import skimage.data

    # real photographs, the least colourful of them well within the range of everyday photos
    for photo in (skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea()):
        assert "colour" in rejected(decode(photo))
    # a radiograph scanned from film with a faint warm tint (colourfulness about 7.5) is still read
    film = decode(normal_image).pixels
    check_header_and_statistics(decode(np.dstack([film, film, (film * 0.93).astype(np.uint8)])))
    rng = np.random.default_rng(0)
    assert "blank" in rejected(decode(np.full((300, 300), 7, np.uint8)))
    banner = rng.integers(0, 255, (100, 600), dtype=np.uint8)
    assert "aspect" in rejected(decode(banner))


def test_feature_gate_accepts_in_distribution_rejects_far(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    train = rng.normal(0, 1, (2000, 16))
    val = rng.normal(0, 1, (400, 16))
    gate = FeatureGate.fit(train, val, sizes=[6, 10])
    assert gate.distances(val).shape == (400, 2)
    assert np.mean(gate.outlier_scores(val) <= 1.0) >= 0.98
    gate.check(rng.normal(0, 1, 16))
    with pytest.raises(InputError, match="unlike the radiographs"):
        gate.check(np.full(16, 8.0))
    shifted_first_layer = np.concatenate([np.full(6, 8.0), rng.normal(0, 1, 10)])
    with pytest.raises(InputError):  # one layer far away is enough
        gate.check(shifted_first_layer)
    gate.save(tmp_path / "gate.npz")
    loaded = FeatureGate.load(tmp_path / "gate.npz")
    assert loaded.thresholds == pytest.approx(gate.thresholds) and loaded.sizes == [6, 10]
    assert np.allclose(loaded.outlier_scores(val), gate.outlier_scores(val))
    assert FeatureGate.load(tmp_path / "missing.npz") is None
    with pytest.raises(ValueError, match="add up"):
        FeatureGate.fit(train, val, sizes=[3, 3])


# --- the shipped model's gate on real images --------------------------------------------------


def test_shipped_gate_rejects_grayscale_photos_documents_and_phantoms(shipped_classifier) -> None:
    import skimage.data as sk

    from pneumo_core.imaging import rescale_to_uint8

    samples = {
        "camera": sk.camera(),
        "moon": sk.moon(),
        "coins": sk.coins(),
        "page": sk.page(),
        "brick": sk.brick(),
        "ct_phantom": rescale_to_uint8(sk.shepp_logan_phantom()),
        "noise": np.random.default_rng(0).integers(0, 256, (512, 512), dtype=np.uint8),
    }
    for name, image in samples.items():
        with pytest.raises(InputError) as info:
            shipped_classifier.predict(image)
        assert info.value.code == "not_chest_xray", name


def test_shipped_gate_accepts_the_fixtures_chest_xrays(shipped_classifier, data_root: Path) -> None:
    files = sorted((data_root / "test").rglob("*.jpeg")) + sorted((data_root / "val").rglob("*.jpeg"))
    results = shipped_classifier.predict_many(files)
    assert [f.name for f, r in zip(files, results, strict=True) if isinstance(r, InputError)] == []


# --- each rule at its edges, with the message a user reads --------------------------------------


def _decoded(pixels: np.ndarray, colorfulness: float = 0.0, **facts) -> DecodedImage:
    return DecodedImage(pixels, "DICOM" if facts else "PNG", pixels.shape[1], pixels.shape[0], facts, colorfulness)


def _textured(height: int, width: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (height, width), dtype=np.uint8)


@pytest.mark.parametrize("modality", ["CR", "DX", "DR", "RG", "PX", "OT", "SC", "dx", ""])
def test_projection_radiography_and_secondary_capture_pass(modality: str) -> None:
    check_header_and_statistics(_decoded(_textured(300, 300), modality=modality))


@pytest.mark.parametrize("body_part", ["CHEST", "THORAX", "LUNG", "LUNGS", "PORT CHEST", "TORSO", "BODY", "chest"])
def test_chest_body_parts_pass(body_part: str) -> None:
    check_header_and_statistics(_decoded(_textured(300, 300), modality="CR", body_part=body_part))


@pytest.mark.parametrize(
    ("facts", "pixels", "reason"),
    [
        ({"modality": "MG"}, None, "the DICOM modality is MG, not projection radiography (CR/DX)"),
        ({"modality": "XA"}, None, "the DICOM modality is XA, not projection radiography (CR/DX)"),
        ({"modality": "DX", "body_part": "KNEE"}, None, "the DICOM body part is KNEE"),
        ({}, np.full((300, 300), 7, np.uint8), "the image is blank or nearly uniform"),
        ({"colorfulness": 40.0}, None, "it is a colour image (radiographs are grayscale)"),
        ({}, _textured(100, 230), "its aspect ratio is 2.3:1, far from a chest film's"),
        ({}, _textured(230, 100), "its aspect ratio is 2.3:1, far from a chest film's"),
    ],
)
def test_each_rule_refuses_with_its_reason(facts: dict, pixels: np.ndarray | None, reason: str) -> None:
    decoded = _decoded(_textured(300, 300) if pixels is None else pixels, **facts)
    with pytest.raises(InputError) as info:
        check_header_and_statistics(decoded)
    assert info.value.message == f"Not a chest X-ray: {reason}. Upload a frontal chest radiograph."


def test_the_statistics_rules_at_their_edges() -> None:
    check_header_and_statistics(_decoded(_textured(100, 220)))  # aspect 2.2:1 is still a film
    two_levels = np.tile(np.array([100, 124], np.uint8), (300, 150))  # standard deviation exactly 12
    check_header_and_statistics(_decoded(two_levels))
    with pytest.raises(InputError, match="blank"):
        check_header_and_statistics(_decoded(np.tile(np.array([100, 123], np.uint8), (300, 150))))  # 11.5
    check_header_and_statistics(_decoded(_textured(300, 300), colorfulness=12.0))
    with pytest.raises(InputError, match="colour"):
        check_header_and_statistics(_decoded(_textured(300, 300), colorfulness=12.5))


def test_feature_gate_distances_cut_offs_and_message_by_hand(tmp_path: Path) -> None:
    """Identity precision: the distance is the Euclidean norm per layer; a score of exactly 1 passes."""
    gate = FeatureGate([2, 1], [np.zeros(2), np.zeros(1)], [np.eye(2), np.eye(1)], [5.0, 2.0])
    np.testing.assert_allclose(gate.distances(np.array([[3.0, 4.0, -1.0], [0.3, 0.4, 0.0]])), [[5.0, 1.0], [0.5, 0.0]])
    np.testing.assert_allclose(gate.outlier_scores(np.array([[3.0, 4.0, -1.0], [0.0, 0.0, 3.0]])), [1.0, 1.5])
    gate.check(np.array([3.0, 4.0, -1.0]))
    with pytest.raises(InputError) as info:
        gate.check(np.array([0.0, 0.0, 3.0]))
    assert info.value.message == (
        "Not a chest X-ray: it looks unlike the radiographs the model was trained on (outlier score 1.5; "
        "chest X-rays score below 1). Upload a frontal chest radiograph."
    )


def test_feature_gate_fit_takes_the_validation_quantile_with_a_margin() -> None:
    rng = np.random.default_rng(1)
    train, val = rng.normal(3, 2, (3000, 4)), rng.normal(3, 2, (500, 4))
    gate = FeatureGate.fit(train, val, sizes=[1, 3])
    np.testing.assert_allclose(gate.means[0], train[:, :1].mean(axis=0))
    np.testing.assert_allclose(gate.means[1], train[:, 1:].mean(axis=0))
    distances = gate.distances(val)
    assert gate.thresholds == pytest.approx([1.25 * np.quantile(distances[:, i], 0.995) for i in range(2)])
    with pytest.raises(ValueError, match=r"^feature sizes \[3, 3\] do not add up to 4$"):
        FeatureGate.fit(train, val, sizes=[3, 3])
    single = FeatureGate.fit(train, val)  # one layer by default
    assert single.sizes == [4] and len(single.thresholds) == 1


def test_a_gate_file_is_never_unpickled(tmp_path: Path) -> None:
    """A model folder from elsewhere must not run code when its gate loads: object arrays are refused."""
    np.savez(tmp_path / "gate.npz", sizes=np.array([1]), thresholds=np.array([1.0]),
             mean_0=np.array([object()], dtype=object), precision_0=np.eye(1))  # fmt: skip
    with pytest.raises(ValueError, match="allow_pickle=False"):
        FeatureGate.load(tmp_path / "gate.npz")

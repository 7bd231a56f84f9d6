"""The input gate: header rules, image statistics, and the feature-space distance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from dicom_utils import make_dicom

from pneumo_core.errors import InputError
from pneumo_core.gate import FeatureGate, check_header_and_statistics
from pneumo_core.imaging import decode


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

"""Site check: prevalence by EM, the class-mix corrected shift test, the end-to-end check, the CLI."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import SHIPPED_MODELS

from pneumo_core.errors import InputError
from pneumo_core.site import (
    LOOKS_ALIKE,
    MIN_IMAGES,
    TOO_SMALL,
    Embedded,
    ShiftTest,
    SiteReference,
    assess,
    check_analyzed,
    check_site,
    estimate_prevalence,
    prevalence_interval,
)

DIMENSIONS = 40
CLASS_SHIFT = np.r_[np.full(5, 1.5), np.zeros(DIMENSIONS - 5)]  # pneumonia differs in 5 dimensions
REFERENCE_PREVALENCE = 0.7


def synthetic(rng: np.random.Generator, n: int, prevalence: float, offset: np.ndarray | None = None):
    """Embeddings of two Gaussian classes and their exact posterior at the reference prevalence
    (a perfectly calibrated model), optionally moved by ``offset`` (an appearance shift)."""
    labels = (rng.random(n) < prevalence).astype(int)
    x = rng.normal(size=(n, DIMENSIONS)) + labels[:, None] * CLASS_SHIFT
    logit = np.log(REFERENCE_PREVALENCE / (1 - REFERENCE_PREVALENCE)) + x @ CLASS_SHIFT - CLASS_SHIFT @ CLASS_SHIFT / 2
    if offset is not None:
        x = x + offset
    return x, labels, 1 / (1 + np.exp(-logit))


@pytest.fixture(scope="module")
def synthetic_test() -> ShiftTest:
    x, y, p = synthetic(np.random.default_rng(0), 700, REFERENCE_PREVALENCE)
    return ShiftTest(SiteReference(x, y, p), REFERENCE_PREVALENCE)


def embedded(x: np.ndarray, p: np.ndarray) -> Embedded:
    logits = np.log(p / (1 - p))
    return Embedded([f"image{i}.jpeg" for i in range(len(x))], logits, x)


def test_em_recovers_a_new_prevalence_from_calibrated_probabilities() -> None:
    rng = np.random.default_rng(1)
    _, labels, p = synthetic(rng, 3000, 0.2)
    estimate = estimate_prevalence(p, REFERENCE_PREVALENCE)
    assert abs(estimate - labels.mean()) < 0.03
    low, high = prevalence_interval(p, REFERENCE_PREVALENCE, n_resamples=100)
    assert low < labels.mean() < high and high - low < 0.06
    assert abs(np.mean(p) - labels.mean()) > abs(estimate - labels.mean()) + 0.05  # the plain mean is biased


@pytest.mark.parametrize("prevalence", [0.3, 0.95])
def test_a_change_of_class_mix_alone_is_not_flagged(synthetic_test: ShiftTest, prevalence: float) -> None:
    """Sicker (or healthier) patients, same-looking images: the batch mean moves, the class-conditional
    means the test compares do not. A plain comparison of means would flag every one of these."""
    rng = np.random.default_rng(2)
    reference_mean = synthetic_test.whitened(synthetic_test.reference.embeddings).mean(axis=0)
    flagged, naive = 0, 0
    for _ in range(40):
        x, _, p = synthetic(rng, 100, prevalence)
        estimate = estimate_prevalence(p, REFERENCE_PREVALENCE)
        assert abs(estimate - prevalence) < 0.12
        flagged += synthetic_test.statistic(x, p, estimate)[0] < 0.05
        naive += float(np.linalg.norm(synthetic_test.whitened(x).mean(axis=0) - reference_mean)) > 0.5
    assert flagged <= 4, flagged  # about 5% expected
    assert naive == 40
    result = assess(synthetic_test, embedded(x, p), temperature=1.0)
    assert result.shifted == (result.p_value < 0.05) and result.effect["ci95"][0] < 0.6


def test_a_clearly_shifted_batch_is_flagged(synthetic_test: ShiftTest) -> None:
    offset = np.r_[np.zeros(10), np.full(10, 0.8), np.zeros(DIMENSIONS - 20)]  # not along the class axis
    x, _, p = synthetic(np.random.default_rng(3), 100, REFERENCE_PREVALENCE, offset)
    result = assess(synthetic_test, embedded(x, p), temperature=1.0)
    assert result.shifted and result.p_value < 1e-4
    low, high = result.effect["ci95"]
    assert 0.6 < low <= result.effect["value"] <= high
    assert "adapt the model" in result.recommendation and "differs" in result.summary()
    same = synthetic(np.random.default_rng(4), 100, REFERENCE_PREVALENCE)
    alike = assess(synthetic_test, embedded(same[0], same[2]), temperature=1.0)
    assert not alike.shifted and alike.recommendation == LOOKS_ALIKE
    assert alike.effect["ci95"][0] < 0.6


def test_a_shift_in_the_normal_images_alone_is_flagged_and_named(synthetic_test: ShiftTest) -> None:
    """What the official test set shows: its normal chests look different, its pneumonias do not.
    The same offset given to the pneumonia images instead names the other class."""
    rng = np.random.default_rng(7)
    offset = np.r_[np.zeros(10), np.full(10, 1.0), np.zeros(DIMENSIONS - 20)]
    for label, name in ((0, "normal"), (1, "pneumonia")):
        x, y, p = synthetic(rng, 100, 0.5)
        x[y == label] += offset
        result = assess(synthetic_test, embedded(x, p), temperature=1.0)
        other = "pneumonia" if name == "normal" else "normal"
        assert result.shifted and result.p_value_by_class[name] < 1e-3 < result.p_value_by_class[other]
        assert f"most in the images it reads as {name}" in result.summary()


def test_images_of_one_patient_count_as_one_patient() -> None:
    """Two identical images per patient carry the information of one: the design effect is about 2,
    and the same batch mean is judged with twice the variance."""
    x, y, p = synthetic(np.random.default_rng(5), 350, REFERENCE_PREVALENCE)
    doubled = SiteReference(np.repeat(x, 2, axis=0), np.repeat(y, 2), np.repeat(p, 2), np.repeat(np.arange(350), 2))
    single = SiteReference(np.repeat(x, 2, axis=0), np.repeat(y, 2), np.repeat(p, 2))
    assert ShiftTest(doubled)._design_effects == pytest.approx([2.0, 2.0], rel=0.05)
    assert ShiftTest(single)._design_effects == [1.0, 1.0]


def test_below_the_minimum_the_batch_is_too_small_to_tell(synthetic_test: ShiftTest) -> None:
    x, _, p = synthetic(np.random.default_rng(6), MIN_IMAGES - 1, REFERENCE_PREVALENCE, np.full(DIMENSIONS, 3.0))
    result = assess(synthetic_test, embedded(x, p), temperature=1.0)
    assert result.too_small and result.shifted is None and result.p_value is None
    assert result.recommendation == TOO_SMALL and "too small to tell" in result.summary()


def test_the_shipped_model_checks_a_batch_and_lists_what_it_left_out(shipped_classifier, data_root: Path) -> None:
    images = [(str(p), p) for p in sorted((data_root / "test").rglob("*.jpeg"))]
    images += [("notes.png", b"plain text"), ("holiday.png", np.full((300, 300, 3), (200, 30, 30), np.uint8))]
    images.append(("member.dcm", InputError("corrupt", "This archive member is damaged")))
    result = check_site(shipped_classifier, images)
    assert result.n == len(images) - 3 and result.model == "pneumonia-cnn-v3"
    assert [r["name"] for r in result.rejected] == ["notes.png", "holiday.png", "member.dcm"]
    assert "colour" in result.rejected[1]["reason"] and "damaged" in result.rejected[2]["reason"]
    assert set(result.to_json()) == {
        "model", "n", "rejected", "shifted", "p_value", "effect", "estimated_prevalence", "most_atypical",
        "recommendation", "p_value_by_class",
    }  # fmt: skip
    by_class = result.p_value_by_class
    assert set(by_class) == {"normal", "pneumonia"} and all(0 <= p <= 1 for p in by_class.values())
    assert result.p_value == pytest.approx(min(1.0, 2 * min(by_class.values())))
    assert 0 <= result.p_value <= 1 and result.shifted == (result.p_value < 0.05)
    low, high = result.estimated_prevalence["ci95"]
    assert 0 <= low <= result.estimated_prevalence["value"] <= high <= 1
    distances = [item["atypicality"] for item in result.most_atypical]
    assert len(distances) == 10 and distances == sorted(distances, reverse=True)
    assert {item["name"] for item in result.most_atypical} <= {name for name, _ in images}
    assert len(result.picture["site"]) == result.n and len(result.atypicality) == result.n


def test_a_check_of_analysed_images_is_the_check_of_those_images(shipped_classifier, data_root: Path) -> None:
    """Diagnose checks the site from what its analyses read, without running the network again: the
    same images counted and left out (one the feature gate refused counts), the same figures."""
    import skimage.data as sk

    images = [(p.name, p.read_bytes()) for p in sorted((data_root / "test").rglob("*.jpeg"))]
    images += [("notes.png", b"plain text"), ("camera.png", sk.camera())]
    results = []
    for name, source in images:
        try:
            results.append((name, shipped_classifier.analyze(source, display_side=64)))
        except InputError as error:
            results.append((name, error))
    refused = dict(results)["camera.png"]
    assert refused.code == "not_chest_xray" and refused.read is not None  # the gate's refusal keeps what was read
    assert dict(results)["notes.png"].read is None
    by_analysis, by_reading = check_analyzed(shipped_classifier, results), check_site(shipped_classifier, images)
    assert by_analysis.n == by_reading.n == len(images) - 1
    assert by_analysis.rejected == by_reading.rejected == [{"name": "notes.png", "reason": results[-2][1].message}]
    assert by_analysis.p_value == pytest.approx(by_reading.p_value, rel=1e-3, abs=1e-6)
    assert by_analysis.estimated_prevalence["value"] == pytest.approx(
        by_reading.estimated_prevalence["value"], abs=1e-4
    )
    assert [i["name"] for i in by_analysis.most_atypical] == [i["name"] for i in by_reading.most_atypical]
    assert by_analysis.most_atypical[0]["name"] == "camera.png"


def test_a_model_without_a_reference_says_how_to_make_one(tiny_classifier, data_root: Path) -> None:
    with pytest.raises(ValueError, match="scripts/pneumo site-reference tiny"):
        check_site(tiny_classifier, [("a", p) for p in sorted((data_root / "test").rglob("*.jpeg"))])


def test_zip_uploads_unpack_to_their_images_other_formats_and_a_bad_archive_are_rejections(data_root: Path) -> None:
    from pneumo_core.api import gather_uploads

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted((data_root / "test" / "NORMAL").iterdir())[:3]:
            archive.write(path, f"site/{path.name}")
        archive.writestr("site/readme.txt", "not an image")
        archive.writestr("__MACOSX/site/._x.jpeg", b"resource fork")
    images = gather_uploads([("batch.zip", buffer.getvalue()), ("broken.zip", b"PK junk"), ("one.jpeg", b"x")])
    names = [name for name, _ in images]
    assert names[:3] == [f"batch.zip/site/{p.name}" for p in sorted((data_root / "test" / "NORMAL").iterdir())[:3]]
    assert names[3:] == ["batch.zip/site/readme.txt", "broken.zip", "one.jpeg"]  # no __MACOSX entry
    assert isinstance(images[3][1], InputError) and images[3][1].message.startswith("Not read: not JPEG, PNG or DICOM")
    assert isinstance(images[4][1], InputError) and "zip" in images[4][1].message


def test_check_site_command(tmp_path: Path, data_root: Path) -> None:
    from test_cli import cli

    out = tmp_path / "site.json"
    result = cli("check-site", str(data_root / "test"), "--json", str(out))
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["n"] == 24 and report["shifted"] in (True, False) and len(report["most_atypical"]) == 10
    assert "Site check (24 images)" in result.stdout and "most atypical images" in result.stdout


def test_check_site_command_too_few_images_and_no_reference(
    data_root: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch, tiny_registry: Path
) -> None:
    from pneumo_core.cli import main

    monkeypatch.setenv("PNEUMO_MODELS", str(SHIPPED_MODELS))
    assert main(["check-site", str(data_root / "val")]) == 0
    assert "Site check (2 images): too small to tell" in capsys.readouterr().out
    monkeypatch.setenv("PNEUMO_MODELS", str(tiny_registry))
    assert main(["check-site", str(data_root / "val")]) == 2
    assert "has no site reference" in capsys.readouterr().err


def test_the_bootstrap_auc_is_sklearns_weighted_auc() -> None:
    from sklearn.metrics import roc_auc_score

    from pneumo_core.site import _weighted_auc

    rng = np.random.default_rng(7)
    positive, negative = np.round(rng.normal(0.5, 1, 30), 1), np.round(rng.normal(0, 1, 50), 1)  # with ties
    w_positive, w_negative = rng.random(30), rng.random(50)
    expected = roc_auc_score(
        np.r_[np.ones(30), np.zeros(50)], np.r_[positive, negative], sample_weight=np.r_[w_positive, w_negative]
    )
    assert _weighted_auc(positive, w_positive, negative, w_negative) == pytest.approx(expected, abs=1e-12)

"""Adapting to a site: reading labelled sites, refusals, patient grouping, the head inside the
network, and a tiny end-to-end adaptation through the CLI."""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from pneumo_core import InputError
from pneumo_core.adapt import (
    Replay,
    SiteDataError,
    _folds,
    build_adapted_network,
    check_site_data,
    cross_validate,
    fit_head,
    from_archive,
    from_csv,
    from_folder,
    split_home,
)


def test_a_site_folder_gives_labels_and_kaggle_patients(data_root: Path) -> None:
    images = from_folder(data_root / "train")
    assert len(images) == 74 and {i.label for i in images} == {0, 1}
    by_name = {Path(i.name).name: i for i in images}
    assert by_name["IM-0517-0001.jpeg"].patient == by_name["IM-0517-0001-0001.jpeg"].patient == "IM-0517"
    assert all(i.label == (i.name.startswith("PNEUMONIA")) for i in images)


def test_a_csv_gives_labels_and_its_patient_column(tmp_path: Path, data_root: Path) -> None:
    normal, pneumonia = (
        sorted((data_root / "test" / "NORMAL").iterdir())[:2],
        sorted((data_root / "test" / "PNEUMONIA").iterdir())[:1],
    )
    for path in [*normal, *pneumonia]:
        shutil.copy(path, tmp_path / f"scan{path.stat().st_size}.jpg")
    rows = ["path,label,patient"]
    rows += [f"scan{p.stat().st_size}.jpg,NORMAL,A" for p in normal] + [f"scan{pneumonia[0].stat().st_size}.jpg,1,"]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    images = from_csv(tmp_path / "labels.csv")
    assert [i.label for i in images] == [0, 0, 1]
    assert [i.patient for i in images][:2] == ["A", "A"] and images[2].patient == images[2].name  # one per image
    assert all(Path(i.source).exists() for i in images)
    (tmp_path / "bad.csv").write_text("scan.jpg,maybe\n")
    with pytest.raises(SiteDataError, match="unknown label 'maybe'"):
        from_csv(tmp_path / "bad.csv")


def test_an_archive_names_the_class_by_its_folders(data_root: Path) -> None:
    from pneumo_core.inputs import zip_images

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted((data_root / "test").rglob("*.jpeg"))[:30]:
            archive.write(path, f"site/{path.parent.name.lower()}/{path.name}")
        archive.writestr("site/notes/readme.jpeg", b"x")
        archive.writestr("site/normal/scan.bmp", b"BM")  # kept, to be listed as left out
    images = from_archive(zip_images(buffer.getvalue()))
    assert len(images) == 25 and sum(i.label for i in images) == 12
    other = next(i for i in images if i.name == "site/normal/scan.bmp")
    assert (
        isinstance(other.source, InputError) and other.label == 0 and "not JPEG, PNG or DICOM" in other.source.message
    )


@pytest.mark.parametrize(
    ("labels", "patients", "message"),
    [
        ([0] * 10 + [1] * 9, None, "too few readable images: 19"),
        ([1] * 30, None, "only one class: every image is PNEUMONIA"),
        ([0] * 4 + [1] * 30, None, "too few images of one class: 4 NORMAL, 30 PNEUMONIA"),
        (
            [0] * 10 + [1] * 20,
            ["same"] + [f"n{i}" for i in range(9)] + ["same"] + [f"q{i}" for i in range(19)],
            "patient same appears under both labels",
        ),
    ],
)
def test_what_cannot_be_adapted_to_is_refused(labels: list[int], patients: list[str] | None, message: str) -> None:
    y = np.array(labels)
    with pytest.raises(SiteDataError, match=message):
        check_site_data(y, patients or [f"p{i}" for i in range(len(y))])


def test_no_patient_is_on_both_sides_of_a_fold() -> None:
    rng = np.random.default_rng(0)
    groups = rng.integers(0, 60, 200)
    y = (groups % 3 == 0).astype(int)  # one label per patient
    splits = _folds(y, groups, 5, seed=1)
    assert len(splits) == 5
    assert sorted(np.concatenate([held for _, held in splits]).tolist()) == list(range(200))
    for train, held_out in splits:
        assert set(groups[train]).isdisjoint(groups[held_out])


def synthetic_site(rng: np.random.Generator, n: int, d: int = 12):
    y = (rng.random(n) < 0.6).astype(int)
    x = rng.normal(size=(n, d)) + y[:, None] * np.r_[1.2, 0.8, np.zeros(d - 2)]
    return x, y, np.arange(n)


def test_cross_validation_scores_every_image_out_of_fold_and_learns_with_more_images() -> None:
    rng = np.random.default_rng(2)
    x, y, groups = synthetic_site(rng, 400)
    cv = cross_validate(x, y, groups, folds=5)
    assert cv.probabilities.shape == (400,) and np.all((cv.probabilities > 0) & (cv.probabilities < 1))
    assert set(cv.fold) == set(range(5)) and len(set(np.round(cv.thresholds, 6))) <= 5
    assert 0.85 < cv.report["auc"] < 0.99 and cv.report["n"] == 400
    sizes = [p["images"] for p in cv.learning_curve]
    assert sizes == [25, 50, 100, 200, 320] and cv.learning_curve[-1]["all"]
    assert cv.learning_curve[0]["auc"] < cv.learning_curve[-1]["auc"]
    head = fit_head(x[:300], y[:300], groups[:300])
    assert 0 < head.threshold < 1 and head.temperature > 0 and head.regularisation in (0.01, 0.1, 1.0)


def test_replaying_home_images_keeps_the_head_working_at_home_without_losing_the_site() -> None:
    """A site whose images separate partly along another direction than home's: the site-only head
    drifts off home's direction; replaying home images, at the weight inner CV picks, keeps an AUC
    of 0.99 on home patients it never saw, and the site's AUC stays where it was."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(5)

    def population(n: int, direction: np.ndarray):
        y = (rng.random(n) < 0.6).astype(int)
        return rng.normal(size=(n, 12)) + y[:, None] * direction, y, np.arange(n)

    home, site = np.r_[3.5, 2.5, np.zeros(10)], np.r_[1.5, 1.0, 1.5, np.zeros(9)]
    x, y, groups = population(200, site)
    replay = Replay(*population(300, home))
    home_x, home_y, _ = population(300, home)
    site_x, site_y, _ = population(400, site)
    alone, replayed = fit_head(x, y, groups), fit_head(x, y, groups, replay=replay)
    assert alone.replay_weight == 0.0 and replayed.replay_weight > 0.0
    assert roc_auc_score(home_y, alone.logits(home_x)) < 0.985
    assert roc_auc_score(home_y, replayed.logits(home_x)) >= 0.99
    assert abs(roc_auc_score(site_y, replayed.logits(site_x)) - roc_auc_score(site_y, alone.logits(site_x))) < 0.005
    # no candidate keeps home's AUC (home's classes barely differ): the site decides alone
    hopeless = Replay(*population(300, np.r_[0.3, np.zeros(11)]))
    assert fit_head(x, y, groups, replay=hopeless).replay_weight == 0.0


def test_home_is_halved_by_patient_into_replayed_and_kept() -> None:
    from pneumo_core.site import SiteReference

    rng = np.random.default_rng(0)
    patients = np.repeat(np.arange(60), 2)
    labels = (patients % 3 > 0).astype(int)
    reference = SiteReference(rng.normal(size=(120, 4)), labels, rng.random(120), patients)
    replayed, kept = split_home(reference, seed=0)
    assert len(replayed.labels) + len(kept.labels) == 120 and abs(len(replayed.labels) - 60) <= 6
    assert set(replayed.groups).isdisjoint(kept.groups)
    assert 0 < replayed.labels.mean() < 1 and 0 < kept.labels.mean() < 1


def test_the_adapted_network_computes_the_head_on_the_base_embeddings(tiny_classifier) -> None:
    from pneumo_core.network import Network

    contract = tiny_classifier.contract
    x = np.random.default_rng(3).uniform(0, 255, (6, contract.input_size, contract.input_size, 1)).astype(np.float32)
    embeddings = tiny_classifier.network.outputs(x)[1]
    y = np.array([0, 1, 0, 1, 0, 1])
    from pneumo_core.adapt import _logistic

    head = _logistic(embeddings, y, 1.0)
    adapted = build_adapted_network(tiny_classifier.model, contract, head)
    logits, adapted_embeddings = Network(adapted, contract.feature_layers, contract.frame_scale).outputs(x)
    np.testing.assert_allclose(logits, head.logits(embeddings), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(adapted_embeddings, embeddings, rtol=1e-5, atol=1e-5)


def test_adapt_end_to_end_through_the_cli(tmp_path: Path, data_root: Path, tiny_registry: Path, monkeypatch) -> None:
    """A tiny adaptation: unreadable files listed and left out, a registry model that predicts,
    explains and evaluates like any other, out-of-fold figures labelled as such."""
    from pneumo_core import Classifier
    from pneumo_core.card import adapted_model_card
    from pneumo_core.cli import main

    site = tmp_path / "site"
    shutil.copytree(data_root / "test", site)
    (site / "NORMAL" / "broken.jpeg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (site / "NORMAL" / "scan.bmp").write_bytes(b"BM")
    models = tmp_path / "models"
    shutil.copytree(tiny_registry, models)
    monkeypatch.setenv("PNEUMO_MODELS", str(models))
    assert main(["adapt", str(site), "--model", "tiny", "--out", str(models / "tiny-site"), "--folds", "3"]) == 0
    folder = models / "tiny-site"
    metadata = json.loads((folder / "metadata.json").read_text())
    assert metadata["evaluation_kind"] == "site-adapted, out of fold" and metadata["test"]["n"] == 24
    rejected = metadata["adaptation"]["rejected"]
    assert [r["name"] for r in rejected] == ["NORMAL/broken.jpeg", "NORMAL/scan.bmp"]
    assert rejected[1]["reason"].startswith("Not read: not JPEG, PNG or DICOM by name")
    assert metadata["adaptation"]["before"]["n"] == 24 and metadata["adaptation"]["folds"] == 3
    assert len((folder / "test_predictions.csv").read_text().splitlines()) == 25
    card = (folder / "MODEL_CARD.md").read_text()
    assert "site-adapted, out of fold" in card
    low, high = metadata["test"]["ci95"]["ece"]  # the out-of-fold ECE has its interval, in the card too
    assert f"| Expected calibration error | {metadata['test']['ece']:.3f} | {low:.3f} - {high:.3f} |" in card
    older = {**metadata, "adaptation": {k: v for k, v in metadata["adaptation"].items() if not k.startswith("replay")}}
    card = adapted_model_card(older)  # adapted before home images were replayed: says so, no empty list
    assert "no home images replayed" in card and "per outer fold: )" not in card
    written = (folder / "MODEL_CARD.md").read_text()
    assert main(["card", "tiny-site"]) == 0  # rewriting an adapted model's card gives the same adapted card
    assert (folder / "MODEL_CARD.md").read_text() == written
    adapted = Classifier.load(folder)
    image = sorted((data_root / "test" / "NORMAL").iterdir())[0]
    analysis = adapted.analyze(image)
    assert analysis.heatmap.shape == (analysis.pixels.shape[0], analysis.pixels.shape[1])
    assert adapted.contract.operating_threshold == metadata["contract"]["operating_threshold"]
    assert main(["evaluate", str(data_root / "test"), "--model", str(folder)]) == 0
    # the Evaluation page shows the out-of-fold figures, labelled as such
    from conftest import ROOT
    from streamlit.testing.v1 import AppTest

    app = AppTest.from_file(str(ROOT / "app_pages" / "evaluation.py"), default_timeout=120).run()
    app.selectbox(key="eval_model").set_value("tiny-site").run()
    assert not app.exception
    assert any("tiny-site: site-adapted, out of fold (24 images of one site)" in c.value for c in app.caption)
    assert any("not the dataset's test set: no gallery" in i.value for i in app.info)
    # the refusals are one line and exit 2
    few = tmp_path / "few"
    shutil.copytree(data_root / "val", few)
    assert main(["adapt", str(few), "--model", "tiny", "--out", str(models / "never")]) == 2
    assert not (models / "never").exists()
    with pytest.raises(SystemExit) as bad_folds:  # argparse: one usage line and exit 2
        main(["adapt", str(site), "--folds", "1"])
    assert bad_folds.value.code == 2


def test_a_cancelled_adaptation_registers_nothing_and_is_not_an_error(
    tiny_classifier, data_root: Path, tmp_path: Path
) -> None:
    from pneumo_core.adapt import AdaptJob

    job = AdaptJob(tiny_classifier, from_folder(data_root / "test"), tmp_path / "never", folds=3)
    job.cancel()
    job.wait(120)
    assert job.state == "cancelled" and "no model was registered" in job.message
    assert not (tmp_path / "never").exists() and not list(tmp_path.glob(".never*"))
    failing = AdaptJob(tiny_classifier, from_folder(data_root / "val"), tmp_path / "few")
    failing.wait(120)
    assert failing.state == "failed" and "too few readable images" in failing.message


def test_the_home_row_says_which_home_images_scored_it() -> None:
    from pneumo_core.api import adapted_figures

    report = {"n": 343, "auc": 0.99, "accuracy": 0.9, "sensitivity": 0.9, "specificity": 0.9, "ece": 0.02}
    adaptation = {"base_model": "v3", "before": report, "home": report, "replayed_home_images": 343}
    metadata = {"name": "v3-site", "test": report, "adaptation": adaptation}
    assert adapted_figures(metadata)[2]["what"] == "v3-site at home (v3's validation patients, not replayed)"
    del adaptation["replayed_home_images"]  # adapted before replay: scored on the whole validation split
    assert adapted_figures(metadata)[2]["what"] == "v3-site at home (v3's validation split)"

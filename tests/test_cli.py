"""End-to-end CLI on the shipped model and real dataset images."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, SHIPPED_MODELS


def cli(*args: str, models: Path = SHIPPED_MODELS) -> subprocess.CompletedProcess:
    env = {**os.environ, "PNEUMO_MODELS": str(models), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, "-m", "pneumo_core", *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300
    )


@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Path:
    folder = tmp_path_factory.mktemp("batch")
    nested = folder / "nested"
    nested.mkdir()
    for i, path in enumerate(sorted((data_root / "test" / "PNEUMONIA").iterdir())[:5]):
        (nested / f"p{i}.JPEG").write_bytes(path.read_bytes())
    for i, path in enumerate(sorted((data_root / "test" / "NORMAL").iterdir())[:5]):
        (folder / f"n{i}.jpeg").write_bytes(path.read_bytes())
    (folder / "corrupt.jpeg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (folder / "notes.png").write_text("not an image")
    (folder / "scan.bmp").write_bytes(b"BM")  # not read by name: said so on stderr
    (folder / ".DS_Store").write_bytes(b"\0")  # hidden: neither read nor mentioned
    return folder


def test_predict_folder_csv_with_rejections(mixed_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "results.csv"
    result = cli("predict", str(mixed_folder), "--csv", str(out))
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and "2 of 12 inputs could not be scored" in result.stderr
    assert "Skipped 1 file not JPEG, PNG or DICOM by name" in result.stderr
    assert result.stderr.count("scan.bmp") == 1 and "DS_Store" not in result.stderr
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 12 and list(rows[0]) == ["path", "probability_pneumonia", "label", "error"]
    by_name = {Path(r["path"]).name: r for r in rows}
    assert by_name["corrupt.jpeg"]["label"] == "" and "damaged" in by_name["corrupt.jpeg"]["error"]
    assert by_name["notes.png"]["error"] and by_name["notes.png"]["probability_pneumonia"] == ""
    scored = [r for r in rows if not r["error"]]
    assert all(0 <= float(r["probability_pneumonia"]) <= 1 and r["label"] in ("NORMAL", "PNEUMONIA") for r in scored)
    pneumonia_hits = sum(r["label"] == "PNEUMONIA" for r in scored if r["path"].endswith(".JPEG"))
    assert pneumonia_hits >= 4  # the shipped model recognises real pneumonia films


def test_predict_all_good_exits_zero(normal_image: Path, pneumonia_image: Path) -> None:
    result = cli("predict", str(normal_image), str(pneumonia_image))
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(result.stdout.splitlines()))
    assert [r["label"] for r in rows] == ["NORMAL", "PNEUMONIA"]


def test_predict_at_another_prevalence(normal_image: Path, pneumonia_image: Path) -> None:
    paths = (str(normal_image), str(pneumonia_image))
    plain, low = cli("predict", *paths), cli("predict", *paths, "--prevalence", "0.1")
    assert plain.returncode == low.returncode == 0, low.stderr
    plain_rows, low_rows = (list(csv.DictReader(r.stdout.splitlines())) for r in (plain, low))
    assert [r["label"] for r in low_rows] == [r["label"] for r in plain_rows]
    for before, after in zip(plain_rows, low_rows, strict=True):
        assert float(after["probability_pneumonia"]) < float(before["probability_pneumonia"])
    for value in ("1.5", "ten percent"):
        bad = cli("predict", *paths, "--prevalence", value)
        assert bad.returncode == 2 and "between 0 and 1" in bad.stderr


def test_evaluate_json(tmp_path: Path, data_root: Path) -> None:
    for class_name in ("NORMAL", "PNEUMONIA"):
        target = tmp_path / "eval" / class_name
        target.mkdir(parents=True)
        for path in sorted((data_root / "test" / class_name).iterdir()):
            (target / path.name).write_bytes(path.read_bytes())
    out = tmp_path / "report.json"
    result = cli("evaluate", str(tmp_path / "eval"), "--json", str(out))
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    for key in (
        "n",
        "auc",
        "accuracy",
        "sensitivity",
        "specificity",
        "precision",
        "f1",
        "threshold",
        "confusion",
        "ci95",
    ):
        assert key in report
    assert report["n"] + report["rejected"] == len(list((data_root / "test").rglob("*.jpeg")))
    assert set(report["confusion"]) == {"tn", "fp", "fn", "tp"}
    assert report["auc"] > 0.8


@pytest.mark.parametrize("command", ["predict", "check-site", "evaluate"])
def test_an_output_file_that_cannot_be_written_is_a_message_and_the_results_still_print(
    command: str, data_root: Path, tmp_path: Path
) -> None:
    """The output path is a folder: one line says so, the results still reach stdout, exit 2."""
    flag = "--csv" if command == "predict" else "--json"
    target = str(data_root / "test") if command != "predict" else str(data_root / "test" / "NORMAL")
    result = cli(command, target, flag, str(tmp_path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"error: cannot write {tmp_path}" in result.stderr
    expected = {"predict": "path,probability_pneumonia", "check-site": "Site check (", "evaluate": '"auc"'}
    assert expected[command] in result.stdout


def test_missing_model_is_a_message_not_a_traceback(normal_image: Path, tmp_path: Path) -> None:
    result = cli("predict", str(normal_image), "--model", "no-such-model")
    assert result.returncode == 2 and "error:" in result.stderr and "Traceback" not in result.stderr


def test_the_readme_wrapper_runs_the_cli_and_training_from_any_folder(tmp_path: Path) -> None:
    """``scripts/pneumo`` is how the README runs the command line: no activated venv, any folder."""
    env = {**os.environ, "PNEUMO_MODELS": str(SHIPPED_MODELS), "TF_CPP_MIN_LOG_LEVEL": "3"}
    run = lambda *args: subprocess.run(  # noqa: E731
        ["bash", str(ROOT / "scripts" / "pneumo"), *args], capture_output=True, text=True, cwd=tmp_path, env=env,
        timeout=300,
    )  # fmt: skip
    models = run("models")
    assert models.returncode == 0, models.stderr
    assert "* pneumonia-cnn-v3" in models.stdout
    training = run("train", "--help")
    assert training.returncode == 0 and "--members" in training.stdout and "--mixup" not in training.stdout


def test_shipped_model_metadata_is_complete() -> None:
    from pneumo_core import registry

    folder = SHIPPED_MODELS / registry.default_name()
    metadata = registry.read_metadata(folder)
    assert metadata["test"]["n"] == 624
    assert metadata["validation"]["n"] > 500
    assert len(registry.read_predictions(folder)) == 624
    assert (folder / "MODEL_CARD.md").exists() and (folder / "gate.npz").exists()


def test_recalibrate_without_a_dataset_is_a_clear_error(tmp_path: Path) -> None:
    result = cli("recalibrate", "pneumonia-cnn-v1", "--data", str(tmp_path / "nowhere"))
    assert result.returncode == 2
    assert "no dataset at" in result.stderr and "Traceback" not in result.stderr


def test_bad_training_settings_fail_before_any_training(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "train.py", "--members", "9", "--out", str(tmp_path / "never")],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2 and "members must be 1 to 4" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "never").exists()
    bad_rule = cli("recalibrate", "pneumonia-cnn-v1", "--target-sensitivity", "1.5")
    assert bad_rule.returncode == 2 and "not a sensitivity" in bad_rule.stderr

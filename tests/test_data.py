"""Dataset listing, patient ids and the patient-grouped validation split."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import ROOT

from pneumo_core.data import class_weights, grouped_split, list_split, patient_id, resolve_data_dir


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("person1000_bacteria_2931.jpeg", "person1000"),
        ("person1000_virus_1681.jpeg", "person1000"),
        ("IM-0115-0001.jpeg", "IM-0115"),
        ("NORMAL2-IM-1427-0001.jpeg", "NORMAL2-IM-1427"),
        ("something_else.png", "something_else"),
    ],
)
def test_patient_id(name: str, expected: str) -> None:
    assert patient_id(name) == expected


def test_fixture_split_never_shares_a_patient(data_root: Path) -> None:
    samples = list_split(data_root, "train")
    assert len({s.patient_id for s in samples}) < len(samples)  # some patients have several images
    for seed in range(5):
        fit, val = grouped_split(samples, 0.15, seed=seed)
        assert {s.patient_id for s in fit}.isdisjoint({s.patient_id for s in val})
        assert len(fit) + len(val) == len(samples) and {s.label for s in val} == {0, 1}


def test_grouped_split_is_reproducible(data_root: Path) -> None:
    samples = list_split(data_root, "train")
    assert grouped_split(samples, 0.15, seed=7)[1] == grouped_split(samples, 0.15, seed=7)[1]


def test_class_weights_balance_the_loss() -> None:
    weights = class_weights([0, 1, 1, 1])
    assert weights == pytest.approx({0: 2.0, 1: 4 / 6})
    assert 1 * weights[0] == pytest.approx(3 * weights[1])  # each class carries the same total weight


def test_class_weights_need_both_classes() -> None:
    with pytest.raises(ValueError, match="one class"):
        class_weights([1, 1])


def test_data_dir_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PNEUMO_DATA", "/somewhere")
    assert resolve_data_dir() == Path("/somewhere")
    assert resolve_data_dir("/explicit") == Path("/explicit")
    monkeypatch.delenv("PNEUMO_DATA")
    assert resolve_data_dir() == ROOT / "data" / "chest_xray"  # the project's, from any working folder
    monkeypatch.chdir("/")
    assert resolve_data_dir() == ROOT / "data" / "chest_xray"


def test_missing_layout_is_explained(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="NORMAL"):
        list_split(tmp_path, "train")

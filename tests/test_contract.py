"""The model contract: validated, round-trips through JSON, decides labels and bands."""

from __future__ import annotations

import json

import pytest

from pneumo_core.contract import ModelContract, TrainingConfig


def test_round_trip() -> None:
    contract = ModelContract(input_size=160, operating_threshold=0.37, temperature=1.4)
    assert ModelContract.from_dict(json.loads(json.dumps(contract.to_dict()))) == contract


def test_unknown_keys_are_ignored() -> None:
    assert ModelContract.from_dict({"input_size": 128, "future_field": 1}).input_size == 128


@pytest.mark.parametrize(
    "kwargs",
    [
        {"operating_threshold": 0.0},
        {"operating_threshold": 1.0},
        {"input_size": 8},
        {"normalization": "zscore"},
        {"temperature": 0},
        {"channels": 3},
        {"calibration_prevalence": 1.0},
    ],
)
def test_invalid_contracts(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        ModelContract(**kwargs)


def test_label_and_band() -> None:
    contract = ModelContract(operating_threshold=0.6, borderline_margin=0.1)
    assert contract.label_for(0.6) == "PNEUMONIA" and contract.label_for(0.59) == "NORMAL"
    assert contract.band_for(0.65) == "borderline: review"
    assert contract.band_for(0.9) == "likely pneumonia" and contract.band_for(0.2) == "likely normal"


def test_training_config_round_trip() -> None:
    config = TrainingConfig(epochs=3, train_subset=100)
    assert TrainingConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize(
    "bad",
    [
        {"epochs": 0},
        {"learning_rate": 0.0},
        {"mixup": -0.2},
        {"border_erase": 1.5},
        {"target_sensitivity": 1.2},
        {"max_zoom_in": 1.0},
        {"weight_average": 1.0},
        {"weight_decay": -0.1},
        {"bn_momentum": 1.0},
        {"bn_momentum": 0.0},
        {"bn_reestimate": -1},
        {"bn_reestimate": 64, "weight_average": 0.9},
        {"monitor": "val_auc"},
        {"normalization": "zscore"},
    ],
)
def test_training_config_rejects_settings_that_would_fail_mid_run(bad: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(bad)).split("_")[0]):
        TrainingConfig(**bad)
    assert TrainingConfig(target_sensitivity=None).target_sensitivity is None  # Youden's J

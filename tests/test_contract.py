"""The model contract: validated, round-trips through JSON, decides labels and bands."""

from __future__ import annotations

import json

import pytest

from pneumo_core.config import TrainingConfig, contract_for
from pneumo_core.contract import GRADCAM_LAYER, ModelContract


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
        {"target_sensitivity": 1.2},
        {"members": 0},
        {"train_subset": 0},
    ],
)
def test_training_config_rejects_settings_that_would_fail_mid_run(bad: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(bad)).split("_")[0]):
        TrainingConfig(**bad)
    assert TrainingConfig(target_sensitivity=None).target_sensitivity is None  # Youden's J


def test_a_configuration_trains_for_the_contract_it_derives() -> None:
    """Input size and normalization come from the contract's one definition, not a second copy."""
    assert TrainingConfig().image_size == ModelContract().input_size
    contract = contract_for(TrainingConfig(image_size=128, members=3))
    assert contract.input_size == 128 and contract.normalization == ModelContract().normalization
    assert contract.feature_layers == ("m0_stage1_out", "m0_stage2_out", "m0_stage3_out", "pool")
    assert contract.gradcam_layer == GRADCAM_LAYER

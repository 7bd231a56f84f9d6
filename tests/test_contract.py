"""The model contract: validated, round-trips through JSON, decides labels and bands."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

from pneumo_core.config import TrainingConfig, contract_for
from pneumo_core.contract import GRADCAM_LAYER, ModelContract


def test_round_trip() -> None:
    contract = ModelContract(input_size=160, operating_threshold=0.37, temperature=1.4)
    assert ModelContract.from_dict(json.loads(json.dumps(contract.to_dict()))) == contract


def test_unknown_keys_are_ignored() -> None:
    assert ModelContract.from_dict({"input_size": 128, "future_field": 1}).input_size == 128


def test_what_a_contract_that_records_nothing_means() -> None:
    """Older metadata leaves fields out: these defaults are what such a model is read with."""
    assert ModelContract.from_dict({}).to_dict() == {
        "input_size": 224,
        "channels": 1,
        "normalization": "equalize_hist",
        "class_names": ["NORMAL", "PNEUMONIA"],
        "operating_threshold": 0.5,
        "temperature": 1.0,
        "frame_scale": 1.0,
        "borderline_margin": 0.1,
        "calibration_prevalence": None,
        "gradcam_layer": "gradcam_target",
        "feature_layers": ["pool"],
    }
    assert ModelContract(normalization="none").normalization == "none"


def test_a_contract_cannot_be_changed_in_place() -> None:
    contract = ModelContract()
    with pytest.raises(dataclasses.FrozenInstanceError):
        contract.operating_threshold = 0.9  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"operating_threshold": 0.0}, "operating_threshold must be in (0, 1), got 0.0"),
        ({"operating_threshold": 1.0}, "operating_threshold must be in (0, 1), got 1.0"),
        ({"input_size": 31}, "input_size must be in [32, 1024], got 31"),
        ({"input_size": 1025}, "input_size must be in [32, 1024], got 1025"),
        ({"normalization": "zscore"}, "unknown normalization 'zscore'; use one of ('equalize_hist', 'none')"),
        ({"temperature": 0}, "temperature must be positive, got 0"),
        ({"channels": 3}, "only single-channel (grayscale) models are supported"),
        ({"calibration_prevalence": 1.0}, "calibration_prevalence must be in (0, 1), got 1.0"),
        ({"calibration_prevalence": 0.0}, "calibration_prevalence must be in (0, 1), got 0.0"),
        ({"frame_scale": 0.49}, "frame_scale must be in [0.5, 1], got 0.49"),
        ({"frame_scale": 1.01}, "frame_scale must be in [0.5, 1], got 1.01"),
        ({"borderline_margin": -0.1}, "borderline_margin must be in [0, 0.5), got -0.1"),
        ({"borderline_margin": 0.5}, "borderline_margin must be in [0, 0.5), got 0.5"),
    ],
)
def test_invalid_contracts_are_refused_with_the_reason(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        ModelContract(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"input_size": 32},
        {"input_size": 1024},
        {"frame_scale": 0.5},
        {"frame_scale": 1.0},
        {"calibration_prevalence": 0.001},
        {"borderline_margin": 0.0},
        {"operating_threshold": 0.999, "temperature": 0.01},
    ],
)
def test_the_edges_of_the_valid_ranges_are_accepted(kwargs: dict) -> None:
    assert ModelContract(**kwargs).to_dict().items() >= {k: v for k, v in kwargs.items()}.items()


def test_recalibration_replaces_only_what_it_is_given() -> None:
    contract = ModelContract(frame_scale=0.8, calibration_prevalence=0.6)
    kept = contract.with_calibration(operating_threshold=0.7, temperature=2.0)
    assert (kept.operating_threshold, kept.temperature, kept.frame_scale, kept.calibration_prevalence) == (
        0.7,
        2.0,
        0.8,
        0.6,
    )
    changed = contract.with_calibration(
        operating_threshold=0.7, temperature=2.0, frame_scale=0.9, calibration_prevalence=0.4
    )
    assert (changed.frame_scale, changed.calibration_prevalence) == (0.9, 0.4)


def test_label_and_band() -> None:
    contract = ModelContract(operating_threshold=0.6, borderline_margin=0.1)
    assert contract.label_for(0.6) == "PNEUMONIA" and contract.label_for(0.59) == "NORMAL"
    assert contract.band_for(0.65) == "borderline: review"
    assert contract.band_for(0.9) == "likely pneumonia" and contract.band_for(0.2) == "likely normal"
    # at exactly the margin the reading is no longer borderline (powers of two: exact in floating point)
    edges = ModelContract(operating_threshold=0.5, borderline_margin=0.25)
    assert edges.band_for(0.75) == "likely pneumonia" and edges.band_for(0.25) == "likely normal"
    assert edges.band_for(0.7) == "borderline: review"
    # with no margin, the band agrees with the verdict at the threshold itself
    sharp = ModelContract(operating_threshold=0.5, borderline_margin=0.0)
    assert sharp.label_for(0.5) == "PNEUMONIA" and sharp.band_for(0.5) == "likely pneumonia"


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

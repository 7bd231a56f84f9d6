"""benchmarks/sweep.py: variants trained on one split and scored on validation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks import sweep


def test_variants_parse_as_json_values_or_bare_strings() -> None:
    assert sweep.parse_variant("bn_momentum=0.9,lr_schedule=cosine,bn_reestimate=512") == {
        "bn_momentum": 0.9, "lr_schedule": "cosine", "bn_reestimate": 512,
    }  # fmt: skip
    with pytest.raises(ValueError, match="key=value"):
        sweep.parse_variant("bn_momentum")


def test_a_bad_variant_is_refused_before_any_training(data_root: Path) -> None:
    with pytest.raises(ValueError, match="bn_momentum"):
        sweep.main(["--data", str(data_root), "--variant", "epochs=1", "--variant", "bn_momentum=1.5"])
    # the images are loaded once, through the base's contract, so a variant cannot change it
    with pytest.raises(SystemExit, match="normalization"):
        sweep.main(["--data", str(data_root), "--variant", "normalization=clahe"])


def test_each_variant_and_seed_gets_a_scored_row(data_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "runs.jsonl"
    base = "train_subset=64,image_size=64,width=8,epochs=1,batch_size=16"
    code = sweep.main([
        "--data", str(data_root), "--base", base, "--variant", "bn_reestimate=32", "--variant", "bn_momentum=0.9",
        "--seeds", "1,2", "--out", str(out),
    ])  # fmt: skip
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert code == 0 and len(rows) == 4
    assert [(r["variant"], r["seed"]) for r in rows] == [
        ({"bn_reestimate": 32}, 1), ({"bn_reestimate": 32}, 2), ({"bn_momentum": 0.9}, 1), ({"bn_momentum": 0.9}, 2),
    ]  # fmt: skip
    for row in rows:
        assert row["epochs_run"] == 1 and row["epoch_kept"] == 1 and len(row["val_loss"]) == 1
        assert np.isfinite(row["log_loss"]) and 0 <= row["auc"] <= 1 and row["temperature"] > 0
    assert rows[0]["val_loss"] != rows[1]["val_loss"]  # the seed reaches the network

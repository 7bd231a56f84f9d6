"""Train variants of a configuration side by side and score each on validation (never the test set).

    python benchmarks/sweep.py --data DIR --config models/pneumonia-cnn-v1/metadata.json \
        --variant bn_momentum=0.99 --variant bn_momentum=0.9 --seeds 1337,1338 [--out results.jsonl]

Each variant (``key=value,key=value`` over ``TrainingConfig`` fields, values as JSON or bare
strings) is trained once per seed with ``training._fit_member``, exactly as ``train.py`` trains one
network: same patient-grouped split (from the configuration's own seed, so every run sees the same
images), class weights, augmentation, schedule and early stopping. It prints, per run, the
validation loss of every epoch, the epoch kept, and the calibrated validation log-loss and AUC (the
temperature and frame scale chosen as ``train.py``'s calibration step chooses them).

It is for choosing what to train next, on a fast machine: it runs on any Keras 3 backend, so
``KERAS_BACKEND=torch`` runs it on a GPU machine that has PyTorch and no TensorFlow. Numbers from
another backend or seed are not those of a CPU ``train.py`` run; a candidate for the default is
still trained with ``train.py`` and compared with ``validation_scores.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import add_data_argument


def parse_variant(text: str) -> dict:
    """``"bn_momentum=0.9,lr_schedule=cosine"`` -> ``{"bn_momentum": 0.9, "lr_schedule": "cosine"}``."""
    values = {}
    for item in filter(None, text.split(",")):
        key, sep, raw = item.partition("=")
        if not sep:
            raise ValueError(f"variant item {item!r} is not key=value")
        try:
            values[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            values[key.strip()] = raw.strip()
    return values


def calibrated_scores(model, x_val: np.ndarray, y_val: np.ndarray) -> dict:
    """Calibrated validation log-loss at the best frame scale, as ``training.calibrate`` picks it."""
    from sklearn.metrics import roc_auc_score

    from pneumo_core.evaluation import temperature_scaled
    from pneumo_core.training import FRAME_SCALES, framed

    best = None
    for scale in FRAME_SCALES:
        logits = np.asarray(model.predict(framed(x_val, scale), batch_size=128, verbose=0)).reshape(-1)
        temperature, p, loss = temperature_scaled(y_val, logits)
        if best is None or loss < best["log_loss"]:
            best = {"log_loss": loss, "auc": float(roc_auc_score(y_val, p)), "frame_scale": scale,
                    "temperature": float(temperature)}  # fmt: skip
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_argument(parser)
    parser.add_argument("--config", help="a model's metadata.json to start from (default: TrainingConfig())")
    parser.add_argument("--base", default="", help="key=value[,key=value] applied to the config for every run")
    parser.add_argument("--variant", action="append", default=[], help="key=value[,key=value]; repeatable")
    parser.add_argument("--seeds", default="", help="comma-separated network seeds (default: the config's)")
    parser.add_argument("--out", help="append one JSON line per run here")
    args = parser.parse_args(argv)

    import keras

    from pneumo_core.contract import TrainingConfig
    from pneumo_core.data import class_weights, load_arrays, training_split
    from pneumo_core.training import _fit_member, contract_for

    values = TrainingConfig().to_dict()
    if args.config:
        values.update(json.loads(Path(args.config).read_text())["training_config"])
    values.update(parse_variant(args.base))
    base = TrainingConfig.from_dict(values)
    variants = [parse_variant(v) for v in args.variant] or [{}]
    configs = [TrainingConfig.from_dict({**values, **v}) for v in variants]  # validated before any training
    seeds = [int(s) for s in args.seeds.split(",") if s] or [base.seed]
    if any((c.image_size, c.normalization) != (base.image_size, base.normalization) for c in configs):
        raise SystemExit("error: variants must share image_size and normalization (the arrays are loaded once)")

    contract = contract_for(replace(base, members=1))
    fit_samples, val_samples = training_split(args.data, base)
    started = time.time()
    x_fit, y_fit = load_arrays(fit_samples, contract)
    x_val, y_val = load_arrays(val_samples, contract)
    weights = class_weights(y_fit)
    print(f"backend {keras.backend.backend()}; {len(x_fit)} training and {len(x_val)} validation images "
          f"loaded in {time.time() - started:.0f} s", flush=True)  # fmt: skip

    for variant, config in zip(variants, configs, strict=True):
        for seed in seeds:
            started = time.time()
            model, history = _fit_member(
                contract, replace(config, seed=seed), 0, (x_fit, y_fit), (x_val, y_val), weights,
                None, None, "none", None,
            )  # fmt: skip
            val_loss = history["val_loss"]
            kept = int(np.argmin(val_loss)) + 1
            row = {"variant": variant, "seed": seed, "epochs_run": len(val_loss), "epoch_kept": kept,
                   "val_loss": [round(v, 4) for v in val_loss], "seconds": round(time.time() - started, 1),
                   **calibrated_scores(model, x_val, y_val.astype(np.float32))}  # fmt: skip
            print(
                f"{variant or 'base'} seed {seed}: calibrated validation log-loss {row['log_loss']:.4f}, "
                f"AUC {row['auc']:.4f}, epoch {kept} of {len(val_loss)} kept, {row['seconds']:.0f} s; "
                f"validation loss by epoch {' '.join(f'{v:.3f}' for v in val_loss)}",
                flush=True,
            )
            if args.out:
                with open(args.out, "a") as handle:
                    handle.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

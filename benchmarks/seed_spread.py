"""Seed spread of a training configuration, and the registered candidate epoch rule (issue 22).

    python benchmarks/seed_spread.py train --seed 2337 [--rule fixed-cosine|bn-refresh] [--config META] [--out DIR]
    python benchmarks/seed_spread.py summary MODEL_DIR [MODEL_DIR ...] [--write NAME]

``train`` runs ``train.py`` with a configuration (default: the shipped default's metadata) and
another seed, into ``runs/seeds/`` unless ``--out`` says otherwise. ``--rule fixed-cosine`` is the
candidate registered in docs/experiments.md (2026-12-02 11:00 UTC): no early stopping and no plateau
schedule; each member trains a fixed 12 epochs with the learning rate decayed by a cosine from the
configuration's rate to a hundredth of it, and keeps its last weights. ``--rule bn-refresh`` is the
second (registered 2026-12-02 15:50 UTC; neither was adopted, see docs/experiments.md): today's early stopping, but before each
validation pass every BatchNorm layer's moving statistics are re-estimated on ``REFRESH_IMAGES``
training images, without augmentation (``refresh_batch_norm``). Candidates are applied here, by
replacing ``fitting.epoch_callbacks`` (and, for bn-refresh, wrapping ``fitting._fit_member`` to
reach the training images) for this process, so that the product trains one rule until a
candidate is adopted.

``summary`` prints, for the model folders given (trained with one rule), each one's validation and
test AUC, accuracy, sensitivity, specificity, calibrated validation log-loss and kept epochs per
member, then the mean and range over them. ``--write NAME`` stores the ranges, in words, in that
registered model's metadata (``seed_spread``) and rewrites its card.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import ROOT, add_data_argument

FIXED_EPOCHS = 12
REFRESH_IMAGES = 2048
METRICS = ("auc", "accuracy", "sensitivity", "specificity")


def cosine_callbacks(config) -> list:
    """The candidate rule's only callback: the learning rate from ``config.learning_rate`` down to a
    hundredth of it by a cosine over ``config.epochs`` epochs."""
    import keras

    start, end = config.learning_rate, config.learning_rate / 100

    def rate(epoch: int, _: float) -> float:
        return end + 0.5 * (start - end) * (1 + math.cos(math.pi * epoch / max(1, config.epochs - 1)))

    return [keras.callbacks.LearningRateScheduler(rate)]


def refresh_batch_norm(model, images: np.ndarray, batch_size: int) -> None:
    """Replace every BatchNorm layer's moving mean and variance by the average of its batch
    statistics over ``images``: forward passes in training mode (dropout included) that skip the
    augmentation layers and update no weight. Each batch is weighted 1 / (batches so far) through
    the layer's momentum, so the result is the plain mean over batches, not a decayed one."""
    import keras

    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    trunk = keras.Model(model.get_layer("rescale").input, model.outputs)  # the model without augmentation
    momenta = [layer.momentum for layer in norms]
    try:
        for index, start in enumerate(range(0, len(images), batch_size)):
            for layer in norms:
                layer.momentum = index / (index + 1)
            trunk(images[start : start + batch_size], training=True)
    finally:
        for layer, momentum in zip(norms, momenta, strict=True):
            layer.momentum = momentum


def bn_refresh_rule() -> None:
    """Install the bn-refresh candidate for this process: each member's fit gets a callback that
    refreshes BatchNorm statistics on a fixed sample of its own training images before validation."""
    import keras

    from pneumo_core import fitting

    fit_member, callbacks = fitting._fit_member, fitting.epoch_callbacks

    class RefreshBatchNorm(keras.callbacks.Callback):
        def __init__(self, images: np.ndarray, batch_size: int) -> None:
            super().__init__()
            self.images, self.batch_size = images, batch_size

        def on_test_begin(self, logs=None) -> None:
            refresh_batch_norm(self.model, self.images, self.batch_size)

    def refreshed_fit_member(contract, config, data, *args):
        chosen = np.random.default_rng(config.seed).choice(
            len(data.x_fit), min(REFRESH_IMAGES, len(data.x_fit)), replace=False
        )
        refresher = RefreshBatchNorm(data.x_fit[np.sort(chosen)], config.batch_size)
        fitting.epoch_callbacks = lambda cfg: [refresher, *callbacks(cfg)]
        try:
            return fit_member(contract, config, data, *args)
        finally:
            fitting.epoch_callbacks = callbacks

    fitting._fit_member = refreshed_fit_member


def kept_epochs(metadata: dict) -> list[int]:
    """Per member, the epoch whose weights were kept: the lowest validation loss under early stopping
    (its best weights are restored), the last epoch when the run kept its last weights."""
    losses, kept, start = metadata["history"]["val_loss"], [], 0
    last = metadata.get("epoch_rule") == "fixed-cosine"
    for run in metadata["member_epochs"]:
        member = losses[start : start + run]
        kept.append(run if last else 1 + min(range(run), key=member.__getitem__))
        start += run
    return kept


def summary(folders: list[Path], write: str | None = None) -> None:
    rows, seeds, kept = [], [], []
    for folder in folders:
        metadata = json.loads((folder / "metadata.json").read_text())
        row = {f"val {m}": metadata["validation"][m] for m in METRICS}
        row.update({f"test {m}": metadata["test"][m] for m in METRICS})
        row["val log-loss"] = metadata["validation"]["log_loss"]
        seeds.append(metadata["training_config"]["seed"])
        kept += kept_epochs(metadata)
        print(f"{folder.name} (seed {seeds[-1]}): kept epochs {kept_epochs(metadata)}; "
              + ", ".join(f"{k} {v:.4f}" for k, v in row.items()))  # fmt: skip
        rows.append(row)
    print(f"\nover {len(rows)} seeds: mean [min-max], range")
    for key in rows[0]:
        values = [r[key] for r in rows]
        print(
            f"  {key}: {sum(values) / len(values):.4f} [{min(values):.4f}-{max(values):.4f}], {max(values) - min(values):.4f}"
        )
    if write:
        from pneumo_core import registry
        from pneumo_core.card import model_card

        def span(key: str, percent: bool) -> str:
            low, high = min(r[key] for r in rows), max(r[key] for r in rows)
            return f"{100 * low:.1f}-{100 * high:.1f}%" if percent else f"{low:.3f}-{high:.3f}"

        text = (
            f"seeds {', '.join(map(str, seeds))} gave validation AUC {span('val auc', False)}, accuracy "
            f"{span('val accuracy', True)}; official test AUC {span('test auc', False)}, accuracy "
            f"{span('test accuracy', True)}, sensitivity {span('test sensitivity', True)}, specificity "
            f"{span('test specificity', True)}; kept epochs per member {min(kept)} to {max(kept)}"
        )
        folder = registry.models_dir() / write
        metadata = json.loads((folder / registry.METADATA_FILE).read_text())
        trained = [seed for seed, f in zip(seeds, folders, strict=True) if f.resolve().parent != registry.models_dir()]
        command = (
            f"each of `python benchmarks/seed_spread.py train --seed S` for S in {', '.join(map(str, trained))}, then "
            "`python benchmarks/seed_spread.py summary "
            + " ".join(
                str(f.resolve().relative_to(ROOT)) if f.resolve().is_relative_to(ROOT) else str(f) for f in folders
            )
            + "`"
        )
        metadata["seed_spread"] = {"summary": text, "command": command}
        (folder / registry.METADATA_FILE).write_text(json.dumps(metadata, indent=2))
        (folder / registry.CARD_FILE).write_text(model_card(metadata))
        print(f"wrote the spread into {folder / registry.METADATA_FILE} and its card")


def train(args: argparse.Namespace) -> int:
    import train as train_script
    from pneumo_core import fitting

    out = args.out or ROOT / "runs" / "seeds" / f"{args.rule}-seed-{args.seed}"
    argv = ["--data", str(args.data), "--config", str(args.config), "--seed", str(args.seed), "--out", str(out)]
    if args.rule == "fixed-cosine":
        fitting.epoch_callbacks = cosine_callbacks
        argv += ["--epochs", str(FIXED_EPOCHS)]
    elif args.rule == "bn-refresh":
        bn_refresh_rule()
    code = train_script.main(argv)
    if code == 0:
        metadata_file = Path(out) / "metadata.json"
        metadata = json.loads(metadata_file.read_text())
        metadata["epoch_rule"] = args.rule  # what summary reads; the folder is an experiment, not a product
        metadata_file.write_text(json.dumps(metadata, indent=2))
    return code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("train", help="train one seed")
    run.add_argument("--seed", type=int, required=True)
    run.add_argument("--rule", choices=["early-stopping", "fixed-cosine", "bn-refresh"], default="early-stopping")
    run.add_argument("--config", type=Path, default=ROOT / "models" / "pneumonia-cnn-v3" / "metadata.json")
    run.add_argument("--out", type=Path)
    add_data_argument(run)
    report = commands.add_parser("summary", help="mean and range over trained model folders")
    report.add_argument("folders", type=Path, nargs="+")
    report.add_argument("--write", metavar="NAME", help="store the spread in this registered model's metadata and card")
    args = parser.parse_args()
    if args.command == "summary":
        summary(args.folders, args.write)
        return 0
    return train(args)


if __name__ == "__main__":
    sys.exit(main())

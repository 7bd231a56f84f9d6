"""Seed spread of a training configuration (issue 22).

    python benchmarks/seed_spread.py train --seed 2337 [--config META] [--out DIR] [--without-op-determinism]
    python benchmarks/seed_spread.py summary MODEL_DIR [MODEL_DIR ...] [--write NAME]
    python benchmarks/seed_spread.py adapted MODEL_DIR [MODEL_DIR ...] [--data DIR] [--folds K] [--write NAME]

``train`` runs ``train.py`` with a configuration (default: the shipped default's metadata) and
another seed, into ``runs/seeds/`` unless ``--out`` says otherwise. ``--without-op-determinism``
trains with TensorFlow's op determinism left off (into a folder named so), only to measure what it
costs: compare the two runs' ``training_seconds``, which ``summary`` prints.

``summary`` prints, for the model folders given, each one's validation and test AUC, accuracy,
sensitivity, specificity, calibrated validation log-loss and kept epochs per member, then the mean
and range over them. ``--write NAME`` stores the ranges, in words, in that registered model's
metadata (``seed_spread``) and rewrites its card.

``adapted`` asks whether a site that adapts (``pneumo_core.adapt``) still draws the seed lottery: each
model folder given is adapted to the official test set as ``benchmarks/adapt_site.py`` does (the test
set plays "site B"; patient-grouped K-fold cross-validation, one out-of-fold prediction per image),
and the base's own test figures are printed beside the adapted ones, then the mean and range of each.
``--write NAME`` stores the adapted ranges beside the seed spread in that model's metadata and card.

The three candidate epoch rules tried against today's (fixed-cosine, bn-refresh and ema, none
adopted: docs/experiments.md) were applied here by a ``--rule`` option; their code is in git
history, at commits bb34cdd (the first two) and bfc60f1 (ema).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import ROOT, add_data_argument, rewrite_metadata

METRICS = ("auc", "accuracy", "sensitivity", "specificity")


def kept_epochs(metadata: dict) -> list[int]:
    """Per member, the epoch whose weights were kept: the lowest validation loss (early stopping
    restores its best weights)."""
    losses, kept, start = metadata["history"]["val_loss"], [], 0
    for run in metadata["member_epochs"]:
        member = losses[start : start + run]
        kept.append(1 + min(range(run), key=member.__getitem__))
        start += run
    return kept


def _print_spread(rows: list[dict[str, float]], heading: str) -> None:
    print(f"\n{heading}: mean [min-max], range")
    for key in rows[0]:
        values = [r[key] for r in rows]
        print(
            f"  {key}: {sum(values) / len(values):.4f} [{min(values):.4f}-{max(values):.4f}], {max(values) - min(values):.4f}"
        )


def _span(rows: list[dict[str, float]], key: str, percent: bool) -> str:
    low, high = min(r[key] for r in rows), max(r[key] for r in rows)
    return f"{100 * low:.1f}-{100 * high:.1f}%" if percent else f"{low:.3f}-{high:.3f}"


def _shown(folders: list[Path]) -> str:
    return " ".join(str(f.resolve().relative_to(ROOT)) if f.resolve().is_relative_to(ROOT) else str(f) for f in folders)


def _write(name: str, update: dict) -> None:
    """Store ``update`` in a registered model's ``seed_spread`` (keeping what it does not replace) and
    rewrite its card."""
    from pneumo_core import registry

    folder = registry.models_dir() / name
    metadata = json.loads((folder / registry.METADATA_FILE).read_text())
    metadata["seed_spread"] = {**(metadata.get("seed_spread") or {}), **update}
    rewrite_metadata(folder, metadata)
    print(f"wrote the spread into {folder / registry.METADATA_FILE} and its card")


def summary(folders: list[Path], write: str | None = None) -> None:
    rows, seeds, kept = [], [], []
    for folder in folders:
        metadata = json.loads((folder / "metadata.json").read_text())
        row = {f"val {m}": metadata["validation"][m] for m in METRICS}
        row.update({f"test {m}": metadata["test"][m] for m in METRICS})
        row["val log-loss"] = metadata["validation"]["log_loss"]
        row["training seconds"] = metadata["training_seconds"]
        seeds.append(metadata["training_config"]["seed"])
        kept += kept_epochs(metadata)
        print(f"{folder.name} (seed {seeds[-1]}): kept epochs {kept_epochs(metadata)}; "
              + ", ".join(f"{k} {v:.4f}" for k, v in row.items()))  # fmt: skip
        rows.append(row)
    _print_spread(rows, f"over {len(rows)} seeds")
    if write:
        from pneumo_core import registry

        text = (
            f"seeds {', '.join(map(str, seeds))} gave validation AUC {_span(rows, 'val auc', False)}, accuracy "
            f"{_span(rows, 'val accuracy', True)}; official test AUC {_span(rows, 'test auc', False)}, accuracy "
            f"{_span(rows, 'test accuracy', True)}, sensitivity {_span(rows, 'test sensitivity', True)}, specificity "
            f"{_span(rows, 'test specificity', True)}; kept epochs per member {min(kept)} to {max(kept)}"
        )
        trained = [seed for seed, f in zip(seeds, folders, strict=True) if f.resolve().parent != registry.models_dir()]
        command = (
            f"each of `python benchmarks/seed_spread.py train --seed S` for S in {', '.join(map(str, trained))}, then "
            f"`python benchmarks/seed_spread.py summary {_shown(folders)}`"
        )
        _write(write, {"summary": text, "command": command})


def adapted(folders: list[Path], data: Path, folds: int, write: str | None = None) -> None:
    import tempfile

    from pneumo_core import Classifier
    from pneumo_core.adapt import adapt, from_folder
    from pneumo_core.evaluation import summary as figures

    site = from_folder(data / "test")
    rows, seeds = [], []
    with tempfile.TemporaryDirectory() as scratch:
        for folder in folders:
            base = Classifier.load(folder)
            result = adapt(base, site, Path(scratch) / folder.name, folds=folds)
            before, after = result.metadata["adaptation"]["before"], figures(result.metadata["test"])
            rows.append({**{f"base {m}": before[m] for m in METRICS}, **{f"adapted {m}": after[m] for m in METRICS}})
            seeds.append(base.metadata["training_config"]["seed"])
            print(f"{folder.name} (seed {seeds[-1]}): "
                  + ", ".join(f"{k} {v:.4f}" for k, v in rows[-1].items()), flush=True)  # fmt: skip
    _print_spread(rows, f"over {len(rows)} base models, adapted to {data / 'test'} ({folds}-fold, grouped by patient)")
    if write:
        text = (
            f"on the official test set as site B (`adapt`, {folds}-fold cross-validation grouped by "
            f"patient, out of fold), seeds {', '.join(map(str, seeds))} gave AUC {_span(rows, 'adapted auc', False)}, "
            f"accuracy {_span(rows, 'adapted accuracy', True)}, sensitivity "
            f"{_span(rows, 'adapted sensitivity', True)}, specificity {_span(rows, 'adapted specificity', True)}"
        )
        command = f"`python benchmarks/seed_spread.py adapted {_shown(folders)}`"
        _write(write, {"adapted": {"summary": text, "command": command}})


def train(args: argparse.Namespace) -> int:
    import train as train_script

    out = args.out or ROOT / "runs" / "seeds" / f"early-stopping-seed-{args.seed}"
    if args.without_op_determinism:  # only to measure the price of determinism (issue 22)
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism = lambda: None
        out = args.out or out.with_name(f"{out.name}-without-op-determinism")
    return train_script.main(
        ["--data", str(args.data), "--config", str(args.config), "--seed", str(args.seed), "--out", str(out)]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("train", help="train one seed")
    run.add_argument("--seed", type=int, required=True)
    run.add_argument("--config", type=Path, default=ROOT / "models" / "pneumonia-cnn-v3" / "metadata.json")
    run.add_argument("--out", type=Path)
    run.add_argument("--without-op-determinism", action="store_true", help="to measure what determinism costs")
    add_data_argument(run)
    report = commands.add_parser("summary", help="mean and range over trained model folders")
    report.add_argument("folders", type=Path, nargs="+")
    report.add_argument("--write", metavar="NAME", help="store the spread in this registered model's metadata and card")
    site = commands.add_parser("adapted", help="adapt each model folder to the official test set; mean and range")
    site.add_argument("folders", type=Path, nargs="+")
    site.add_argument("--folds", type=int, default=5)
    site.add_argument("--write", metavar="NAME", help="store the adapted spread in this registered model's card")
    add_data_argument(site)
    args = parser.parse_args()
    if args.command == "adapted":
        adapted(args.folders, args.data, args.folds, args.write)
        return 0
    if args.command == "summary":
        summary(args.folders, args.write)
        return 0
    return train(args)


if __name__ == "__main__":
    sys.exit(main())

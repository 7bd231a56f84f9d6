"""Train a pneumonia classifier and register it in models/.

    python train.py --data ../shared/data/chest_xray --out models/my-model
    python train.py --config models/pneumonia-cnn-v1/metadata.json --out models/pneumonia-cnn-v1

Prints progress, then validation and test metrics and where the model went. ``--events FILE``
appends progress as JSON lines (the app's Retrain page reads them).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from pathlib import Path

from pneumo_core import registry
from pneumo_core.contract import LR_SCHEDULES, MONITORS, NORMALIZATIONS, TrainingConfig
from pneumo_core.data import resolve_data_dir
from pneumo_core.model import ARCHITECTURES


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="dataset root with train/ and test/ (default: $PNEUMO_DATA or data/chest_xray)")
    parser.add_argument("--config", help="a model's metadata.json: reuse its training configuration")
    parser.add_argument("--out", help="output model folder (default: models/run-<timestamp>)")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--lr", type=float, dest="learning_rate")
    parser.add_argument("--image-size", type=int)
    parser.add_argument(
        "--normalization", choices=NORMALIZATIONS, help="intensity normalization (default equalize_hist)"
    )
    parser.add_argument("--arch", choices=ARCHITECTURES)
    parser.add_argument("--width", type=int, help="compact_resnet base width")
    parser.add_argument("--weights", help="local weights file for a keras.applications backbone")
    parser.add_argument("--no-augment", action="store_true")
    parser.add_argument("--acquisition-augment", action="store_true", help="also blur, sharpen and add noise")
    parser.add_argument("--mixup", type=float, help="mixup Beta(alpha, alpha); 0 = off")
    parser.add_argument(
        "--balanced-sampling", action="store_true", help="draw both classes equally often instead of class weights"
    )
    parser.add_argument(
        "--border-erase", type=float, help="probability of blacking out an image's border bands in training"
    )
    parser.add_argument(
        "--max-zoom-in", type=float, help="training zoom-in of up to this fraction of the image (default 0.12)"
    )
    parser.add_argument("--patience", type=int, dest="early_stopping_patience", help="early-stopping patience (epochs)")
    parser.add_argument("--lr-schedule", choices=LR_SCHEDULES, help="learning-rate schedule (default plateau)")
    parser.add_argument("--weight-average", type=float, help="EMA momentum of the weights, e.g. 0.99 (default 0: off)")
    parser.add_argument("--weight-decay", type=float, help="AdamW decay of the kernels, e.g. 0.05 (0: off)")
    parser.add_argument(
        "--bn-momentum", type=float, help="BatchNorm moving-statistics momentum (default 0.99; 0.9 tracks faster)"
    )
    parser.add_argument(
        "--bn-reestimate",
        type=int,
        metavar="N",
        help="re-estimate BatchNorm statistics on N training images before each validation pass (0: off)",
    )
    parser.add_argument(
        "--monitor",
        choices=MONITORS,
        help="what early stopping and the plateau schedule follow (default val_loss)",
    )
    parser.add_argument("--members", type=int, help="train N networks and merge them into one averaging model")
    parser.add_argument("--train-subset", type=int, help="train on a stratified subset of N images")
    parser.add_argument(
        "--target-sensitivity",
        type=float,
        help="operating threshold: the highest with this validation sensitivity (default 0.97; 0: Youden's J)",
    )
    parser.add_argument("--seed", type=int)
    parser.add_argument("--distribute", choices=["auto", "none", "mirrored"], default="auto")
    parser.add_argument("--set-default", action="store_true", help="make the new model the default")
    parser.add_argument("--events", help="append progress events as JSON lines to this file")
    return parser.parse_args(argv)


def build_config(args: argparse.Namespace) -> TrainingConfig:
    values = TrainingConfig().to_dict()
    if args.config:
        values.update(json.loads(Path(args.config).read_text())["training_config"])
    overrides = {
        "epochs": args.epochs, "batch_size": args.batch_size, "learning_rate": args.learning_rate,
        "image_size": args.image_size, "normalization": args.normalization, "arch": args.arch, "width": args.width,
        "train_subset": args.train_subset, "mixup": args.mixup, "border_erase": args.border_erase,
        "early_stopping_patience": args.early_stopping_patience, "target_sensitivity": args.target_sensitivity, "seed": args.seed,
        "lr_schedule": args.lr_schedule, "members": args.members, "max_zoom_in": args.max_zoom_in,
        "weight_average": args.weight_average, "weight_decay": args.weight_decay,
        "bn_momentum": args.bn_momentum, "bn_reestimate": args.bn_reestimate,
        "monitor": args.monitor,
    }  # fmt: skip
    values.update({k: v for k, v in overrides.items() if v is not None})
    if args.target_sensitivity == 0:
        values["target_sensitivity"] = None
    if args.no_augment:
        values["augment"] = False
    if args.acquisition_augment:
        values["acquisition_augment"] = True
    if args.balanced_sampling:
        values["balanced_sampling"] = True
    return TrainingConfig.from_dict(values)


class ConsoleProgress:
    """Human-readable progress on stdout, plus optional JSON lines for other processes."""

    def __init__(self, events_file: str | None) -> None:
        self.events = open(events_file, "a", buffering=1) if events_file else None  # noqa: SIM115
        self.last_print = 0.0

    def __call__(self, event: dict) -> None:
        if self.events:
            self.events.write(json.dumps(event) + "\n")
        kind = event["type"]
        if kind == "stage":
            print(f"== {event['message']}", flush=True)
        elif kind == "batch" and time.time() - self.last_print > 5:
            self.last_print = time.time()
            eta = f", ETA {event['eta_s'] / 60:.1f} min" if event.get("eta_s") else ""
            print(
                f"  {_member(event)}epoch {event['epoch']}/{event['epochs']} step {event['step']}/{event['steps']} "
                f"loss {event['loss']:.4f}{eta}",
                flush=True,
            )
        elif kind == "epoch_end":
            logs = event["logs"]
            print(
                f"{_member(event)}epoch {event['epoch']}/{event['epochs']} ({event['seconds']:.0f}s): loss {logs.get('loss', 0):.4f} "
                f"auc {logs.get('auc', 0):.4f} val_loss {logs.get('val_loss', 0):.4f} val_auc {logs.get('val_auc', 0):.4f} "
                + (f"val_calibrated_loss {logs['val_calibrated_loss']:.4f} " if "val_calibrated_loss" in logs else "")
                + f"lr {logs['learning_rate']:.2e}",
                flush=True,
            )


def _member(event: dict) -> str:
    members = event.get("members", 1)
    return f"member {event['member']}/{members} " if members > 1 else ""


def _format(summary: dict | None) -> str:
    if not summary:
        return "n/a"
    return (
        f"AUC {summary['auc']:.3f}  accuracy {summary['accuracy']:.3f}  sensitivity {summary['sensitivity']:.3f}  "
        f"specificity {summary['specificity']:.3f}  F1 {summary['f1']:.3f}  ECE {summary['ece']:.3f}  "
        f"(threshold {summary['threshold']:.3f}, n={summary['n']})"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = build_config(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    data_dir = resolve_data_dir(args.data)
    if not (data_dir / "train").is_dir():
        print(
            f"error: no dataset at {data_dir} (expected {data_dir}/train/NORMAL and .../PNEUMONIA); pass --data or set PNEUMO_DATA",
            file=sys.stderr,
        )
        return 2
    out = Path(args.out) if args.out else registry.models_dir() / time.strftime("run-%Y%m%d-%H%M%S")
    registry.check_name(out.name)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    from pneumo_core.training import TrainingCancelled, train

    progress = ConsoleProgress(args.events)
    print(f"Training {config.arch} on {data_dir} -> {out}", flush=True)
    try:
        result = train(
            data_dir, config, out, on_event=progress, should_stop=stop.is_set,
            distribute=args.distribute, weights=args.weights,
        )  # fmt: skip
    except TrainingCancelled as exc:
        progress({"type": "cancelled", "time": time.time(), "message": str(exc)})
        print(f"cancelled: {exc}", file=sys.stderr)
        return 130
    except Exception as exc:
        progress({"type": "failed", "time": time.time(), "message": f"{type(exc).__name__}: {exc}"})
        raise
    if args.set_default:
        registry.set_default(result.path.name)
    from pneumo_core.evaluation import summary

    print(f"validation: {_format(summary(result.metadata['validation']))}")
    test = result.metadata["test"]
    print(f"test:       {_format(summary(test) if test else None)}")
    print(f"model saved to {result.path}" + (" (now the default)" if args.set_default else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())

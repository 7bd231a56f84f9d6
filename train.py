"""Train a pneumonia classifier and register it in models/.

    python train.py --data data/chest_xray --out models/my-model
    python train.py --config models/pneumonia-cnn-v3/metadata.json --out models/pneumonia-cnn-v3

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
from pneumo_core.config import ARCHITECTURES, TrainingConfig
from pneumo_core.data import DATA_HELP, resolve_data_dir


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help=f"dataset root with train/ and test/ ({DATA_HELP})")
    parser.add_argument(
        "--config", help="a model's metadata.json (or a run's config.json): reuse its training configuration"
    )
    parser.add_argument("--out", help="output model folder (default: models/run-<timestamp>)")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--lr", type=float, dest="learning_rate")
    parser.add_argument("--image-size", type=int)
    parser.add_argument("--arch", choices=ARCHITECTURES)
    parser.add_argument("--width", type=int, help="compact_resnet base width")
    parser.add_argument("--weights", help="local weights file for a keras.applications backbone")
    parser.add_argument("--no-augment", action="store_true")
    parser.add_argument("--patience", type=int, dest="early_stopping_patience", help="early-stopping patience (epochs)")
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
        "image_size": args.image_size, "arch": args.arch, "width": args.width, "train_subset": args.train_subset,
        "early_stopping_patience": args.early_stopping_patience, "target_sensitivity": args.target_sensitivity,
        "seed": args.seed, "members": args.members,
    }  # fmt: skip
    values.update({k: v for k, v in overrides.items() if v is not None})
    if args.target_sensitivity == 0:
        values["target_sensitivity"] = None
    if args.no_augment:
        values["augment"] = False
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
    except (OSError, KeyError, json.JSONDecodeError) as exc:
        print(f"error: cannot read the configuration {args.config}: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    data_dir = resolve_data_dir(args.data)
    if not (data_dir / "train").is_dir():
        print(
            f"error: no dataset at {data_dir} (expected {data_dir}/train/NORMAL and .../PNEUMONIA); {DATA_HELP}",
            file=sys.stderr,
        )
        return 2
    out = Path(args.out) if args.out else registry.models_dir() / time.strftime("run-%Y%m%d-%H%M%S")
    registry.check_name(out.name)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    from pneumo_core.progress import TrainingCancelled
    from pneumo_core.training import train

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

"""Command line: ``scripts/pneumo predict|evaluate|models|recalibrate|card ...`` (``python -m pneumo_core``)."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from .data import DATA_HELP
from .errors import InputError, ModelLoadError
from .imaging import IMAGE_SUFFIXES

CSV_COLUMNS = ["path", "probability_pneumonia", "label", "error"]


def expand_inputs(paths: list[str]) -> list[Path]:
    """Files as given; folders searched recursively for image files (any case of extension).

    A folder also yields extension-less files, which may be DICOM.
    """
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if (
                    child.is_file()
                    and not child.name.startswith(".")
                    and (child.suffix.lower() in IMAGE_SUFFIXES or child.suffix == "")
                ):
                    found.append(child)
        else:
            found.append(path)
    return found


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number strictly between 0 and 1, got {text!r}") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must lie strictly between 0 and 1, got {text}")
    return value


def cmd_predict(args: argparse.Namespace) -> int:
    from .classifier import Classifier

    classifier = Classifier.load(args.model)
    if args.prevalence is not None and classifier.contract.calibration_prevalence is None:
        print(f"error: model {classifier.name} did not record the prevalence it is calibrated for", file=sys.stderr)
        return 2
    files = expand_inputs(args.paths)
    if not files:
        print("error: no image files found in the given paths", file=sys.stderr)
        return 1

    def report(done: int, total: int) -> None:
        if total > 32:
            print(f"scored {done}/{total}", file=sys.stderr, flush=True)

    rows = []
    for path, result in zip(files, classifier.predict_many(files, progress=report), strict=True):
        if isinstance(result, InputError):
            rows.append({"path": str(path), "probability_pneumonia": "", "label": "", "error": result.message})
        else:
            if args.prevalence is not None:
                result = result.at_prevalence(args.prevalence)
            probability = f"{result.probability_pneumonia:.4f}"
            rows.append({"path": str(path), "probability_pneumonia": probability, "label": result.label, "error": ""})
    if args.csv:
        with open(args.csv, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
    writer = csv.DictWriter(sys.stdout, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    rejected = sum(1 for row in rows if row["error"])
    if rejected:
        print(f"{rejected} of {len(rows)} inputs could not be scored (see the error column)", file=sys.stderr)
    return 1 if rejected else 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    import numpy as np

    from .classifier import Classifier
    from .data import list_split
    from .evaluation import evaluate, summary

    classifier = Classifier.load(args.model)
    try:
        samples = list_split(Path(args.dir), "")
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    results = classifier.predict_many([s.path for s in samples])
    scored = [
        (s.label, r.probability_pneumonia)
        for s, r in zip(samples, results, strict=True)
        if not isinstance(r, InputError)
    ]
    rejected = [str(s.path) for s, r in zip(samples, results, strict=True) if isinstance(r, InputError)]
    if len({label for label, _ in scored}) < 2:
        print("error: need scored images of both classes (NORMAL/ and PNEUMONIA/)", file=sys.stderr)
        return 2
    y_true = np.array([label for label, _ in scored])
    y_prob = np.array([p for _, p in scored])
    report = summary(evaluate(y_true, y_prob, threshold=classifier.contract.operating_threshold))
    report.update({"model": classifier.name, "rejected": len(rejected), "rejected_paths": rejected})
    text = json.dumps(report, indent=2)
    if args.json:
        Path(args.json).write_text(text)
    print(text)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from . import registry

    for info in registry.list_models():
        test = info.metadata.get("test") or {}
        auc = f"test AUC {test['auc']:.3f}" if "auc" in test else "no test metrics"
        print(f"{'*' if info.is_default else ' '} {info.name:30s} {auc}")
    return 0


def cmd_recalibrate(args: argparse.Namespace) -> int:
    from . import registry
    from .data import resolve_data_dir
    from .training import recalibrate

    data_dir = resolve_data_dir(args.data)
    if not (data_dir / "train").is_dir():
        print(f"error: no dataset at {data_dir}; {DATA_HELP}", file=sys.stderr)
        return 2

    def show(event: dict) -> None:
        if event["type"] == "stage":
            print(f"== {event['message']}", flush=True)

    rule = "keep" if args.target_sensitivity is None else (args.target_sensitivity or None)
    result = recalibrate(registry.resolve(args.model), data_dir, show, target_sensitivity=rule)
    contract = result.metadata["contract"]
    validation = result.metadata["validation"]
    print(
        f"{result.path.name}: frame scale {contract['frame_scale']:.2f}, temperature {contract['temperature']:.3f}, "
        f"threshold {contract['operating_threshold']:.3f}; validation log-loss {validation['log_loss']:.4f} "
        f"AUC {validation['auc']:.4f}"
    )
    return 0


def cmd_card(args: argparse.Namespace) -> int:
    from . import registry
    from .card import model_card

    path = registry.resolve(args.model)
    (path / registry.CARD_FILE).write_text(model_card(registry.read_metadata(path)))
    print(f"rewrote {path / registry.CARD_FILE} from {path / registry.METADATA_FILE}")
    return 0


def _sensitivity(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{value} is not a sensitivity in [0, 1] (0: Youden's J)")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pneumo",
        description="Pneumonia chest X-ray classifier",
        epilog="Training: scripts/pneumo train --help (train.py).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    predict = sub.add_parser("predict", help="score images (files or folders, recursive)")
    predict.add_argument("paths", nargs="+")
    predict.add_argument("--model", help="model name in models/ or a model folder (default: the default model)")
    predict.add_argument("--csv", help="also write the results to this CSV file")
    predict.add_argument(
        "--prevalence",
        type=_fraction,
        help="state probabilities for this prevalence of pneumonia (0-1) instead of the calibration split's; "
        "labels do not change",
    )
    predict.set_defaults(func=cmd_predict)
    evaluate = sub.add_parser("evaluate", help="metrics on a folder holding NORMAL/ and PNEUMONIA/")
    evaluate.add_argument("dir")
    evaluate.add_argument("--model")
    evaluate.add_argument("--json", help="also write the report to this JSON file")
    evaluate.set_defaults(func=cmd_evaluate)
    models = sub.add_parser("models", help="list registered models (* = default)")
    models.set_defaults(func=cmd_models)
    recal = sub.add_parser(
        "recalibrate", help="redo a model's validation calibration (frame scale, temperature, threshold, gate)"
    )
    recal.add_argument("model")
    recal.add_argument("--data", help=f"dataset root ({DATA_HELP})")
    recal.add_argument(
        "--target-sensitivity",
        type=_sensitivity,
        help="new threshold rule: this validation sensitivity (0: Youden's J)",
    )
    recal.set_defaults(func=cmd_recalibrate)
    card = sub.add_parser("card", help="rewrite a model's MODEL_CARD.md from its metadata.json")
    card.add_argument("model")
    card.set_defaults(func=cmd_card)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ModelLoadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cancelled: nothing was written", file=sys.stderr)
        return 130

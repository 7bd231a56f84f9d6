"""Command line: ``scripts/pneumo predict|evaluate|models|recalibrate|card ...`` (``python -m pneumo_core``)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from .data import DATA_HELP
from .errors import InputError, ModelLoadError
from .inputs import gather_paths, skipped_message

CSV_COLUMNS = ["path", "probability_pneumonia", "label", "error"]


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number strictly between 0 and 1, got {text!r}") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must lie strictly between 0 and 1, got {text}")
    return value


def _save(path: str, write: Callable[[TextIO], object]) -> bool:
    """Write an output file; if it cannot be written, say so in one line and return False (the
    command still prints its results, so the work is not lost)."""
    try:
        with open(path, "w", newline="") as handle:
            write(handle)
    except OSError as exc:
        print(f"error: cannot write {path}: {exc.strerror or exc}", file=sys.stderr)
        return False
    return True


def _progress(verb: str):
    """A ``(done, total)`` callback printing "<verb> done/total" to stderr for batches over 32."""

    def report(done: int, total: int) -> None:
        if total > 32:
            print(f"{verb} {done}/{total}", file=sys.stderr, flush=True)

    return report


def _image_files(paths: list[str]) -> list[Path]:
    """The image files given or found in the given folders; says on stderr which files the folders
    held that are not read (by name), and when there is nothing to read."""
    files, skipped = gather_paths(paths)
    if skipped:
        print(skipped_message(skipped), file=sys.stderr)
    if not files:
        print("error: no image files found in the given paths", file=sys.stderr)
    return files


def cmd_predict(args: argparse.Namespace) -> int:
    from .classifier import Classifier
    from .render import write_csv

    classifier = Classifier.load(args.model)
    if args.prevalence is not None and classifier.contract.calibration_prevalence is None:
        print(f"error: model {classifier.name} did not record the prevalence it is calibrated for", file=sys.stderr)
        return 2
    files = _image_files(args.paths)
    if not files:
        return 1
    rows = []
    for path, result in zip(files, classifier.predict_many(files, progress=_progress("scored")), strict=True):
        if isinstance(result, InputError):
            rows.append({"path": str(path), "probability_pneumonia": "", "label": "", "error": result.message})
        else:
            if args.prevalence is not None:
                result = result.at_prevalence(args.prevalence)
            probability = f"{result.probability_pneumonia:.4f}"
            rows.append({"path": str(path), "probability_pneumonia": probability, "label": result.label, "error": ""})
    saved = not args.csv or _save(args.csv, lambda handle: write_csv(handle, CSV_COLUMNS, rows))
    write_csv(sys.stdout, CSV_COLUMNS, rows)
    rejected = sum(1 for row in rows if row["error"])
    if rejected:
        print(f"{rejected} of {len(rows)} inputs could not be scored (see the error column)", file=sys.stderr)
    return 2 if not saved else 1 if rejected else 0


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
    saved = not args.json or _save(args.json, lambda handle: handle.write(text))
    print(text)
    return 0 if saved else 2


def cmd_models(args: argparse.Namespace) -> int:
    from . import registry

    for info in registry.list_models():
        test = info.metadata.get("test") or {}
        auc = f"test AUC {test['auc']:.3f}" if "auc" in test else "no test metrics"
        print(f"{'*' if info.is_default else ' '} {info.name:30s} {auc}")
    return 0


def _dataset(explicit: str | None) -> Path | None:
    """The dataset folder, or ``None`` after one line on stderr saying where it was looked for."""
    from .data import resolve_data_dir

    data_dir = resolve_data_dir(explicit)
    if (data_dir / "train").is_dir():
        return data_dir
    print(f"error: no dataset at {data_dir}; {DATA_HELP}", file=sys.stderr)
    return None


def cmd_recalibrate(args: argparse.Namespace) -> int:
    from . import registry
    from .training import recalibrate

    data_dir = _dataset(args.data)
    if data_dir is None:
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


def cmd_check_site(args: argparse.Namespace) -> int:
    from .classifier import Classifier
    from .site import check_site

    classifier = Classifier.load(args.model)
    files = _image_files(args.paths)
    if not files:
        return 2
    try:
        result = check_site(classifier, [(str(path), path) for path in files], progress=_progress("read"))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    saved = not args.json or _save(args.json, lambda handle: json.dump(result.to_json(), handle, indent=2))
    for item in result.rejected:
        print(f"left out {item['name']}: {item['reason']}")
    print(result.summary())
    if not result.too_small:
        print("most atypical images (distance to the reference; share of reference images closer):")
        for item in result.most_atypical:
            print(f"  {item['atypicality']:7.2f}  {item['reference_percentile']:5.1f}%  {item['name']}")
    return 0 if saved else 2


def cmd_site_reference(args: argparse.Namespace) -> int:
    from . import registry
    from .classifier import Classifier
    from .site import REFERENCE_FILE, build_reference

    data_dir = _dataset(args.data)
    if data_dir is None:
        return 2
    classifier = Classifier.load(args.model)
    reference = build_reference(classifier, data_dir)
    target = registry.resolve(args.model) / REFERENCE_FILE
    staged = target.with_name(f".{REFERENCE_FILE}")
    reference.save(staged)
    staged.replace(target)
    print(f"wrote {target}: {len(reference.labels)} validation images, {100 * reference.prevalence:.1f}% pneumonia")
    return 0


def cmd_adapt(args: argparse.Namespace) -> int:
    import time

    from . import registry
    from .adapt import SiteDataError, adapt, read_site
    from .classifier import Classifier

    base = Classifier.load(args.model)
    out = Path(args.out) if args.out else registry.models_dir() / f"{base.name}-site-{time.strftime('%Y%m%d-%H%M%S')}"
    registry.check_name(out.name)
    try:
        images = read_site(Path(args.dir), Path(args.csv) if args.csv else None)
    except (SiteDataError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    def show(event: dict) -> None:
        if event["type"] == "stage":
            print(f"== {event['message']}", flush=True)
        elif event["type"] == "fold":
            print(f"  fold {event['fold']}/{event['folds']}", flush=True)

    result = adapt(base, images, out, folds=args.folds, source=args.csv or args.dir, on_event=show)
    for name, reason in result.rejected:
        print(f"left out {name}: {reason}")
    adaptation = result.metadata["adaptation"]
    figures = summary_line(result.metadata["test"])
    print(f"site-adapted, out of fold ({adaptation['folds']}-fold, grouped by patient, {adaptation['images']} images):")
    print(f"  {figures}")
    print(f"before ({adaptation['base_model']} on the same images):")
    print(f"  {summary_line(adaptation['before'])}")
    if adaptation.get("home"):
        print(f"at home ({adaptation['base_model']}'s validation patients, not replayed):")
        print(f"  {summary_line(adaptation['home'])}")
    print("learning curve (site images used: accuracy, specificity):")
    for point in adaptation["learning_curve"]:
        print(f"  {point['images']:5d}: {100 * point['accuracy']:.1f}%, {100 * point['specificity']:.1f}%")
    print(f"model saved to {result.path} ({adaptation['seconds']:.0f} s)")
    return 0


def summary_line(report: dict) -> str:
    """AUC, accuracy, sensitivity, specificity and ECE with the 95% CIs where the report has them."""
    ci = report.get("ci95", {})

    def part(key: str, name: str, percent: bool) -> str:
        show = (lambda v: f"{100 * v:.1f}%") if percent else (lambda v: f"{v:.3f}")
        interval = f" ({show(ci[key][0])}-{show(ci[key][1])})" if key in ci else ""
        return f"{name} {show(report[key])}{interval}"

    return ", ".join(
        [part("auc", "AUC", False), part("accuracy", "accuracy", True), part("sensitivity", "sensitivity", True),
         part("specificity", "specificity", True), part("ece", "ECE", False)]
    )  # fmt: skip


def cmd_card(args: argparse.Namespace) -> int:
    from . import registry
    from .card import card_for

    path = registry.resolve(args.model)
    (path / registry.CARD_FILE).write_text(card_for(registry.read_metadata(path)))
    print(f"rewrote {path / registry.CARD_FILE} from {path / registry.METADATA_FILE}")
    return 0


def _folds(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number of folds, got {text!r}") from None
    if not 2 <= value <= 20:
        raise argparse.ArgumentTypeError(f"cross-validation needs 2 to 20 folds, got {value}")
    return value


def _sensitivity(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{value} is not a sensitivity in [0, 1] (0: Youden's J)")
    return value


MODEL = ("--model", {"help": "model name in models/ or a model folder (default: the default model)"})
DATA = ("--data", {"help": f"dataset root ({DATA_HELP})"})
JSON = ("--json", {"help": "also write the result to this JSON file"})
PATHS = ("paths", {"nargs": "+", "help": "image files or folders (searched recursively)"})
NAME = ("model", {"help": "model name in models/ or a model folder"})


def _commands() -> list[tuple[str, Any, str, list[tuple[str, dict[str, Any]]]]]:
    """Each command: name, function, help, and its arguments as (flag, options)."""
    prevalence = {
        "type": _fraction,
        "help": "state probabilities for this prevalence of pneumonia (0-1) instead of the calibration split's; "
        "labels do not change",
    }
    return [
        ("predict", cmd_predict, "score images (files or folders, recursive)",
         [PATHS, MODEL, ("--csv", {"help": "also write the results to this CSV file"}), ("--prevalence", prevalence)]),
        ("evaluate", cmd_evaluate, "metrics on a folder holding NORMAL/ and PNEUMONIA/",
         [("dir", {"help": "a folder with NORMAL/ and PNEUMONIA/"}), MODEL, JSON]),
        ("check-site", cmd_check_site, "do a site's unlabelled images look like the training data?", [PATHS, MODEL, JSON]),
        ("adapt", cmd_adapt, "adapt a model to a site's labelled images (DIR/NORMAL, DIR/PNEUMONIA, or --csv)",
         [("dir", {"help": "the site's folder (NORMAL/ and PNEUMONIA/), or the CSV's folder with --csv"}),
          ("--model", {"help": "the base model (default: the default model)"}),
          ("--out", {"help": "the new model's folder (default: models/BASE-site-<timestamp>)"}),
          ("--folds", {"type": _folds, "default": 5, "help": "patient-grouped cross-validation folds (default 5)"}),
          ("--csv", {"help": "labels as rows path,label[,patient] (paths relative to the CSV)"})]),
        ("models", cmd_models, "list registered models (* = default)", []),
        ("recalibrate", cmd_recalibrate,
         "redo a model's validation calibration (frame scale, temperature, threshold, gate)",
         [NAME, DATA, ("--target-sensitivity",
                       {"type": _sensitivity, "help": "new threshold rule: this validation sensitivity (0: Youden's J)"})]),
        ("site-reference", cmd_site_reference,
         "write a model's site reference from its validation split (needs the dataset)", [NAME, DATA]),
        ("card", cmd_card, "rewrite a model's MODEL_CARD.md from its metadata.json", [NAME]),
    ]  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pneumo",
        description="Pneumonia chest X-ray classifier",
        epilog="Training: scripts/pneumo train --help (train.py).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, function, description, arguments in _commands():
        command = sub.add_parser(name, help=description)
        for flag, options in arguments:
            command.add_argument(flag, **options)
        command.set_defaults(func=function)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .adapt import SiteDataError
    from .progress import TrainingCancelled

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ModelLoadError, SiteDataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, TrainingCancelled):
        print("cancelled: nothing was written", file=sys.stderr)
        return 130

"""Site check benchmark: false alarms, detection, prevalence estimates and speed (prints figures).

    python benchmarks/site_check.py [--model NAME] [--data DIR] [--splits N] [--write]

In-distribution control: the validation split (patients the model did not fit). Each of ``--splits``
replicates divides its patients at random (normal and pneumonia patients separately) into a reference (what the check compares with) and a
control pool, and draws one batch of each size from the pool without replacement, so a batch never
meets its own images in the reference. A false alarm is a control batch called shifted.

- false alarms at 25-400 images (the reference is a smaller share of the patients for 400, so the
  pool holds the batch), and with the control resampled to 30% and 90% pneumonia;
- detection: batches of the official test set (another acquisition period) against the shipped
  reference (the whole validation split), as a user's check would run;
- estimated prevalence: control batches of 200 at 30%, 50% and 90% pneumonia (drawn with
  replacement, since the pool has too few normals for 30% without), against the truth;
- time for 600 test images from disk through ``check_site`` (decoding included, model loaded).

``--write`` stores the figures in the model's metadata.json and rewrites its card.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import add_data_argument, rewrite_metadata

SIZES = (25, 50, 100, 200, 400)
DETECTION_SIZES = (25, 50, 100, 200)


def draw(rng: np.random.Generator, labels: np.ndarray, n: int, share: float | None, replace: bool = False):
    """Indices of a batch of ``n``: at random, or with ``share`` pneumonia."""
    if share is None:
        return rng.choice(labels.size, n, replace=replace)
    positives = round(share * n)
    return np.r_[
        rng.choice(np.flatnonzero(labels == 1), positives, replace=replace),
        rng.choice(np.flatnonzero(labels == 0), n - positives, replace=replace),
    ]


def main() -> None:
    from pneumo_core import Classifier, registry
    from pneumo_core.config import TrainingConfig
    from pneumo_core.data import list_split, load_arrays, training_split
    from pneumo_core.evaluation import sigmoid
    from pneumo_core.site import ALPHA, ShiftTest, SiteReference, check_site, estimate_prevalence

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model")
    add_data_argument(parser)
    parser.add_argument("--splits", type=int, default=200, help="random reference/control splits (default 200)")
    parser.add_argument("--write", action="store_true", help="store the figures in the model's metadata and card")
    args = parser.parse_args()

    clf = Classifier.load(args.model)
    contract = clf.contract
    config = TrainingConfig.from_dict(clf.metadata["training_config"])
    _, val = training_split(args.data, config)
    test = list_split(args.data, "test")
    x_val, y_val = load_arrays(val, contract)
    x_test, y_test = load_arrays(test, contract)
    val_logits, val_embeddings = clf.network.outputs(x_val)
    test_logits, test_embeddings = clf.network.outputs(x_test)
    val_p = sigmoid(val_logits, contract.temperature)
    test_p = sigmoid(test_logits, contract.temperature)
    calibrated_for = contract.calibration_prevalence
    patients = np.array([s.patient_id for s in val])
    unique = np.unique(patients)
    patient_label = {p: int(y) for p, y in zip(patients, y_val, strict=True)}
    by_class = [np.array([p for p in unique if patient_label[p] == label]) for label in (0, 1)]
    print(f"{clf.name}: validation {len(val)} images of {unique.size} patients; test {len(test)} images")

    def flagged(shift_test: ShiftTest, embeddings: np.ndarray, probabilities: np.ndarray) -> bool:
        prevalence = estimate_prevalence(probabilities, calibrated_for)
        return shift_test.statistic(embeddings, probabilities, prevalence)[0] < ALPHA

    rng = np.random.default_rng(0)
    alarms: dict[str, list[bool]] = {}
    for _ in range(args.splits):
        for reference_share, conditions in (
            (0.5, [(n, None) for n in SIZES[:-1]] + [(100, 0.3), (100, 0.9), (200, 0.9)]),
            (0.35, [(400, None)]),
        ):
            chosen = {
                p for group in by_class for p in rng.choice(group, round(reference_share * group.size), replace=False)
            }
            in_reference = np.array([p in chosen for p in patients])
            shift_test = ShiftTest(
                SiteReference(
                    val_embeddings[in_reference], y_val[in_reference], val_p[in_reference], patients[in_reference]
                ),
                calibrated_for,
            )
            pool = np.flatnonzero(~in_reference)
            for n, share in conditions:
                batch = pool[draw(rng, y_val[pool], n, share)]
                key = f"{n}" if share is None else f"{n} at {share:.0%} pneumonia"
                alarms.setdefault(key, []).append(flagged(shift_test, val_embeddings[batch], val_p[batch]))

    shipped = ShiftTest(SiteReference(val_embeddings, y_val, val_p, patients), calibrated_for)
    detections = {
        n: [
            flagged(shipped, test_embeddings[i], test_p[i])
            for i in (draw(rng, y_test, n, None) for _ in range(args.splits))
        ]
        for n in DETECTION_SIZES
    }

    errors = {}
    for share in (0.3, 0.5, 0.9):
        estimates = [
            estimate_prevalence(val_p[draw(rng, y_val, 200, share, replace=True)], calibrated_for)
            for _ in range(args.splits)
        ]
        errors[share] = np.abs(np.array(estimates) - share)

    files = sorted((Path(args.data) / "test").rglob("*.jpeg"))[:600]
    started = time.time()
    check_site(clf, [(str(path), path) for path in files])
    seconds = time.time() - started

    print(f"\nfalse alarms (in-distribution control, {args.splits} random patient splits, p < {ALPHA}):")
    for key, values in alarms.items():
        print(f"  batches of {key}: {100 * np.mean(values):.1f}%")
    print("detection (official test set against the shipped reference):")
    for n, values in detections.items():
        print(f"  batches of {n}: {100 * np.mean(values):.1f}%")
    print("estimated prevalence, control batches of 200 (absolute error: mean, 95th percentile):")
    for share, error in errors.items():
        print(f"  at {share:.0%}: {100 * error.mean():.1f} and {100 * np.quantile(error, 0.95):.1f} points")
    print(f"time for {len(files)} test images from disk (check_site, model loaded): {seconds:.1f} s")

    if args.write:
        metadata = clf.metadata
        metadata["site_check"] = {
            "splits": args.splits,
            "false_alarms": {key: float(np.mean(v)) for key, v in alarms.items()},
            "detection": {str(n): float(np.mean(v)) for n, v in detections.items()},
            "prevalence_error_200": {f"{s:.0%}": float(e.mean()) for s, e in errors.items()},
            "seconds_600": round(seconds, 1),
            "command": "python benchmarks/site_check.py --model " + clf.name + " --write",
        }
        rewrite_metadata(clf.path, metadata)
        print(f"wrote the figures into {clf.path / registry.METADATA_FILE} and its card")


if __name__ == "__main__":
    main()

"""Site adaptation benchmark: the official test set plays "site B" (prints figures, asserts nothing).

    python benchmarks/adapt_site.py [--model NAME] [--data DIR] [--folds K] [--seed S]

1. Cross-validated: ``adapt`` on all of test/ (5-fold, grouped by patient): the out-of-fold figures,
   the learning curve, the base model before, the adapted model at home; the seconds it took.
2. Speed: ``adapt`` on 500 images of test/ (cross-validation included).
3. Independently: ``adapt`` on 60% of the test patients, then the adapted model scores the other 40%
   as ``scripts/pneumo evaluate DIR --model OUT`` does (``Classifier.predict_many``), at its threshold.
Models are written to a temporary folder and deleted.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import add_data_argument


def main() -> None:
    from pneumo_core import Classifier, InputError
    from pneumo_core.adapt import adapt, from_folder
    from pneumo_core.cli import summary_line
    from pneumo_core.evaluation import evaluate, summary

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model")
    add_data_argument(parser)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    base = Classifier.load(args.model)
    site = from_folder(Path(args.data) / "test")
    with tempfile.TemporaryDirectory() as scratch:
        started = time.time()
        result = adapt(base, site, Path(scratch) / "all", folds=args.folds, seed=args.seed)
        adaptation = result.metadata["adaptation"]
        print(f"1. {base.name} adapted to test/ ({adaptation['images']} images, {adaptation['patients']} patients), "
              f"{args.folds}-fold, grouped by patient: {time.time() - started:.0f} s")  # fmt: skip
        print(f"   site-adapted, out of fold: {summary_line(result.metadata['test'])}")
        print(f"   before ({base.name}):        {summary_line(adaptation['before'])}")
        if adaptation.get("home"):
            print(f"   at home (validation patients not replayed): {summary_line(adaptation['home'])}")
        print(f"   replay weight {adaptation['replay_weight']} on {adaptation['replayed_home_images']} home images "
              f"(per fold: {adaptation['replay_weight_per_fold']}), regularisation {adaptation['regularisation']}")  # fmt: skip
        for point in adaptation["learning_curve"]:
            print(f"   learning curve, {point['images']:4d} images: AUC {point['auc']:.3f}, accuracy "
                  f"{100 * point['accuracy']:.1f}%, specificity {100 * point['specificity']:.1f}%")  # fmt: skip

        rng = np.random.default_rng(args.seed)
        subset = [site[i] for i in sorted(rng.choice(len(site), 500, replace=False))]
        started = time.time()
        adapt(base, subset, Path(scratch) / "five-hundred", folds=args.folds, seed=args.seed)
        print(f"2. adapt on 500 images, cross-validation included: {time.time() - started:.0f} s")

        patients = sorted({image.patient for image in site})
        chosen = set(rng.choice(patients, round(0.6 * len(patients)), replace=False))
        learn = [image for image in site if image.patient in chosen]
        held_out = [image for image in site if image.patient not in chosen]
        adapted = adapt(base, learn, Path(scratch) / "part", folds=args.folds, seed=args.seed).path
        model = Classifier.load(adapted)
        scored = [
            (image.label, r.probability_pneumonia)
            for image, r in zip(held_out, model.predict_many([i.source for i in held_out]), strict=True)
            if not isinstance(r, InputError)
        ]
        y, p = np.array([s[0] for s in scored]), np.array([s[1] for s in scored])
        report = summary(evaluate(y, p, threshold=model.contract.operating_threshold, seed=args.seed))
        print(f"3. adapted on {len(learn)} images of 60% of the patients, scored on the other "
              f"{len(held_out)} ({len(held_out) - len(scored)} refused by the gate): {summary_line(report)}")  # fmt: skip


if __name__ == "__main__":
    main()

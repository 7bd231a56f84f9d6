"""Recompute a model's scores on its own patient-grouped validation split (never the test set).

    python benchmarks/validation_scores.py [--model NAME ...] [--data DIR] [--crop F]

--crop 0.15 also scores every model on the validation images collimated tighter (F of each side cut
away, the centre enlarged to fill the input, as in the shortcut check), compared image by image with
the first model on those same images: how far each model leans on the field of view.

Used to compare models by a proper scoring rule (calibrated validation log-loss) when choosing
the default. Every model after the first is also compared with the first, image by image: the mean
difference in log-loss with a 95% paired-bootstrap interval. The rule for replacing the default
(the first model) is that this interval lies entirely below zero.

For each model it also prints the validation specificity at its operating threshold by source of
the normal images (file names ``IM-...`` vs ``NORMAL2-IM-...``), a lead on the train/test shift
that needs no test image.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import add_data_argument


def paired_interval(differences: np.ndarray, n_resamples: int = 5000, seed: int = 0) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the mean of per-image differences."""
    rng = np.random.default_rng(seed)
    means = [differences[rng.integers(0, differences.size, differences.size)].mean() for _ in range(n_resamples)]
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def paired_difference(losses: np.ndarray, reference: np.ndarray) -> str:
    """Mean per-image difference ``losses - reference`` with its 95% paired-bootstrap interval."""
    low, high = paired_interval(losses - reference)
    return f"{np.mean(losses - reference):+.4f} (95% paired bootstrap {low:+.4f} to {high:+.4f})"


def per_image_log_loss(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    return -(y * np.log(p) + (1 - y) * np.log(1 - p))


def tight_crop_losses(clf, val, y: np.ndarray, fraction: float) -> np.ndarray:
    """Per-image calibrated log-loss on the validation images with ``fraction`` of each side cut away."""
    from pneumo_core.imaging import decode, to_model_input
    from pneumo_core.shortcuts import tightly_collimated

    x = np.stack([to_model_input(tightly_collimated(decode(s.path).pixels, fraction), clf.contract) for s in val])
    p = np.clip(clf.probabilities(x[..., None]), 1e-7, 1 - 1e-7)
    specificity = np.mean(p[y == 0] < clf.contract.operating_threshold)
    losses = per_image_log_loss(y, p)
    print(f"  cut {fraction:.0%} per side: log-loss {losses.mean():.4f} specificity {specificity:.3f}")
    return losses


def main() -> None:
    from sklearn.metrics import log_loss, roc_auc_score

    from pneumo_core import Classifier
    from pneumo_core.config import TrainingConfig
    from pneumo_core.data import load_arrays, training_split

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", nargs="*", default=[None])
    add_data_argument(parser)
    parser.add_argument(
        "--crop", type=float, default=None, help="also score tighter collimation: share of each side cut"
    )
    args = parser.parse_args()
    for split in ("train", "test"):
        normals = list((args.data / split / "NORMAL").glob("*"))
        if normals:
            share = np.mean([path.name.upper().startswith("NORMAL2-") for path in normals])
            print(f"{split}/NORMAL: {len(normals)} images, {share:.1%} NORMAL2- (file names only)")
    losses_first, crop_first = None, None
    for name in args.model:
        clf = Classifier.load(name)
        config = TrainingConfig.from_dict(clf.metadata["training_config"])
        _, val = training_split(args.data, config)
        x, y = load_arrays(val, clf.contract)
        p = np.clip(clf.probabilities(x), 1e-7, 1 - 1e-7)
        print(
            f"{clf.name}: validation n={len(y)} calibrated log-loss {log_loss(y, p):.4f} AUC {roc_auc_score(y, p):.4f}"
        )
        names = np.array([s.path.name.upper() for s in val])
        for source, normals in (
            ("IM-", (y == 0) & np.char.startswith(names, "IM-")),
            ("NORMAL2-", (y == 0) & np.char.startswith(names, "NORMAL2-")),
        ):
            if normals.any():
                specificity = np.mean(p[normals] < clf.contract.operating_threshold)
                print(
                    f"  {source} normals: n={normals.sum()} specificity {specificity:.3f} mean p {p[normals].mean():.3f}"
                )
        losses = per_image_log_loss(y, p)
        if losses_first is None:
            losses_first, first_name = losses, clf.name
        elif losses.shape == losses_first.shape:
            print(f"  vs {first_name}: log-loss difference {paired_difference(losses, losses_first)}")
        if args.crop:
            crop_losses = tight_crop_losses(clf, val, y, args.crop)
            if crop_first is None:
                crop_first = crop_losses
            elif crop_losses.shape == crop_first.shape:
                print(f"    vs {first_name} on the same cut images: {paired_difference(crop_losses, crop_first)}")


if __name__ == "__main__":
    main()

"""Input-gate benchmark: how often real chest X-rays are refused, and how often other images are not.

    python benchmarks/bench_gate.py [--model NAME] [--data DIR]

The out-of-distribution (OOD) set is built here, offline, from images that ship inside
scikit-image and scikit-learn plus synthetic ones. No threshold was tuned on it: the rules are fixed
a priori and the feature-distance cut-offs come from validation radiographs only. It was used once
to choose the gate's design (one feature layer accepted 3 grayscale photos; several layers, the
standard multi-layer Mahalanobis detector, accepted none); the "held-out" category was added after
that choice and never influenced it.
Prints the rejection rate per OOD category, on the test set (224 px) and on the original-resolution
val images.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import add_data_argument


def ood_images() -> dict[str, list[tuple[str, np.ndarray]]]:
    """Category -> [(name, image array)], no chest radiograph among them."""
    import cv2
    import skimage.data as sk
    from sklearn.datasets import load_sample_images

    def gray(img: np.ndarray) -> np.ndarray:
        return cv2.cvtColor(img[..., :3], cv2.COLOR_RGB2GRAY) if img.ndim == 3 else img

    color_photos = [(n, getattr(sk, n)()) for n in ("astronaut", "chelsea", "coffee", "rocket", "motorcycle_left", "color", "hubble_deep_field", "retina", "ihc", "immunohistochemistry")  if hasattr(sk, n)]  # fmt: skip
    color_photos = [(n, img) for n, img in color_photos if img.ndim == 3]
    color_photos += [(f"sklearn_{i}", img) for i, img in enumerate(load_sample_images().images)]
    gray_photos = [(n, getattr(sk, n)()) for n in ("camera", "moon", "coins", "grass", "gravel", "brick", "cell", "microaneurysms", "clock", "horse")]  # fmt: skip
    gray_photos = [(n, (img * 255).astype(np.uint8) if img.dtype == bool else gray(img)) for n, img in gray_photos]
    gray_photos += [(f"gray_{n}", gray(img)) for n, img in color_photos]
    documents = [("page", sk.page()), ("text", sk.text()), ("chessboard", sk.checkerboard()), ("logo", gray(sk.logo()))]
    rng = np.random.default_rng(0)
    canvas = np.full((700, 900), 250, np.uint8)
    for row in range(20):
        cv2.putText(canvas, f"Lorem ipsum dolor sit amet, patient report line {row}", (20, 30 + 32 * row), cv2.FONT_HERSHEY_SIMPLEX, 0.7, 20, 1)  # fmt: skip
    documents.append(("rendered_report", canvas))
    screen = np.full((800, 1280), 240, np.uint8)
    screen[:60] = 60
    cv2.rectangle(screen, (40, 120), (600, 700), 200, -1)
    cv2.rectangle(screen, (680, 120), (1240, 400), 180, -1)
    cv2.putText(screen, "Dashboard", (50, 40), cv2.FONT_HERSHEY_SIMPLEX, 1.0, 255, 2)
    documents.append(("screenshot", screen))
    synthetic = [
        ("uniform_noise", rng.integers(0, 256, (512, 512), dtype=np.uint8)),
        ("gaussian_noise", np.clip(rng.normal(128, 40, (512, 512)), 0, 255).astype(np.uint8)),
        ("black", np.zeros((512, 512), np.uint8)),
        ("white", np.full((512, 512), 255, np.uint8)),
        ("gradient", np.tile(np.linspace(0, 255, 512).astype(np.uint8), (512, 1))),
        ("color_noise", rng.integers(0, 256, (400, 400, 3), dtype=np.uint8)),
    ]
    phantom = (sk.shepp_logan_phantom() * 255).astype(np.uint8)
    cross_sections = [
        ("ct_phantom", phantom),
        ("ct_phantom_noisy", np.clip(phantom + rng.normal(0, 15, phantom.shape), 0, 255).astype(np.uint8)),
    ]
    yy, xx = np.mgrid[:512, :512]
    head = (((xx - 256) / 200) ** 2 + ((yy - 256) / 240) ** 2 < 1).astype(np.float32) * 160
    head += (((xx - 256) / 180) ** 2 + ((yy - 256) / 220) ** 2 < 1) * 40 * np.sin(xx / 9) ** 2
    cross_sections.append(("mr_like_head", np.clip(head + rng.normal(0, 8, head.shape), 0, 255).astype(np.uint8)))
    faces = sk.lfw_subset()[:10]
    held_out = [
        (f"face_{i}", cv2.resize((face * 255).astype(np.uint8), (250, 250), interpolation=cv2.INTER_CUBIC))
        for i, face in enumerate(faces)
    ]
    held_out += [("binary_blobs", (sk.binary_blobs(length=512, rng=1) * 255).astype(np.uint8))]
    held_out += [("gray_motorcycle_right", gray(sk.stereo_motorcycle()[1]))]
    return {
        "held-out (added after the gate design was fixed)": held_out,
        "colour photos": color_photos,
        "grayscale photos": gray_photos,
        "documents and screenshots": documents,
        "noise, blank and flat": synthetic,
        "CT / MR-like slices": cross_sections,
    }


def main() -> None:
    from pneumo_core import Classifier, InputError

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None)
    add_data_argument(parser)
    parser.add_argument("--verbose", action="store_true", help="list every OOD image and its outcome")
    args = parser.parse_args()
    clf = Classifier.load(args.model)
    print(f"model: {clf.name}")

    total, rejected_total = 0, 0
    for category, items in ood_images().items():
        outcomes = defaultdict(list)
        for name, image in items:
            try:
                p = clf.predict(image)
                outcomes["ACCEPTED"].append(f"{name} ({p.label} {p.probability_pneumonia:.2f})")
            except InputError as error:
                outcomes["rejected"].append(f"{name}: {error.message}")
        n_rejected = len(outcomes["rejected"])
        total += len(items)
        rejected_total += n_rejected
        print(f"OOD {category}: rejected {n_rejected}/{len(items)}")
        if args.verbose or outcomes["ACCEPTED"]:
            for line in outcomes["ACCEPTED"] + (outcomes["rejected"] if args.verbose else []):
                print(f"    {line}")
    print(f"OOD overall: rejected {rejected_total}/{total} ({100 * rejected_total / total:.1f}%)")

    data = args.data
    for label, files in (
        ("test set (224 px)", sorted((data / "test").rglob("*.jpeg"))),
        ("val set (original resolution)", sorted((data / "val").rglob("*.jpeg"))),
    ):
        results = clf.predict_many(files)
        refused = [(f, r) for f, r in zip(files, results, strict=True) if isinstance(r, InputError)]
        print(
            f"chest X-rays, {label}: falsely rejected {len(refused)}/{len(files)} ({100 * len(refused) / len(files):.1f}%)"
        )
        for path, error in refused[:10]:
            print(f"    {path.name}: {error.message}")


if __name__ == "__main__":
    main()

"""Inference benchmark: prints figures, asserts nothing (figures in docs/benchmarks.md).

    python benchmarks/bench_inference.py [--model NAME] [--data DIR] [--repeats N]

Measures on this machine:
- import time of TensorFlow/Keras and model load time (Classifier.load, graphs traced);
- full-size JPEG from disk -> verdict + Grad-CAM (Classifier.analyze) p50 / p90, on the dataset's
  original-resolution images and on a ~2400 px, ~2 MB JPEG made from one of them;
- 224 px JPEG -> verdict + Grad-CAM;
- batch scoring throughput (Classifier.predict_many) on the test set.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import add_data_argument


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def time_calls(fn, items: list, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        for item in items:
            start = time.perf_counter()
            fn(item)
            times.append((time.perf_counter() - start) * 1000)
    return times


def big_jpeg(source: Path, folder: Path) -> Path:
    import cv2
    import numpy as np

    gray = cv2.imread(str(source), cv2.IMREAD_GRAYSCALE)
    big = cv2.resize(gray, (2400, 2000), interpolation=cv2.INTER_CUBIC)
    grain = np.random.default_rng(0).normal(0, 6, big.shape)
    big = np.clip(big + grain, 0, 255).astype(np.uint8)
    target = folder / "big_2400px.jpeg"
    cv2.imwrite(str(target), big, [cv2.IMWRITE_JPEG_QUALITY, 95])
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None)
    add_data_argument(parser)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    data = args.data

    start = time.perf_counter()
    import keras  # noqa: F401
    import tensorflow  # noqa: F401

    import_s = time.perf_counter() - start
    from pneumo_core import Classifier

    start = time.perf_counter()
    clf = Classifier.load(args.model)
    load_s = time.perf_counter() - start
    print(f"model: {clf.name}  ({os.cpu_count()} CPU cores)")
    print(f"import tensorflow+keras: {import_s:.2f} s")
    print(f"model load (Classifier.load, graphs traced): {load_s:.2f} s")

    originals = sorted((data / "val").rglob("*.jpeg"))
    with tempfile.TemporaryDirectory() as tmp:
        big = big_jpeg(originals[0], Path(tmp))
        sizes = [p.stat().st_size for p in originals]
        clf.analyze(originals[0])  # warm caches
        rows = [
            (f"full-size JPEG ({len(originals)} files, {min(sizes) // 1024}-{max(sizes) // 1024} KB)", originals),
            (f"2400x2000 JPEG ({big.stat().st_size / 1e6:.1f} MB)", [big]),
            ("224 px JPEG (test set, 16 files)", sorted((data / "test" / "NORMAL").iterdir())[:16]),
        ]
        for label, items in rows:
            times = time_calls(clf.analyze, items, args.repeats if len(items) > 1 else args.repeats * 10)
            print(
                f"{label}: disk -> verdict + Grad-CAM p50 {statistics.median(times):.1f} ms, "
                f"p90 {percentile(times, 0.9):.1f} ms (n={len(times)})"
            )
    test_images = sorted((data / "test").rglob("*.jpeg"))
    start = time.perf_counter()
    results = clf.predict_many(test_images, batch_size=32)
    elapsed = time.perf_counter() - start
    print(
        f"batch scoring (predict_many, batch 32): {len(results) / elapsed:.0f} images/s over {len(results)} test images"
    )


if __name__ == "__main__":
    main()

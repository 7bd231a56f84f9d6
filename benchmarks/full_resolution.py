"""Original-size uploads against Kaggle-style 224 px copies of the same images.

    python benchmarks/full_resolution.py [--model NAME ...] [--data DIR]

The dataset's train and test images are 224 px copies made with Pillow's default resize and re-saved
as JPEG; users upload originals (the 16 images of ``val/`` are originals, 592 to 1776 px a side). For each
original this scores the file itself and such a copy of it, and prints how far the two
probabilities are apart and whether the verdicts agree. ``tests/test_full_resolution.py`` holds the
default model to mean < 0.03 and max < 0.1.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import add_data_argument


def kaggle_copy(path: Path) -> bytes:
    """The file as the Kaggle 224 px copies were made: Pillow's default resize, saved as JPEG."""
    buffer = io.BytesIO()
    Image.open(path).convert("RGB").resize((224, 224)).save(buffer, "JPEG")
    return buffer.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", nargs="*", default=[None], help="registry names or folders (default: the default)")
    add_data_argument(parser)
    args = parser.parse_args(argv)

    from pneumo_core import Classifier
    from pneumo_core.errors import ModelLoadError

    originals = sorted((args.data / "val").rglob("*.jpeg"))
    if not originals:
        parser.error(f"no original-size images under {args.data}/val")
    for name in args.model:
        try:
            classifier = Classifier.load(name)
        except (ModelLoadError, ValueError) as exc:
            parser.error(str(exc))
        gaps, same = [], 0
        for path in originals:
            full, copy = classifier.predict(path), classifier.predict(kaggle_copy(path))
            gaps.append(abs(full.probability_pneumonia - copy.probability_pneumonia))
            same += full.label == copy.label
        print(
            f"{classifier.path.name}: {len(originals)} originals vs their 224 px copies: probability gap "
            f"mean {np.mean(gaps):.4f}, max {max(gaps):.4f}; same verdict {same}/{len(originals)}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

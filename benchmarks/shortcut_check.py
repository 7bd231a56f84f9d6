"""Shortcut check on the test set (issue 3): Grad-CAM mass at the borders, and accuracy with borders masked.

    python benchmarks/shortcut_check.py [--model NAME] [--data DIR] [--split test|validation] [--write]

--write stores the test-set result in the model's metadata.json and regenerates its MODEL_CARD.md.
--split validation runs the same check on the model's own validation split, where it may be used
to choose between models (the test set never is).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import add_data_argument, rewrite_metadata


def main() -> None:
    from pneumo_core import Classifier, registry
    from pneumo_core.config import TrainingConfig
    from pneumo_core.data import list_split, training_split
    from pneumo_core.shortcuts import shortcut_check

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None)
    add_data_argument(parser)
    parser.add_argument("--split", choices=["test", "validation"], default="test")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    if args.write and args.split != "test":
        parser.error("--write stores the test-set check; drop --split")
    clf = Classifier.load(args.model)
    if args.split == "test":
        samples = list_split(args.data, "test")
    else:
        samples = training_split(args.data, TrainingConfig.from_dict(clf.metadata["training_config"]))[1]
    result = shortcut_check(clf, [s.path for s in samples], [s.label for s in samples])
    print(f"model: {clf.name}, split: {args.split}")
    print(json.dumps(result, indent=2))
    if args.write:
        metadata = registry.read_metadata(clf.path)
        metadata["shortcut_check"] = result
        rewrite_metadata(clf.path, metadata)
        print(f"written to {clf.path}")


if __name__ == "__main__":
    main()

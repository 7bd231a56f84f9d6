"""Plant known clinical bugs one at a time and check that the tests catch each of them.

    python benchmarks/planted_bugs.py [--only NAME,...]

Each bug is a small source edit in a scratch copy of the working tree (never in place); the test
files that guard that behaviour are then run, and the bug counts as *caught* when they fail. The
first six are the holes the mutation audit of issue 21 found (the threshold, Grad-CAM's sign, the
registry's atomic writes and the two decoding limits); the rest break the other rules a clinician
relies on. Prints one line per bug and exits 1 if any got through.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import ROOT, scratch_copy


@dataclass(frozen=True)
class Bug:
    name: str
    file: str
    edits: tuple[tuple[str, str], ...]  # (exact source text, replacement)
    tests: tuple[str, ...]


BUGS = [
    Bug(
        "verdict at 0.5 instead of the model's threshold",
        "pneumo_core/classifier.py",
        (("label=self.contract.label_for(probability),", 'label=("NORMAL", "PNEUMONIA")[int(probability >= 0.5)],'),),
        ("tests/test_classifier.py", "tests/test_contract.py"),
    ),
    Bug(
        "Grad-CAM sign flipped",
        "pneumo_core/gradcam.py",
        (("axis=-1) * sign)", "axis=-1) * -sign)"),),
        ("tests/test_classifier.py",),
    ),
    Bug(
        "model folder written in place, not staged",
        "pneumo_core/registry.py",
        (
            (
                'staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=final.parent))',
                "staging = final\n    staging.mkdir(exist_ok=True)",
            ),
            ("        if final.exists():\n            trash", "        if False:\n            trash"),
            ("        else:\n            os.replace(staging, final)", "        else:\n            pass"),
        ),
        ("tests/test_registry.py",),
    ),
    Bug(
        "DEFAULT pointer written with a plain write_text",
        "pneumo_core/registry.py",
        (
            (
                '_atomic_write_text(models_dir() / DEFAULT_POINTER, name + "\\n")',
                '(models_dir() / DEFAULT_POINTER).write_text(name + "\\n")',
            ),
        ),
        ("tests/test_registry.py",),
    ),
    Bug(
        "pixel limit raised 100x",
        "pneumo_core/imaging.py",
        (("MAX_PIXELS = 60_000_000", "MAX_PIXELS = 6_000_000_000"),),
        ("tests/test_imaging.py",),
    ),
    Bug(
        "upload size limit raised 100x",
        "pneumo_core/imaging.py",
        (("MAX_UPLOAD_MB = 50", "MAX_UPLOAD_MB = 5000"),),
        ("tests/test_imaging.py",),
    ),
    Bug(
        "DICOM MONOCHROME1 not inverted",
        "pneumo_core/imaging.py",
        (("gray = 255 - gray  # MONOCHROME1", "gray = gray  # MONOCHROME1"),),
        ("tests/test_imaging.py",),
    ),
    Bug(
        "sensitivity reported as specificity",
        "pneumo_core/evaluation.py",
        (('"sensitivity": sensitivity,', '"sensitivity": ratio(tn, tn + fp),'),),
        ("tests/test_evaluation.py",),
    ),
    Bug(
        "lowest instead of highest threshold reaching the sensitivity target",
        "pneumo_core/evaluation.py",
        (("        index = ok[0]\n", "        index = ok[-1]\n"),),
        ("tests/test_evaluation.py",),
    ),
    Bug(
        "prevalence shift applied backwards",
        "pneumo_core/evaluation.py",
        (
            (
                "shift = np.log(to_prevalence / (1 - to_prevalence)) - np.log(from_prevalence / (1 - from_prevalence))",
                "shift = np.log(from_prevalence / (1 - from_prevalence)) - np.log(to_prevalence / (1 - to_prevalence))",
            ),
        ),
        ("tests/test_evaluation.py", "tests/test_classifier.py"),
    ),
    Bug(
        "calibration temperature ignored",
        "pneumo_core/classifier.py",
        (("probability = float(sigmoid(logit, self.contract.temperature))", "probability = float(sigmoid(logit))"),),
        ("tests/test_classifier.py", "tests/test_contract.py"),
    ),
    Bug(
        "feature-space gate skipped",
        "pneumo_core/classifier.py",
        (
            (
                "        if self.feature_gate is not None:\n            self.feature_gate.check(",
                "        if False:\n            self.feature_gate.check(",
            ),
        ),
        ("tests/test_classifier.py", "tests/test_gate.py"),
    ),
    Bug(
        "colour photographs let through",
        "pneumo_core/gate.py",
        (("if decoded.colorfulness > MAX_COLORFULNESS:", "if decoded.colorfulness > 10 * MAX_COLORFULNESS:"),),
        ("tests/test_gate.py",),
    ),
    Bug(
        "CSV formulas written verbatim",
        "pneumo_core/render.py",
        (('FORMULA_STARTS = ("=", "+", "-", "@", "\\t", "\\r")', "FORMULA_STARTS = ()"),),
        ("tests/test_pages_data.py", "tests/test_cli.py"),
    ),
]


def plant(work: Path, bug: Bug) -> None:
    path = work / bug.file
    source = path.read_text()
    for old, new in bug.edits:
        if source.count(old) != 1:
            raise SystemExit(f"{bug.name}: the text to edit is not found once in {bug.file}: {old!r}")
        source = source.replace(old, new)
    path.write_text(source)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="", help="comma-separated substrings of bug names to run")
    args = parser.parse_args(argv)
    chosen = [b for b in BUGS if not args.only or any(s.strip() in b.name for s in args.only.split(","))]
    if not chosen:
        parser.error(f"no planted bug's name contains any of: {args.only}")
    python = ROOT / ".venv" / "bin" / "python"
    missed = 0
    for bug in chosen:
        with tempfile.TemporaryDirectory(prefix="planted-") as scratch:
            work = Path(scratch)
            scratch_copy(work)
            plant(work, bug)
            started = time.perf_counter()
            run = subprocess.run(
                [str(python), "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *bug.tests],
                cwd=work,
                capture_output=True,
                text=True,
                env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
            )
        caught = run.returncode == 1  # tests failed (2-5: the run itself broke, which is not a catch)
        missed += not caught
        failed = [line.split(" ")[1] for line in run.stdout.splitlines() if line.startswith("FAILED ")]
        verdict = f"caught by {failed[0].split('::')[-1]}" if caught and failed else f"NOT caught (rc {run.returncode})"
        print(f"{bug.name:<70} {verdict}  [{time.perf_counter() - started:.0f} s]", flush=True)
    print(f"{len(chosen) - missed}/{len(chosen)} planted bugs caught")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())

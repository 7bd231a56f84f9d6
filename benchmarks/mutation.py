"""Mutation testing of the modules that hold the clinical logic: how many planted bugs the tests catch.

    python benchmarks/mutation.py [--modules evaluation,gate,...] [--jobs 1] [--out DIR] [--recheck]

Uses mutmut 2.5.1 (installed into .venv by this script if missing; it is not part of the test
requirements). Each module is mutated in its own scratch copy of the working tree, never in place,
and each mutant runs the test files that cover that module (``MODULES`` below) with ``-x``. A mutant
is *killed* when a test fails or the run times out, and *survives* when every test passes.
Prints the kill rate per module and writes, under ``--out`` (default ``runs/mutation``), a JSON
summary and the diff of every surviving mutant, to review which of them are equivalent (cannot
change behaviour); that review is recorded in docs/benchmarks.md. Mutants that are not valid Python
are left out of the count. The suite itself is not run by CI.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import ROOT, scratch_copy

MUTMUT = "mutmut==2.5.1"
STALL_SECONDS = 300
"""mutmut gets started again after this long without output (longer than its own time-out of ten
times the baseline test run for any module here)."""

# module -> the test files that pin its behaviour (run for each of its mutants)
MODULES: dict[str, list[str]] = {
    "evaluation": ["tests/test_evaluation.py"],
    "contract": ["tests/test_contract.py"],
    "imaging": ["tests/test_imaging.py"],
    "gate": ["tests/test_gate.py"],
    "registry": ["tests/test_registry.py"],
    "worklist": ["tests/test_pages_data.py"],
    "render": ["tests/test_pages_data.py"],
}


def ensure_mutmut(python: Path) -> Path:
    mutmut = python.parent / "mutmut"
    if not mutmut.exists():
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", MUTMUT], check=True)
    return mutmut


def run_module(module: str, tests: list[str], mutmut: Path, python: Path, out: Path, recheck: bool) -> dict:
    saved_cache, saved = out / f"{module}.mutmut-cache", out / f"{module}-statuses.json"
    with tempfile.TemporaryDirectory(prefix=f"mutation-{module}-") as scratch:
        work = Path(scratch)
        scratch_copy(work)
        source_file = work / "pneumo_core" / f"{module}.py"
        original = source_file.read_text()
        digest = hashlib.sha1(original.encode()).hexdigest()
        command = [str(python), "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
        started = time.perf_counter()
        previous = json.loads(saved.read_text()) if recheck and saved.exists() else None
        if previous and previous["source_sha1"] == digest:
            # Only the survivors are tested again: tests were added, so a killed mutant stays killed.
            shutil.copy(saved_cache, work / ".mutmut-cache")
            statuses = {int(k): v for k, v in previous["statuses"].items()}
        else:
            run_mutmut(
                [str(mutmut), "run", "--paths-to-mutate", f"pneumo_core/{module}.py", "--runner", " ".join(command)],
                work,
            )
            statuses = dict(mutant_statuses(work / ".mutmut-cache"))
            shutil.copy(work / ".mutmut-cache", saved_cache)
        # mutmut 2 counts any exit code but 1 as "tests passed", so a mutant the tests could not even
        # import (exit 2) reads as a survivor. Each survivor is applied again here and judged:
        # not Python at all -> invalid (left out); the tests fail or cannot import it -> killed.
        diffs = []
        for mutant_id, status in sorted(statuses.items()):
            if status not in ("bad_survived", "ok_suspicious"):
                continue
            subprocess.run([str(mutmut), "apply", str(mutant_id)], cwd=work, capture_output=True, check=True)
            try:
                compile(source_file.read_text(), str(source_file), "exec")
            except SyntaxError:
                statuses[mutant_id] = "invalid"
            else:
                rerun = subprocess.run(command, cwd=work, capture_output=True, text=True)
                if rerun.returncode != 0:
                    statuses[mutant_id] = "ok_killed"
            finally:
                source_file.write_text(original)
            if statuses[mutant_id] in ("bad_survived", "ok_suspicious"):
                shown = subprocess.run([str(mutmut), "show", str(mutant_id)], cwd=work, capture_output=True, text=True)
                diffs.append(f"# {module} mutant {mutant_id}\n{shown.stdout.strip()}\n")
        saved.write_text(json.dumps({"source_sha1": digest, "tests": tests, "statuses": statuses}, indent=1))
        elapsed = time.perf_counter() - started
    (out / f"{module}-survivors.diff").write_text("\n".join(diffs))
    counts = Counter(statuses.values())
    total = sum(counts.values()) - counts["skipped"] - counts["invalid"]
    killed = counts["ok_killed"] + counts["bad_timeout"]
    return {
        "module": module,
        "tests": tests,
        "mutants": total,
        "invalid": counts["invalid"],
        "killed": killed,
        "timed_out": counts["bad_timeout"],
        "survived": counts["bad_survived"] + counts["ok_suspicious"],
        "untested": counts["untested"],
        "kill_rate": killed / total if total else None,
        "seconds": round(elapsed),
    }


def run_mutmut(command: list[str], work: Path, stall: float = STALL_SECONDS, attempts: int = 5) -> None:
    """``mutmut run`` in ``work``, started again where it stopped whenever it prints nothing for
    ``stall`` seconds: mutmut 2 waits forever when its test worker dies, and a new run skips every
    mutant its cache already has a status for. Gives up after ``attempts`` starts (mutants left
    untested are reported as such)."""
    for _ in range(attempts):
        process = subprocess.Popen(
            command, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
        )
        last_output = [time.monotonic()]

        def follow(stream=process.stdout, last=last_output) -> None:
            while stream.read1(4096):
                last[0] = time.monotonic()

        threading.Thread(target=follow, daemon=True).start()
        while process.poll() is None and time.monotonic() - last_output[0] < stall:
            time.sleep(2)
        if process.poll() is None:  # stalled: stop it, its worker and their tests
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        cache = work / ".mutmut-cache"
        if not cache.exists() or not any(status == "untested" for _, status in mutant_statuses(cache)):
            return  # done, or mutmut could not start (its baseline test run failed)


def mutant_statuses(cache: Path) -> list[tuple[int, str]]:
    """(mutant id, status) from mutmut 2's cache: ok_killed, bad_timeout, bad_survived, ok_suspicious, ..."""
    with sqlite3.connect(cache) as db:
        return db.execute("SELECT id, status FROM Mutant ORDER BY id").fetchall()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modules", default=",".join(MODULES), help="comma-separated, from: " + ", ".join(MODULES))
    parser.add_argument("--jobs", type=int, default=1, help="modules mutated at once (default 1)")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "mutation")
    parser.add_argument(
        "--recheck",
        action="store_true",
        help="test only the previous run's survivors again (a module whose source changed runs in full)",
    )
    args = parser.parse_args(argv)
    modules = [m.strip() for m in args.modules.split(",") if m.strip()]
    unknown = sorted(set(modules) - set(MODULES))
    if unknown:
        parser.error(f"unknown module(s): {', '.join(unknown)}")
    python = ROOT / ".venv" / "bin" / "python"
    if not python.exists():
        parser.error("no .venv here: run `bash scripts/test.sh` once first")
    mutmut = ensure_mutmut(python)
    args.out.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        rows = list(pool.map(lambda m: run_module(m, MODULES[m], mutmut, python, args.out, args.recheck), modules))
    (args.out / "summary.json").write_text(json.dumps(rows, indent=2))
    print(f"{'module':<12} {'mutants':>8} {'killed':>7} {'survived':>9} {'kill rate':>10} {'time':>7}")
    for row in rows:
        rate = f"{row['kill_rate']:.1%}" if row["kill_rate"] is not None else "-"
        print(
            f"{row['module']:<12} {row['mutants']:>8} {row['killed']:>7} {row['survived']:>9} {rate:>10} {row['seconds']:>6}s"
        )
    total = sum(r["mutants"] for r in rows)
    killed = sum(r["killed"] for r in rows)
    if total:
        print(f"{'all':<12} {total:>8} {killed:>7} {total - killed:>9} {killed / total:>10.1%}")
    print(f"surviving mutants' diffs: {args.out}/<module>-survivors.diff")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Retraining runs as separate processes: start, follow, cancel, list. One run at a time.

A run is ``python train.py --config runs/<id>/config.json --events runs/<id>/events.jsonl --out
models/<id>``: the configuration travels as the same file a model's metadata holds. It lives outside
whatever started it (the app's script thread), so page switches and reloads do not touch it. State
is read back from its events file; the run only reaches the registry by finishing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import registry
from .config import TrainingConfig

PROJECT_ROOT = Path(__file__).resolve().parent.parent
LOCK_FILE = "ACTIVE"


def runs_dir() -> Path:
    return Path(os.environ.get("PNEUMO_RUNS", PROJECT_ROOT / "runs"))


class RunRefused(RuntimeError):
    """A run could not be started (another is active, or the inputs are invalid)."""


@dataclass
class RunStatus:
    run_id: str
    state: str  # "running", "done", "cancelled", "failed"
    config: dict[str, Any]
    progress: float = 0.0
    epoch: int = 0
    epochs: int = 0
    step: int = 0
    steps: int = 0
    eta_s: float | None = None
    message: str = ""
    """What the run is doing now ("Training member 2 of 3: epoch 4/14, step 12/129", "Calibrating on
    validation"), or once it has ended, why."""
    history: dict[str, list[float]] = field(default_factory=dict)
    result: dict[str, Any] | None = None
    started: float = 0.0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    try:  # a finished child we started stays a zombie until reaped
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


def active_run() -> str | None:
    """The id of the running run, clearing a stale lock left by a dead process."""
    lock = runs_dir() / LOCK_FILE
    try:
        run_id, pid = lock.read_text().split()
    except (OSError, ValueError):
        return None
    if _alive(int(pid)):
        return run_id
    lock.unlink(missing_ok=True)
    return None


def start_run(config: TrainingConfig, data_dir: Path) -> str:
    """Launch a run; returns its id. Raises ``RunRefused`` if one is already running."""
    current = active_run()
    if current:
        raise RunRefused(f"run {current} is still in progress; wait for it or cancel it first")
    if not (Path(data_dir) / "train").is_dir():
        raise RunRefused(f"no dataset at {data_dir}: set PNEUMO_DATA to a folder with train/ and test/")
    run_id = time.strftime("run-%Y%m%d-%H%M%S")
    folder = runs_dir() / run_id
    folder.mkdir(parents=True, exist_ok=False)
    config_file = folder / "config.json"
    config_file.write_text(
        json.dumps({"training_config": config.to_dict(), "data": str(data_dir), "started": time.time()})
    )
    command = [
        sys.executable, str(PROJECT_ROOT / "train.py"), "--config", str(config_file), "--data", str(data_dir),
        "--out", str(registry.models_dir() / run_id), "--events", str(folder / "events.jsonl"),
    ]  # fmt: skip
    with (folder / "log.txt").open("w") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT, start_new_session=True
        )
    (runs_dir() / LOCK_FILE).write_text(f"{run_id} {process.pid}\n")
    (folder / "pid").write_text(str(process.pid))
    return run_id


def cancel_run(run_id: str, grace_s: float = 20.0) -> bool:
    """Ask the run to stop (SIGTERM: it stops after the current batch), kill it if it lingers."""
    try:
        pid = int((runs_dir() / run_id / "pid").read_text())
    except (OSError, ValueError):
        return False
    if not _alive(pid):
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.time() + grace_s
    while time.time() < deadline and _alive(pid):
        time.sleep(0.2)
    if _alive(pid):
        os.killpg(pid, signal.SIGKILL)
        _append_event(run_id, {"type": "cancelled", "time": time.time(), "message": "killed after the grace period"})
    return True


def _append_event(run_id: str, event: dict[str, Any]) -> None:
    with (runs_dir() / run_id / "events.jsonl").open("a") as handle:
        handle.write(json.dumps(event) + "\n")


def run_status(run_id: str) -> RunStatus:
    folder = runs_dir() / registry.check_name(run_id)
    info = json.loads((folder / "config.json").read_text())
    config = info.get("training_config", info.get("config", {}))  # "config": runs started before 2026-12
    status = RunStatus(run_id, "running", config, started=info.get("started", 0.0))
    history: dict[str, list[float]] = {}
    events_file = folder / "events.jsonl"
    lines = events_file.read_text().splitlines() if events_file.exists() else []
    step_name = "Training"
    for line in lines:
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line being written right now
        kind = event.get("type")
        if kind == "batch":
            status.progress = float(event.get("progress", 0.0))
            status.epoch, status.epochs = event["epoch"], event["epochs"]
            status.step, status.steps = event["step"], event["steps"]
            status.eta_s = event.get("eta_s")
            status.message = f"{step_name}: epoch {status.epoch}/{status.epochs}, step {status.step}/{status.steps}"
        elif kind == "epoch_end":
            for key, value in event["logs"].items():
                history.setdefault(key, []).append(value)
        elif kind in ("stage", "loading"):  # a step after the epochs: their time left no longer applies
            status.message = event.get("message") or f"Loading {event['split']} images {event['done']}/{event['total']}"
            step_name, status.eta_s = event.get("message", step_name), None
        elif kind == "done":
            status.state, status.progress, status.result, status.message = "done", 1.0, event, "finished"
        elif kind in ("cancelled", "failed"):
            status.state, status.message = kind, event.get("message", kind)
    status.history = history
    if status.state == "running" and active_run() != run_id:
        status.state = "failed"
        log = folder / "log.txt"
        tail = log.read_text()[-800:] if log.exists() else ""
        status.message = (
            status.message if "cancel" in status.message else f"the training process ended unexpectedly. {tail}"
        )
    return status


def list_runs() -> list[RunStatus]:
    """All runs, newest first."""
    root = runs_dir()
    ids = (
        sorted((p.name for p in root.iterdir() if p.is_dir() and (p / "config.json").exists()), reverse=True)
        if root.is_dir()
        else []
    )
    return [run_status(run_id) for run_id in ids]


def runs_table() -> list[dict[str, Any]]:
    """Past runs with their configuration and results, newest first."""
    rows = []
    for run in list_runs():
        test = (run.result or {}).get("test") or {}
        validation = (run.result or {}).get("validation") or {}
        rows.append({
            "run": run.run_id, "state": run.state,
            **{key: run.config.get(key) for key in ("train_subset", "epochs", "image_size", "learning_rate", "augment")},
            "validation AUC": validation.get("auc"), "test AUC": test.get("auc"), "test accuracy": test.get("accuracy"),
        })  # fmt: skip
    return rows

"""Retraining runs as subprocesses: progress events, one at a time, real cancellation."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from pneumo_core import jobs
from pneumo_core.config import TrainingConfig

pytestmark = pytest.mark.slow
TINY = TrainingConfig(epochs=2, train_subset=80, image_size=64, width=16)


@pytest.fixture()
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, copy_registry: Path) -> Path:
    monkeypatch.setenv("PNEUMO_RUNS", str(tmp_path / "runs"))
    return copy_registry


def wait_for(predicate, timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError("timed out")


def test_run_completes_and_second_start_is_refused(sandbox: Path, data_root: Path) -> None:
    run_id = jobs.start_run(TINY, data_root)
    with pytest.raises(jobs.RunRefused, match="still in progress"):
        jobs.start_run(TINY, data_root)
    wait_for(lambda: jobs.run_status(run_id).state != "running", 240)
    status = jobs.run_status(run_id)
    assert status.state == "done", status.message
    assert status.history["loss"] and len(status.history["loss"]) == 2
    assert (sandbox / run_id / "model.keras").exists()
    assert (sandbox / "DEFAULT").read_text().strip() == "tiny"  # a run never changes the default by itself
    assert jobs.runs_table()[0]["run"] == run_id
    # the process was handed the configuration as a file, the same shape a model's metadata holds
    command_config = json.loads((Path(jobs.runs_dir()) / run_id / "config.json").read_text())["training_config"]
    assert command_config == TINY.to_dict()
    assert json.loads((sandbox / run_id / "metadata.json").read_text())["training_config"] == TINY.to_dict()


def test_cancel_really_stops(sandbox: Path, data_root: Path) -> None:
    run_id = jobs.start_run(TrainingConfig(epochs=30, train_subset=400, image_size=64, width=16), data_root)
    wait_for(lambda: jobs.run_status(run_id).step > 0, 180)
    assert jobs.cancel_run(run_id)
    status = jobs.run_status(run_id)
    assert status.state == "cancelled"
    assert jobs.active_run() is None
    assert not (sandbox / run_id).exists()


def test_refused_without_dataset(sandbox: Path, tmp_path: Path) -> None:
    with pytest.raises(jobs.RunRefused, match="no dataset"):
        jobs.start_run(TINY, tmp_path / "nowhere")

"""benchmarks/common.py: every benchmark finds the dataset the project's one way."""

from __future__ import annotations

import argparse
from pathlib import Path

from conftest import ROOT

from benchmarks.common import add_data_argument


def test_every_benchmark_takes_the_projects_dataset_default(monkeypatch) -> None:
    monkeypatch.setenv("PNEUMO_DATA", "/somewhere/chest_xray")
    parser = argparse.ArgumentParser()
    add_data_argument(parser)
    assert parser.parse_args([]).data == Path("/somewhere/chest_xray")
    assert parser.parse_args(["--data", "d"]).data == Path("d")
    monkeypatch.delenv("PNEUMO_DATA")
    parser = argparse.ArgumentParser()
    add_data_argument(parser)
    assert parser.parse_args([]).data == ROOT / "data" / "chest_xray"
    # these two edit code in a scratch copy and run the tests, which read the committed fixture only;
    # bare_page.py is not a script but a page that bench_load serves
    no_dataset = ("common.py", "__init__.py", "mutation.py", "planted_bugs.py", "bare_page.py")
    scripts = sorted(p for p in (ROOT / "benchmarks").glob("*.py") if p.name not in no_dataset)
    assert len(scripts) >= 6
    for script in scripts:
        text = script.read_text()
        assert "add_data_argument(" in text, script.name
        assert 'add_argument("--data"' not in text, script.name


def test_the_seed_spread_reads_each_members_kept_epoch() -> None:
    from benchmarks.seed_spread import kept_epochs

    history = {"val_loss": [0.9, 0.4, 0.6, 0.7, 0.8, 0.3, 0.5, 0.2, 0.6, 0.7]}
    assert kept_epochs({"history": history, "member_epochs": [5, 5]}) == [2, 3]  # each member's best epoch


def test_the_seed_spread_and_its_adapted_reading_are_written_side_by_side(tmp_path, monkeypatch) -> None:
    """`summary --write` and `adapted --write` each store their part of ``seed_spread`` and keep the
    other's, and the card shows both with their commands."""
    import json
    import shutil

    from conftest import SHIPPED_MODELS

    from benchmarks.seed_spread import _write

    shutil.copytree(SHIPPED_MODELS / "pneumonia-cnn-v3", tmp_path / "m", ignore=shutil.ignore_patterns("*.keras"))
    monkeypatch.setenv("PNEUMO_MODELS", str(tmp_path))
    _write("m", {"adapted": {"summary": "on site B, seeds 1, 2 gave specificity 88.0-90.0%", "command": "`adapt-cmd`"}})
    _write("m", {"summary": "seeds 1, 2 gave specificity 50.0-60.0%", "command": "`summary-cmd`"})
    spread = json.loads((tmp_path / "m" / "metadata.json").read_text())["seed_spread"]
    assert (
        spread["summary"] == "seeds 1, 2 gave specificity 50.0-60.0%" and spread["adapted"]["command"] == "`adapt-cmd`"
    )
    card = (tmp_path / "m" / "MODEL_CARD.md").read_text()
    assert "seeds 1, 2 gave specificity 50.0-60.0% (`summary-cmd`)." in card
    assert (
        "Each adapted to a site's own images: on site B, seeds 1, 2 gave specificity 88.0-90.0% (`adapt-cmd`)." in card
    )

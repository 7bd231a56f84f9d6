"""benchmarks/common.py: every benchmark finds the dataset the same way, from any working folder."""

from __future__ import annotations

from pathlib import Path

from conftest import ROOT

from benchmarks.common import SHARED_DATA, add_data_argument, default_data_dir


def test_the_default_is_pneumo_data_else_the_shared_copy_beside_the_project(monkeypatch) -> None:
    monkeypatch.setenv("PNEUMO_DATA", "/somewhere/chest_xray")
    assert default_data_dir() == Path("/somewhere/chest_xray")
    monkeypatch.delenv("PNEUMO_DATA")
    assert default_data_dir() == SHARED_DATA == ROOT.parent / "shared" / "data" / "chest_xray"
    assert SHARED_DATA.is_absolute()


def test_every_benchmark_takes_its_data_argument_from_common() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    add_data_argument(parser)
    assert parser.parse_args(["--data", "d"]).data == Path("d")
    scripts = sorted(p for p in (ROOT / "benchmarks").glob("*.py") if p.name != "common.py")
    assert len(scripts) >= 8
    for script in scripts:
        text = script.read_text()
        assert "add_data_argument(parser)" in text, script.name
        assert 'add_argument("--data"' not in text, script.name

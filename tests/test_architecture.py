"""The boundaries the layout promises: the app reaches the core through one facade, the core knows
nothing of Streamlit, and each piece of the model contract is written in one place."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from conftest import ROOT

APP_FILES = [ROOT / "app.py", ROOT / "ui.py", *sorted((ROOT / "app_pages").glob("*.py"))]
CORE_FILES = sorted((ROOT / "pneumo_core").glob("*.py"))


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, as dotted names (``from pneumo_core import api`` gives
    ``pneumo_core.api``; a relative ``from .x import y`` gives ``.x``)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names if base == "pneumo_core")
    return names


@pytest.mark.parametrize("path", APP_FILES, ids=lambda p: p.name)
def test_the_app_reaches_the_core_through_its_facade_only(path: Path) -> None:
    core = {name for name in imported_modules(path) if name.startswith("pneumo_core")}
    assert core <= {"pneumo_core", "pneumo_core.api"}, core
    heavy = {name.split(".")[0] for name in imported_modules(path)} & {"tensorflow", "keras", "cv2", "numpy"}
    assert not heavy, heavy


@pytest.mark.parametrize("path", CORE_FILES, ids=lambda p: p.name)
def test_the_core_never_imports_streamlit(path: Path) -> None:
    assert not {name for name in imported_modules(path) if name.split(".")[0] == "streamlit"}


def test_each_part_of_the_contract_is_written_once() -> None:
    """Class names, the Grad-CAM layer and the disclaimer: one definition each in the core and the app."""
    sources = {path: path.read_text() for path in [*CORE_FILES, *APP_FILES, ROOT / "train.py"]}

    def written_in(literal: str) -> list[str]:
        return sorted(path.name for path, text in sources.items() if literal in text)

    assert written_in('"PNEUMONIA"') == written_in('"NORMAL"') == ["contract.py"]
    assert written_in('"gradcam_target"') == ["contract.py"]
    assert written_in("not a medical device") == ["render.py"]
    assert written_in("layers.Rescaling(") == ["model.py"]
    assert sources[ROOT / "pneumo_core" / "model.py"].count("layers.Rescaling(") == 1


def test_training_runs_the_network_without_the_classifier() -> None:
    """A training run calibrates and scores a plain network; ``Classifier`` is for inference."""
    for name in ("training.py", "fitting.py", "calibration.py", "progress.py", "network.py", "gradcam.py"):
        modules = imported_modules(ROOT / "pneumo_core" / name)
        assert ".classifier" not in modules and "pneumo_core.classifier" not in modules, name

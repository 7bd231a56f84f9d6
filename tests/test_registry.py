"""The model registry: names cannot escape models/, writes are atomic, broken models fall back."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pneumo_core import Classifier, ModelLoadError, registry


@pytest.mark.parametrize("name", ["../etc", "a/b", "..", ".hidden", "", "x" * 80, "/abs", "a\\b"])
def test_bad_names_are_refused(name: str, use_tiny_registry: Path) -> None:
    with pytest.raises(ValueError):
        registry.model_path(name)


def test_default_and_listing(use_tiny_registry: Path) -> None:
    assert registry.default_name() == "tiny"
    names = [m.name for m in registry.list_models()]
    assert names[0] == "tiny"


def test_broken_folder_is_skipped_and_explained(copy_registry: Path) -> None:
    broken = copy_registry / "broken"
    broken.mkdir()
    (broken / "model.keras").write_bytes(b"garbage")
    (broken / "metadata.json").write_text("{not json")
    assert "broken" not in [m.name for m in registry.list_models()]
    with pytest.raises(ModelLoadError, match="unreadable"):
        Classifier.load("broken")


def test_corrupt_weights_fall_back_to_the_shipped_model(copy_registry: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = copy_registry / "bad"
    bad.mkdir()
    (bad / "model.keras").write_bytes(b"PK\x03\x04 not really a zip")
    (bad / "metadata.json").write_text((copy_registry / "tiny" / "metadata.json").read_text())
    monkeypatch.setattr(registry, "SHIPPED_DEFAULT", "tiny")
    classifier, warning = Classifier.load_or_fallback("bad")
    assert classifier.name == "tiny" and "could not be loaded" in warning


def test_missing_model_is_a_clear_error(use_tiny_registry: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"no model\.keras"):
        Classifier.load("does-not-exist")
    with pytest.raises(ModelLoadError, match="invalid model name"):
        Classifier.load("../../etc")


def test_save_replaces_atomically_and_leaves_no_staging(copy_registry: Path) -> None:
    metadata = json.loads((copy_registry / "tiny" / "metadata.json").read_text())

    def failing_writer(path: Path) -> None:
        raise OSError("disk full")

    with pytest.raises(OSError):
        registry.save_model_folder(copy_registry / "tiny", {"model.keras": failing_writer}, metadata, [], "")
    assert (copy_registry / "tiny" / "model.keras").exists()  # the old model is untouched
    assert not [p for p in copy_registry.iterdir() if p.name.startswith(".")]


def test_set_default_refuses_unreadable(copy_registry: Path) -> None:
    with pytest.raises(ModelLoadError):
        registry.set_default("nothing-here")
    assert registry.default_name() == "tiny"


def test_safe_mode_refuses_lambda_layers(copy_registry: Path) -> None:
    import keras

    inputs = keras.Input((64, 64, 1))
    outputs = keras.layers.Lambda(lambda t: t * 2)(inputs)
    model = keras.Model(inputs, outputs)
    folder = copy_registry / "evil"
    metadata = json.loads((copy_registry / "tiny" / "metadata.json").read_text())
    registry.save_model_folder(folder, {"model.keras": model.save}, metadata, [], "")
    with pytest.raises(ModelLoadError):
        Classifier.load("evil")


def test_a_model_folder_is_staged_and_takes_its_name_only_when_complete(copy_registry: Path) -> None:
    metadata = json.loads((copy_registry / "tiny" / "metadata.json").read_text())
    final = copy_registry / "fresh"
    seen = []

    def writer(path: Path) -> None:
        seen.append((path.parent != final, final.exists()))
        path.write_bytes(b"weights")

    registry.save_model_folder(final, {"model.keras": writer}, metadata, [], "# card\n")
    assert seen == [(True, False)]  # written elsewhere, while the final name did not exist yet
    assert (final / "model.keras").read_bytes() == b"weights" and (final / "MODEL_CARD.md").exists()


def test_set_default_points_at_the_model_and_replaces_the_pointer_atomically(
    copy_registry: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    shutil.copytree(copy_registry / "tiny", copy_registry / "other")
    replaced = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: replaced.append(Path(b).name) or real_replace(a, b))
    registry.set_default("other")
    assert registry.default_name() == "other" and (copy_registry / "DEFAULT").read_text() == "other\n"
    assert replaced == ["DEFAULT"]  # a whole new file renamed over the old one, never a partial write

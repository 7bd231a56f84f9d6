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
    assert [m.name for m in registry.list_models()] == ["tiny"]  # skipped, and the listing goes on past it
    with pytest.raises(ModelLoadError, match="unreadable"):
        Classifier.load("broken")


def test_model_names_follow_the_folder_without_parsing_it_on_every_call(
    copy_registry: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parsed = []
    read = registry.read_metadata
    monkeypatch.setattr(registry, "read_metadata", lambda path: parsed.append(path.name) or read(path))
    names = registry.model_names()
    assert names == [m.name for m in registry.list_models()] and names[0] == "tiny"
    parsed.clear()
    assert registry.model_names() == names and parsed == []  # nothing changed: nothing parsed

    metadata = json.loads((copy_registry / "tiny" / "metadata.json").read_text())
    shutil.copytree(copy_registry / "tiny", copy_registry / "newer")  # a model registered
    (copy_registry / "newer" / "metadata.json").write_text(json.dumps({**metadata, "created_unix": 4e9}))
    assert registry.model_names()[:2] == ["tiny", "newer"]  # the default first, then the newest
    registry.set_default("newer")
    assert registry.model_names()[0] == "newer"
    (copy_registry / "newer" / "metadata.json").write_text("{not json")  # rewritten, broken: left out
    assert "newer" not in registry.model_names()
    shutil.rmtree(copy_registry / "tiny")
    assert "tiny" not in registry.model_names()


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

    staged = []

    def writer(path: Path) -> None:
        staged.append(path.parent.name)
        seen.append((path.parent != final, final.exists()))
        path.write_bytes(b"weights")

    registry.save_model_folder(final, {"model.keras": writer}, metadata, [], "# card\n")
    assert seen == [(True, False)]  # written elsewhere, while the final name did not exist yet
    assert staged[0].startswith(".fresh.")  # a hidden folder: never listed, never mistaken for a model
    assert (final / "model.keras").read_bytes() == b"weights" and (final / "MODEL_CARD.md").exists()


def test_set_default_points_at_the_model_and_replaces_the_pointer_atomically(
    copy_registry: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    shutil.copytree(copy_registry / "tiny", copy_registry / "other")
    replaced = []
    real_replace = os.replace
    sources = []
    monkeypatch.setattr(
        os, "replace", lambda a, b: sources.append(Path(a).name) or replaced.append(Path(b).name) or real_replace(a, b)
    )
    registry.set_default("other")
    assert registry.default_name() == "other" and (copy_registry / "DEFAULT").read_text() == "other\n"
    assert replaced == ["DEFAULT"]  # a whole new file renamed over the old one, never a partial write
    assert sources[0].startswith(".DEFAULT.")  # written under a hidden temporary name first


# --- names, resolution, listing and files, pinned by hand --------------------------------------


@pytest.mark.parametrize("name", ["a", "v3", "pneumonia-cnn-v3", "Site_A.2", "9lives", "x" * 64])
def test_plain_folder_names_are_accepted(name: str, use_tiny_registry: Path) -> None:
    assert registry.check_name(name) == name
    assert registry.model_path(name) == (use_tiny_registry / name).resolve()


@pytest.mark.parametrize("name", ["x" * 65, "a..b", "-a", "_a", "a b", "a/b", "é"])
def test_other_names_are_refused_with_the_rule(name: str) -> None:
    with pytest.raises(ValueError) as info:
        registry.check_name(name)
    assert str(info.value) == f"invalid model name {name!r}: use letters, digits, '.', '_' and '-' only"


def test_resolve_a_default_a_name_or_a_folder(use_tiny_registry: Path, tmp_path: Path) -> None:
    assert registry.resolve() == (use_tiny_registry / "tiny").resolve()
    assert registry.resolve("tiny") == (use_tiny_registry / "tiny").resolve()
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(use_tiny_registry / "tiny", elsewhere)
    assert registry.resolve(elsewhere) == elsewhere and registry.resolve(str(elsewhere)) == elsewhere
    (tmp_path / "not-a-model").mkdir()
    with pytest.raises(ValueError):  # a folder without metadata is read as a (bad) name
        registry.resolve(tmp_path / "not-a-model")


@pytest.mark.parametrize("pointer", [None, "", "../etc\n", ".hidden"])
def test_a_missing_or_bad_default_pointer_means_the_shipped_model(copy_registry: Path, pointer: str | None) -> None:
    if pointer is None:
        (copy_registry / "DEFAULT").unlink()
    else:
        (copy_registry / "DEFAULT").write_text(pointer)
    assert registry.default_name() == registry.SHIPPED_DEFAULT == "pneumonia-cnn-v3"


def test_unreadable_metadata_says_what_is_wrong(copy_registry: Path) -> None:
    folder = copy_registry / "tiny"
    (folder / "metadata.json").unlink()
    with pytest.raises(ModelLoadError, match=r"^model folder .*tiny has no metadata\.json$"):
        registry.read_metadata(folder)
    (folder / "metadata.json").write_text("[1, 2]")
    with pytest.raises(ModelLoadError, match=r"metadata\.json has no model contract$"):
        registry.read_metadata(folder)
    (folder / "metadata.json").write_text('{"name": "tiny"}')
    with pytest.raises(ModelLoadError, match="has no model contract"):
        registry.read_metadata(folder)
    (folder / "model.keras").unlink()
    with pytest.raises(ModelLoadError, match=r"^model folder .*tiny has no model\.keras$"):
        registry.read_metadata(folder)


def test_listing_puts_the_default_first_then_the_newest(copy_registry: Path) -> None:
    base = json.loads((copy_registry / "tiny" / "metadata.json").read_text())
    for name, created in (("a-old", 100.0), ("z-new", 300.0), ("mid", 200.0)):
        shutil.copytree(copy_registry / "tiny", copy_registry / name)
        (copy_registry / name / "metadata.json").write_text(json.dumps({**base, "created_unix": created}))
    (copy_registry / ".staging").mkdir()  # hidden folders and stray files are not models
    (copy_registry / "notes.txt").write_text("x")
    registry.set_default("mid")
    listed = registry.list_models()
    assert [m.name for m in listed][:3] == ["mid", "z-new", "a-old"] and "tiny" in [m.name for m in listed]
    assert [m.is_default for m in listed] == [True] + [False] * (len(listed) - 1)


def test_test_predictions_are_read_back_typed(copy_registry: Path) -> None:
    folder = copy_registry / "tiny"
    metadata = json.loads((folder / "metadata.json").read_text())
    rows = [{"path": "a.jpeg", "label": 1, "probability_pneumonia": 0.25}]
    registry.save_model_folder(folder, {"model.keras": lambda p: p.write_bytes(b"w")}, metadata, rows, "card")
    assert registry.read_predictions(folder) == rows
    (folder / registry.PREDICTIONS_FILE).unlink()
    assert registry.read_predictions(folder) == []


def test_saving_over_a_model_replaces_every_file_and_leaves_nothing_behind(copy_registry: Path) -> None:
    import numpy as np

    folder = copy_registry / "tiny"
    (folder / "stale.txt").write_text("from the old model")
    metadata = {"contract": {}, "array": np.array([1, 2]), "where": Path("/data"), "n": np.int64(3)}
    registry.save_model_folder(folder, {"model.keras": lambda p: p.write_bytes(b"new")}, metadata, [], "# new card\n")
    assert sorted(p.name for p in folder.iterdir()) == [
        "MODEL_CARD.md", "metadata.json", "model.keras", "test_predictions.csv",
    ]  # fmt: skip
    assert json.loads((folder / "metadata.json").read_text()) == {
        "contract": {}, "array": [1, 2], "where": "/data", "n": 3,
    }  # fmt: skip
    assert (folder / "MODEL_CARD.md").read_text() == "# new card\n"
    assert (folder / "test_predictions.csv").read_text().splitlines() == ["path,label,probability_pneumonia"]
    assert sorted(p.name for p in copy_registry.iterdir()) == ["DEFAULT", "tiny"]  # no staging, no .old
    with pytest.raises(TypeError, match=r"^cannot serialise object$"):
        registry.save_model_folder(folder, {}, {"contract": {}, "bad": object()}, [], "")
    assert (folder / "model.keras").read_bytes() == b"new"


def test_a_late_cancel_leaves_the_registry_as_it_was(copy_registry: Path) -> None:
    def cancel() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        registry.save_model_folder(
            copy_registry / "fresh", {"model.keras": lambda p: p.write_bytes(b"w")}, {"contract": {}}, [], "", cancel
        )
    assert sorted(p.name for p in copy_registry.iterdir()) == ["DEFAULT", "tiny"]


def test_the_default_pointer_can_be_written_into_a_new_registry(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PNEUMO_MODELS", str(tmp_path / "new" / "models"))
    registry._atomic_write_text(registry.models_dir() / registry.DEFAULT_POINTER, "x\n")
    assert (tmp_path / "new" / "models" / "DEFAULT").read_text() == "x\n"


def test_the_models_folder_is_the_projects_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    from conftest import ROOT

    monkeypatch.delenv("PNEUMO_MODELS", raising=False)
    assert registry.models_dir() == ROOT / "models"


def test_a_name_that_leads_out_of_the_registry_is_refused(copy_registry: Path, tmp_path: Path) -> None:
    (tmp_path / "outside").mkdir()
    (copy_registry / "link").symlink_to(tmp_path / "outside")
    with pytest.raises(ValueError, match=r"^model name 'link' escapes the models folder$"):
        registry.model_path("link")


def test_unparseable_metadata_quotes_the_parser(copy_registry: Path) -> None:
    folder = copy_registry / "tiny"
    (folder / "metadata.json").write_text("{oops")
    with pytest.raises(ModelLoadError, match=r"^.*tiny/metadata\.json is unreadable: Expecting property name"):
        registry.read_metadata(folder)


def test_a_model_can_be_saved_into_a_registry_that_does_not_exist_yet(tmp_path: Path) -> None:
    final = tmp_path / "new" / "registry" / "first"
    registry.save_model_folder(final, {"model.keras": lambda p: p.write_bytes(b"w")}, {"contract": {}}, [], "")
    assert (final / "model.keras").read_bytes() == b"w"


def test_replacing_a_model_moves_the_old_one_aside_under_a_hidden_name(
    copy_registry: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    moves = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: moves.append((Path(a).name, Path(b).name)) or real_replace(a, b))
    registry.save_model_folder(
        copy_registry / "tiny", {"model.keras": lambda p: p.write_bytes(b"w")}, {"contract": {}}, [], ""
    )
    assert moves[0] == ("tiny", ".tiny.old") and moves[1][0].startswith(".tiny.") and moves[1][1] == "tiny"

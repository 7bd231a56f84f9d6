"""Shared fixtures: a tiny untrained model in a temporary registry, dataset paths, test images.

``data_root`` is the committed fixture (100 real images, tests/fixtures/chest_xray), always
present; the tests that need the whole dataset live in test_full_dataset.py.
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parent.parent
FIXTURE_DATA = ROOT / "tests" / "fixtures" / "chest_xray"
SHIPPED_MODELS = ROOT / "models"


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The committed fixture: real images in the dataset's layout (see its README for counts)."""
    return FIXTURE_DATA


@pytest.fixture(scope="session")
def normal_image(data_root: Path) -> Path:
    return sorted((data_root / "test" / "NORMAL").iterdir())[0]


@pytest.fixture(scope="session")
def pneumonia_image(data_root: Path) -> Path:
    return sorted((data_root / "test" / "PNEUMONIA").iterdir())[0]


@pytest.fixture(scope="session")
def full_size_image(data_root: Path) -> Path:
    """An original-resolution radiograph (the official val folder keeps original sizes)."""
    return sorted((data_root / "val" / "NORMAL").iterdir())[0]


def make_tiny_model_folder(folder: Path, *, input_size: int = 64, threshold: float = 0.5) -> Path:
    """An untrained 64 px model with a valid contract: fast, and no weight files in the repo."""
    import keras

    from pneumo_core import registry
    from pneumo_core.config import TrainingConfig
    from pneumo_core.contract import ModelContract
    from pneumo_core.model import build_model

    keras.utils.set_random_seed(0)
    contract = ModelContract(input_size=input_size, operating_threshold=threshold)
    model = build_model(contract, TrainingConfig(width=16, image_size=input_size, augment=False))
    metadata = {"name": folder.name, "contract": contract.to_dict(), "created_unix": 0.0}
    return registry.save_model_folder(folder, {registry.MODEL_FILE: model.save}, metadata, [], "# tiny test model\n")


@pytest.fixture(scope="session")
def tiny_registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    make_tiny_model_folder(root / "tiny")
    (root / "DEFAULT").write_text("tiny\n")
    return root


@pytest.fixture()
def use_tiny_registry(tiny_registry: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PNEUMO_MODELS", str(tiny_registry))
    return tiny_registry


@pytest.fixture(scope="session")
def tiny_classifier(tiny_registry: Path):
    from pneumo_core import Classifier

    return Classifier.load(tiny_registry / "tiny")


@pytest.fixture(scope="session")
def shipped_classifier():
    """The model users get: the one ``models/DEFAULT`` names (and the registry falls back to)."""
    from pneumo_core import Classifier, registry

    default = (SHIPPED_MODELS / registry.DEFAULT_POINTER).read_text().strip()
    assert default == registry.SHIPPED_DEFAULT
    return Classifier.load(SHIPPED_MODELS / default)


def encode(array: np.ndarray, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


@pytest.fixture()
def copy_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_registry: Path) -> Path:
    """A writable copy of the tiny registry for tests that change it."""
    root = tmp_path / "models"
    shutil.copytree(tiny_registry, root)
    monkeypatch.setenv("PNEUMO_MODELS", str(root))
    return root

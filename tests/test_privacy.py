"""Privacy: uploads and DICOM patient identifiers never reach the disk or the logs."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT
from dicom_utils import make_dicom
from streamlit.testing.v1 import AppTest

from pneumo_core.errors import InputError
from pneumo_core.imaging import decode


def test_dicom_identifiers_stay_out_of_logs_and_warnings(caplog: pytest.LogCaptureFixture, recwarn) -> None:
    pixels = (np.add.outer(np.arange(128), np.arange(128)) * 8).astype(np.uint16)
    data = bytearray(make_dicom(pixels))
    data[140:150] = b"\xff" * 10  # damage a header so pydicom would complain
    with caplog.at_level(logging.DEBUG):
        with contextlib.suppress(InputError):
            decode(bytes(data))
        decode(make_dicom(pixels))
    text = caplog.text + " ".join(str(w.message) for w in recwarn)
    assert "SECRET-123" not in text and "Test^Patient" not in text


def _files_newer_than(folder: Path, since: float) -> list[Path]:
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if d not in (".venv", ".git", "__pycache__", ".pytest_cache", ".ruff_cache")]
        found += [Path(root) / f for f in files if (Path(root) / f).stat().st_mtime >= since]
    return found


def test_diagnose_upload_writes_nothing(
    use_tiny_registry: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PNEUMO_DATA", str(tmp_path / "absent"))
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    pixels = (np.add.outer(np.arange(256), np.arange(256)) * 8).astype(np.uint16)
    since = time.time()
    app = AppTest.from_file(str(ROOT / "app_pages" / "diagnose.py"), default_timeout=120).run()
    app.get("file_uploader")[0].set_value(("patient.dcm", make_dicom(pixels), "application/dicom"))
    app.run()
    assert not app.exception
    shown = " ".join(str(e.value) for e in (*app.markdown, *app.caption, *app.subheader, *app.error))
    assert "SECRET-123" not in shown and "Test^Patient" not in shown
    assert _files_newer_than(ROOT, since) == []
    assert _files_newer_than(tmp_path, since) == []

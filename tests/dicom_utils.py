"""Build small DICOM files in memory for tests (no real patient data anywhere)."""

from __future__ import annotations

import io

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid


def make_dicom(
    pixels: np.ndarray | None,
    *,
    photometric: str = "MONOCHROME2",
    modality: str = "DX",
    body_part: str | None = "CHEST",
    frames: int = 1,
    slope: float = 1.0,
    intercept: float = 0.0,
    window: tuple[float, float] | None = None,
    bits: int = 16,
) -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName = "Test^Patient"
    ds.PatientID = "SECRET-123"
    ds.Modality = modality
    if body_part:
        ds.BodyPartExamined = body_part
    ds.ViewPosition = "PA"
    if pixels is not None:
        dtype = np.uint16 if bits == 16 else np.uint8
        data = pixels.astype(dtype)
        if frames > 1:
            data = np.stack([data] * frames)
            ds.NumberOfFrames = frames
        ds.Rows, ds.Columns = pixels.shape
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = photometric
        ds.BitsAllocated = bits
        ds.BitsStored = bits
        ds.HighBit = bits - 1
        ds.PixelRepresentation = 0
        ds.RescaleSlope = slope
        ds.RescaleIntercept = intercept
        if window:
            ds.WindowCenter, ds.WindowWidth = window
        ds.PixelData = data.tobytes()
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def dicom_dataset(pixels: np.ndarray | None, **kwargs) -> Dataset:
    """``make_dicom``'s file read back as a pydicom Dataset, for a test to edit."""
    import pydicom

    return pydicom.dcmread(io.BytesIO(make_dicom(pixels, **kwargs)))


def dicom_bytes(dataset: Dataset) -> bytes:
    """An edited Dataset written back as a file's bytes (written as it is, not checked)."""
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=False)
    return buffer.getvalue()

"""Decoding and preprocessing of chest X-rays: NumPy, OpenCV, Pillow and pydicom, no TensorFlow.

Data contract:
- ``decode(source)`` -> ``DecodedImage`` whose ``pixels`` is a 2-D ``uint8`` grayscale array
  (H x W, 0 = black) at the file's resolution, or reduced by an integer factor for very large JPEGs.
- ``to_model_input(pixels, contract)`` -> ``float32`` array (S x S) in [0, 255], S the contract's
  ``input_size``: ``frame(normalized(pixels, contract), contract.frame_scale)``. The same function
  serves training, the CLI and the app.

Every failure on bad input is an ``InputError`` with a specific message.
"""

from __future__ import annotations

import io
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageOps

from .contract import ModelContract
from .errors import InputError

MAX_UPLOAD_MB = 50
"""One upload limit for the core, the CLI and the app: 50 MB, decimal (50,000,000 bytes).

``server.maxUploadSize`` in .streamlit/config.toml holds the same number. Streamlit's server reads
it as MiB and its browser side as decimal MB (MiB on Windows), so the core's decimal limit is the
one every path ends at: a file the browser lets through but the core refuses gets the core's
specific message, not a generic one."""
MAX_FILE_BYTES = MAX_UPLOAD_MB * 1_000_000
MAX_PIXELS = 60_000_000
"""Declared width x height above which a file is refused before decoding (decompression bombs)."""
MIN_SIDE = 64

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".dcm", ".dicom")

# Pillow's own bomb guard raises or warns at its limit; ours is checked first with a clearer message.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS


@dataclass
class DecodedImage:
    """A decoded image and the facts about it that are safe to show (never patient identifiers)."""

    pixels: np.ndarray
    format: str
    width: int
    height: int
    facts: dict[str, Any] = field(default_factory=dict)
    colorfulness: float = 0.0
    """Hasler-Suesstrunk colorfulness of the original (0 for gray images); radiographs are ~0."""


ImageSource = str | Path | bytes | bytearray | memoryview | np.ndarray


def decode(source: ImageSource) -> DecodedImage:
    """Decode a path, raw bytes or an array into 8-bit grayscale.

    Args:
        source: a file path, the file's bytes (JPEG, PNG or DICOM, recognised by content), or an
            array H x W, H x W x 3 (RGB) or H x W x 4 (RGBA) of any integer or float dtype.

    Raises:
        InputError: for anything that is not a readable image of a usable size.
    """
    if isinstance(source, np.ndarray):
        return _from_array(source)
    if isinstance(source, (str, Path)):
        data = _read_file(Path(source))
    elif isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    else:
        raise InputError("unsupported_input", f"Cannot read an image from a {type(source).__name__}.")
    return decode_bytes(data)


def _read_file(path: Path) -> bytes:
    if not path.exists():
        raise InputError("not_found", f"File not found: {path.name}.")
    if path.is_dir():
        raise InputError("is_directory", f"{path.name} is a folder, not an image file.")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise InputError("too_large", too_large_message(size))
    return path.read_bytes()


def too_large_message(size: int) -> str:
    return (
        f"The file is {size / 1_000_000:.1f} MB; the limit is {MAX_UPLOAD_MB} MB ({MAX_FILE_BYTES:,} bytes). "
        "Export the image at a lower resolution or as JPEG/PNG."
    )


def sniff_format(data: bytes) -> str | None:
    """Recognise JPEG, PNG or DICOM by content, whatever the file name says."""
    if data[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    if len(data) >= 132 and data[128:132] == b"DICM":
        return "DICOM"
    return None


def decode_bytes(data: bytes) -> DecodedImage:
    if len(data) == 0:
        raise InputError("empty", "The file is empty (0 bytes). Upload the image again.")
    if len(data) > MAX_FILE_BYTES:
        raise InputError("too_large", too_large_message(len(data)))
    kind = sniff_format(data)
    if kind == "DICOM":
        # pydicom's warnings quote element values, which may hold patient data: keep them out of logs.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _decode_dicom(data)
    if kind in ("JPEG", "PNG"):
        return _decode_raster(data, kind)
    raise InputError(
        "unsupported_format",
        "This file is not a JPEG, PNG or DICOM image (its content was not recognised). "
        "Export the X-ray as JPEG, PNG or DICOM.",
    )


def _decode_raster(data: bytes, kind: str) -> DecodedImage:
    corrupt = InputError("corrupt", f"The {kind} file is damaged or incomplete and cannot be read.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                mode = image.mode
                _check_dimensions(width, height)
                pixels = _decode_jpeg(image) if kind == "JPEG" else None
    except InputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputError("too_many_pixels", _too_many_pixels_message()) from None
    except Exception:
        raise corrupt from None
    bgr = False
    if pixels is None:
        # PNG through OpenCV: keeps 16-bit depth and alpha as stored.
        pixels = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
        bgr = True
    if pixels is None:
        raise corrupt
    gray = _to_gray_uint8(pixels, bgr=bgr)
    facts = {"format": kind, "mode": mode, "width": width, "height": height}
    color = colorfulness(pixels[:, :, 2::-1] if bgr and pixels.ndim == 3 else pixels)
    return DecodedImage(gray, kind, width, height, facts, color)


def _decode_jpeg(image: Image.Image) -> np.ndarray:
    """Decode a JPEG, in the DCT domain at 1/2, 1/4 or 1/8 scale when it is large.

    A 2000 px radiograph is read at ~500 px: the model needs a few hundred pixels, and the
    scaled IDCT averages like an antialiased resize.
    """
    scale = min(image.size) / REDUCED_DECODE_MIN_SIDE
    if scale >= 2:
        target_mode = "L" if image.mode == "L" else "RGB"
        image.draft(target_mode, (int(image.size[0] / scale), int(image.size[1] / scale)))
    image = ImageOps.exif_transpose(image)
    if image.mode not in ("L", "RGB"):
        image = image.convert("RGB")  # CMYK (Adobe-inverted too) and YCbCr
    return np.asarray(image)


def colorfulness(pixels: np.ndarray) -> float:
    """Hasler & Suesstrunk (2003) colorfulness of an RGB image on a <= 128 px thumbnail; 0 for gray."""
    if pixels.ndim != 3 or pixels.shape[2] < 3:
        return 0.0
    step = max(1, max(pixels.shape[:2]) // 128)
    thumb = pixels[::step, ::step, :3].astype(np.float32)
    if thumb.max() > 255:
        thumb *= 255.0 / float(thumb.max())
    r, g, b = thumb[..., 0], thumb[..., 1], thumb[..., 2]
    rg, yb = r - g, 0.5 * (r + g) - b
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


REDUCED_DECODE_MIN_SIDE = 512
"""Reduced JPEG decoding keeps at least this many pixels on the short side (>= 2x model input)."""


def _too_many_pixels_message() -> str:
    return (
        f"The image declares more than {MAX_PIXELS // 1_000_000} million pixels, far beyond any "
        "radiograph; it was refused without decoding. Export it at a normal resolution."
    )


def _check_dimensions(width: int, height: int) -> None:
    if width * height > MAX_PIXELS:
        raise InputError("too_many_pixels", _too_many_pixels_message())
    if min(width, height) < MIN_SIDE:
        raise InputError(
            "too_small",
            f"The image is {width}x{height} px; at least {MIN_SIDE} px on each side is needed "
            "to read a chest X-ray. Upload the original image, not a thumbnail.",
        )


def _from_array(array: np.ndarray) -> DecodedImage:
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
        raise InputError("bad_array", f"Expected an H x W or H x W x 1/3/4 array, got shape {array.shape}.")
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise InputError("bad_array", f"Expected a numeric image array, got dtype {array.dtype}.")
    height, width = array.shape[:2]
    _check_dimensions(width, height)
    gray = _to_gray_uint8(array, bgr=False)
    return DecodedImage(gray, "array", width, height, {"format": "array"}, colorfulness(array))


def _to_gray_uint8(pixels: np.ndarray, *, bgr: bool) -> np.ndarray:
    """Any 2-D/3-D integer or float image -> 2-D uint8, full range kept."""
    if pixels.ndim == 3:
        if pixels.shape[2] == 1:
            pixels = pixels[:, :, 0]
        else:
            color = pixels[:, :, :3]
            code = cv2.COLOR_BGR2GRAY if bgr else cv2.COLOR_RGB2GRAY
            if color.dtype not in (np.uint8, np.uint16, np.float32):
                color = color.astype(np.float32)
            pixels = cv2.cvtColor(np.ascontiguousarray(color), code)
    if pixels.dtype == np.uint8:
        return np.ascontiguousarray(pixels)
    return rescale_to_uint8(pixels)


def rescale_to_uint8(pixels: np.ndarray) -> np.ndarray:
    """Stretch the value range of a high bit-depth or float image linearly onto 0..255."""
    values = pixels.astype(np.float32)
    if not np.all(np.isfinite(values)):
        raise InputError("bad_values", "The image contains invalid (NaN or infinite) pixel values.")
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.zeros(values.shape, dtype=np.uint8)
    return np.round((values - low) * (255.0 / (high - low))).astype(np.uint8)


def _decode_dicom(data: bytes) -> DecodedImage:
    """pydicom parses elements lazily, so a damaged element can fail at any later access: every
    access stays inside this boundary, as in ``_decode_raster``."""
    import pydicom

    # pydicom's log messages quote element values, which may hold patient data; pydicom sets its
    # logger to WARNING when it is first imported, so this comes after the import.
    logging.getLogger("pydicom").setLevel(logging.ERROR)
    try:
        return _dicom_image(pydicom.dcmread(io.BytesIO(data), force=True))
    except InputError:
        raise
    except Exception:
        raise InputError("corrupt", "The DICOM file is damaged and cannot be read.") from None


def _dicom_image(dataset: Any) -> DecodedImage:
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    facts = dicom_facts(dataset)
    if "PixelData" not in dataset:
        raise InputError(
            "dicom_no_pixels",
            "This DICOM file holds no image (no pixel data): it may be a report or structured "
            "document. Export the image series instead.",
        )
    frames = int(getattr(dataset, "NumberOfFrames", 1) or 1)
    if frames > 1:
        raise InputError(
            "dicom_multiframe",
            f"This DICOM holds {frames} frames (a cine, tomosynthesis or volume series); a single "
            "frontal chest radiograph is needed. Export one frame.",
        )
    rows, columns = int(getattr(dataset, "Rows", 0) or 0), int(getattr(dataset, "Columns", 0) or 0)
    _check_dimensions(columns, rows)
    try:
        raw = dataset.pixel_array
    except Exception as exc:
        syntax = getattr(getattr(dataset, "file_meta", None), "TransferSyntaxUID", None)
        name = getattr(syntax, "name", "unknown")
        raise InputError(
            "dicom_pixels_unreadable",
            f"The DICOM pixel data cannot be decoded (transfer syntax: {name}; {type(exc).__name__}). "
            "Export it uncompressed or as JPEG/PNG.",
        ) from None
    color = 0.0
    if raw.ndim == 3 and raw.shape[-1] in (3, 4):
        gray = _to_gray_uint8(raw, bgr=False)
        color = colorfulness(raw)
    elif raw.ndim == 2:
        values = apply_modality_lut(raw, dataset)
        values = apply_voi_lut(values, dataset) if _has_voi(dataset) else values
        gray = rescale_to_uint8(np.asarray(values))
        if facts.get("photometric_interpretation") == "MONOCHROME1":
            gray = 255 - gray  # MONOCHROME1 stores air as white; the model expects air black
    else:
        raise InputError("dicom_shape", f"Unexpected DICOM pixel array shape {raw.shape}.")
    height, width = gray.shape
    return DecodedImage(gray, "DICOM", width, height, facts, color)


def _has_voi(dataset: Any) -> bool:
    return "VOILUTSequence" in dataset or "WindowCenter" in dataset


def dicom_facts(dataset: Any) -> dict[str, Any]:
    """Technical DICOM attributes that are safe to display; patient identifiers are never read."""
    keys = {
        "modality": "Modality",
        "body_part": "BodyPartExamined",
        "view_position": "ViewPosition",
        "photometric_interpretation": "PhotometricInterpretation",
        "rows": "Rows",
        "columns": "Columns",
        "bits_stored": "BitsStored",
    }
    facts: dict[str, Any] = {"format": "DICOM"}
    for name, keyword in keys.items():
        value = dataset.get(keyword, None)
        if value is not None and value != "":
            facts[name] = value if isinstance(value, int) else str(value)
    return facts


def to_model_input(pixels: np.ndarray, contract: ModelContract) -> np.ndarray:
    """Grayscale uint8 (H x W) -> float32 (S x S) in [0, 255], the model's input."""
    return frame(normalized(pixels, contract), contract.frame_scale)


def normalized(pixels: np.ndarray, contract: ModelContract) -> np.ndarray:
    """Grayscale uint8 (H x W) -> float32 (S x S): resized and intensity-normalized, not framed.

    Resizes without keeping the aspect ratio using Pillow's antialiased bicubic filter, exactly how
    the Kaggle 224 px copies were made, so full-size uploads look to the model like its training
    images; then applies the contract's intensity normalization.
    """
    if pixels.ndim != 2 or pixels.dtype != np.uint8:
        raise ValueError(f"expected 2-D uint8 pixels, got {pixels.shape} {pixels.dtype}")
    size = contract.input_size
    if pixels.shape != (size, size):
        pixels = np.asarray(Image.fromarray(pixels).resize((size, size), Image.Resampling.BICUBIC))
    if contract.normalization == "equalize_hist":
        pixels = cv2.equalizeHist(pixels)
    return pixels.astype(np.float32)


def frame(image: np.ndarray, scale: float) -> np.ndarray:
    """Shrink a square (S x S) or (S x S x 1) image by ``scale`` about its centre, black outside.

    The same bilinear zoom with zero fill that the training augmentation applies (``RandomZoom``).
    """
    if scale == 1.0:
        return image
    size = image.shape[0]
    centre = (size - 1) / 2
    matrix = np.array([[scale, 0, centre * (1 - scale)], [0, scale, centre * (1 - scale)]], dtype=np.float64)
    out = cv2.warpAffine(
        np.ascontiguousarray(image[..., 0] if image.ndim == 3 else image), matrix, (size, size),
        flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0,
    )  # fmt: skip
    return out[..., None] if image.ndim == 3 else out


def frame_box(scale: float, height: int, width: int) -> tuple[int, int, int, int]:
    """``(top, bottom, left, right)`` of the image inside an (height x width) map of the framed input."""
    dy, dx = (1 - scale) / 2 * height, (1 - scale) / 2 * width
    return round(dy), round(height - dy), round(dx), round(width - dx)


def fit_longer_side(pixels: np.ndarray, side: int) -> np.ndarray:
    """``pixels`` resized (area-averaged) so that the longer side is ``side``, aspect kept. OpenCV
    cannot resize float16 (a display heatmap's type): such arrays come back as float32."""
    if pixels.dtype == np.float16:
        pixels = pixels.astype(np.float32)
    height, width = pixels.shape[:2]
    scale = side / max(height, width)
    return cv2.resize(
        pixels, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA
    )


def load_for_model(source: ImageSource, contract: ModelContract) -> tuple[np.ndarray, DecodedImage]:
    """Decode ``source`` and prepare the model input; returns ``(model_input, decoded)``."""
    decoded = decode(source)
    return to_model_input(decoded.pixels, contract), decoded

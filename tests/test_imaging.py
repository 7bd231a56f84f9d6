"""Decoding and preprocessing: every encoding of the same radiograph gives the same model input."""

from __future__ import annotations

import contextlib
import io
import logging
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import encode
from dicom_utils import dicom_bytes, dicom_dataset, make_dicom
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from pneumo_core.contract import ModelContract
from pneumo_core.errors import InputError
from pneumo_core.imaging import MAX_FILE_BYTES, decode, frame, frame_box, sniff_format, to_model_input
from pneumo_core.render import overlay

CONTRACT = ModelContract(input_size=224)


@pytest.fixture(scope="module")
def radiograph(normal_image: Path) -> np.ndarray:
    return decode(normal_image).pixels


def model_input(source) -> np.ndarray:
    return to_model_input(decode(source).pixels, CONTRACT)


def test_decode_jpeg_path_gives_2d_uint8(normal_image: Path) -> None:
    decoded = decode(normal_image)
    assert decoded.pixels.dtype == np.uint8 and decoded.pixels.ndim == 2
    assert decoded.pixels.shape == (224, 224)
    assert decoded.format == "JPEG" and decoded.colorfulness < 3


def test_path_bytes_and_array_agree(normal_image: Path) -> None:
    from_path = decode(normal_image).pixels
    from_bytes = decode(normal_image.read_bytes()).pixels
    from_array = decode(from_path).pixels
    assert np.array_equal(from_path, from_bytes) and np.array_equal(from_path, from_array)


def test_16bit_png_matches_8bit(radiograph: np.ndarray) -> None:
    wide = radiograph.astype(np.uint16) * 257
    assert np.array_equal(model_input(encode(wide, "PNG")), model_input(encode(radiograph, "PNG")))


def test_rgba_and_rgb_png_match_gray(radiograph: np.ndarray) -> None:
    rgb = np.repeat(radiograph[:, :, None], 3, axis=2)
    rgba = np.dstack([rgb, np.full(radiograph.shape, 255, np.uint8)])
    gray = model_input(encode(radiograph, "PNG"))
    assert np.array_equal(model_input(encode(rgb, "PNG")), gray)
    assert np.array_equal(model_input(encode(rgba, "PNG")), gray)


def test_cmyk_jpeg_close_to_plain(radiograph: np.ndarray) -> None:
    cmyk = Image.fromarray(radiograph).convert("CMYK")
    buffer = io.BytesIO()
    cmyk.save(buffer, format="JPEG", quality=95)
    plain = model_input(encode(radiograph, "JPEG", quality=95))
    assert np.mean(np.abs(model_input(buffer.getvalue()) - plain)) < 6


def test_upper_case_extension(tmp_path: Path, normal_image: Path) -> None:
    target = tmp_path / "CHEST.JPEG"
    target.write_bytes(normal_image.read_bytes())
    assert np.array_equal(decode(target).pixels, decode(normal_image).pixels)


def test_large_image_reaches_model_like_pillow_resize(full_size_image: Path) -> None:
    """Reduced JPEG decoding of a full-size radiograph ~ Pillow's resize of the full image."""
    decoded = decode(full_size_image)
    assert max(decoded.width, decoded.height) > 1000
    assert max(decoded.pixels.shape) < max(decoded.width, decoded.height)  # decoded at reduced scale
    with Image.open(full_size_image) as img:
        reference = np.asarray(img.convert("L").resize((224, 224), Image.Resampling.BICUBIC))
    ours = to_model_input(decoded.pixels, ModelContract(input_size=224, normalization="none"))
    assert np.mean(np.abs(ours - reference)) < 3.0


def test_4000px_png(radiograph: np.ndarray) -> None:
    big = cv2.resize(radiograph, (4000, 4000), interpolation=cv2.INTER_CUBIC)
    small = model_input(encode(radiograph, "PNG"))
    assert np.mean(np.abs(model_input(encode(big, "PNG")) - small)) < 4


def test_model_input_contract(radiograph: np.ndarray) -> None:
    x = to_model_input(radiograph, ModelContract(input_size=96))
    assert x.shape == (96, 96) and x.dtype == np.float32
    assert x.min() >= 0 and x.max() <= 255


def test_equalization_removes_contrast_changes(radiograph: np.ndarray) -> None:
    darker = np.clip(radiograph.astype(np.float32) * 0.7 + 20, 0, 255).astype(np.uint8)
    diff = np.abs(to_model_input(darker, CONTRACT) - to_model_input(radiograph, CONTRACT))
    assert diff.mean() < 4


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "empty"),
        (b"hello, this is text", "unsupported_format"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 50, "corrupt"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 40, "corrupt"),
    ],
)
def test_bad_bytes_get_specific_errors(data: bytes, code: str) -> None:
    with pytest.raises(InputError) as info:
        decode(data)
    assert info.value.code == code and info.value.message


def test_truncated_jpeg(normal_image: Path) -> None:
    data = normal_image.read_bytes()
    with pytest.raises(InputError) as info:
        decode(data[: len(data) // 3])
    assert info.value.code == "corrupt"


def test_tiny_image_rejected(radiograph: np.ndarray) -> None:
    with pytest.raises(InputError) as info:
        decode(encode(radiograph[:40, :40], "PNG"))
    assert info.value.code == "too_small"


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 100)) + chunk(b"IEND", b"")
    )


def test_decompression_bomb_refused_without_decoding() -> None:
    with pytest.raises(InputError) as info:
        decode(_png_header_only(100_000, 100_000))
    assert info.value.code == "too_many_pixels"


def test_file_over_upload_limit(tmp_path: Path) -> None:
    big = tmp_path / "big.png"
    with big.open("wb") as handle:
        handle.truncate(MAX_FILE_BYTES + 1)
    with pytest.raises(InputError) as info:
        decode(big)
    assert info.value.code == "too_large" and "MB" in info.value.message


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        decode(tmp_path / "nope.jpeg")
    with pytest.raises(InputError, match="folder"):
        decode(tmp_path)


def test_bad_arrays() -> None:
    with pytest.raises(InputError):
        decode(np.zeros((10, 10, 10, 3)))
    with pytest.raises(InputError):
        decode(np.full((100, 100), np.nan, np.float32))


# --- DICOM -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def radiograph_12bit(radiograph: np.ndarray) -> np.ndarray:
    return radiograph.astype(np.uint16) * 16


def test_dicom_monochrome2_matches_png(radiograph: np.ndarray, radiograph_12bit: np.ndarray) -> None:
    decoded = decode(make_dicom(radiograph_12bit))
    assert sniff_format(make_dicom(radiograph_12bit)) == "DICOM"
    # DICOM values are stretched to the full 8-bit range; the equalized model input is unchanged.
    assert np.abs(to_model_input(decoded.pixels, CONTRACT) - to_model_input(radiograph, CONTRACT)).mean() < 2
    assert decoded.facts["modality"] == "DX" and decoded.facts["view_position"] == "PA"


def test_dicom_monochrome1_is_inverted(radiograph: np.ndarray, radiograph_12bit: np.ndarray) -> None:
    inverted = int(radiograph_12bit.max()) - radiograph_12bit
    decoded = decode(make_dicom(inverted, photometric="MONOCHROME1"))
    plain = decode(make_dicom(radiograph_12bit))
    assert np.abs(decoded.pixels.astype(int) - plain.pixels).max() <= 1


def test_dicom_rescale_and_window(radiograph: np.ndarray, radiograph_12bit: np.ndarray) -> None:
    decoded = decode(make_dicom(radiograph_12bit, slope=2.0, intercept=-1000, window=(3080.0, 8200.0)))
    assert np.corrcoef(decoded.pixels.ravel(), radiograph.ravel())[0, 1] > 0.99


def test_dicom_never_exposes_patient_identifiers(radiograph_12bit: np.ndarray) -> None:
    facts = decode(make_dicom(radiograph_12bit)).facts
    text = repr(facts)
    assert "SECRET-123" not in text and "Test^Patient" not in text


def test_dicom_without_extension(tmp_path: Path, radiograph_12bit: np.ndarray) -> None:
    target = tmp_path / "IMG0001"
    target.write_bytes(make_dicom(radiograph_12bit))
    assert decode(target).format == "DICOM"


def test_dicom_without_pixels() -> None:
    with pytest.raises(InputError) as info:
        decode(make_dicom(None))
    assert info.value.code == "dicom_no_pixels"


def test_dicom_with_a_damaged_element_is_refused(radiograph_12bit: np.ndarray) -> None:
    """pydicom parses elements lazily: a damaged one (here ViewPosition's VR turned into the unknown
    'ES', a case the fuzz test found) fails on first access, long after the file was read."""
    data = make_dicom(radiograph_12bit)
    view_position = b"\x18\x00\x01\x51CS"  # tag (0018,5101), explicit VR little endian
    assert data.count(view_position) == 1
    with pytest.raises(InputError) as info:
        decode(data.replace(view_position, b"\x18\x00\x01\x51ES"))
    assert (info.value.code, info.value.message) == ("corrupt", "The DICOM file is damaged and cannot be read.")


def test_dicom_multiframe(radiograph_12bit: np.ndarray) -> None:
    with pytest.raises(InputError) as info:
        decode(make_dicom(radiograph_12bit, frames=3))
    assert info.value.code == "dicom_multiframe" and "3 frames" in info.value.message


@pytest.mark.parametrize("syntax", ["RLELossless", "JPEG2000Lossless"])
def test_compressed_dicom_matches_uncompressed(radiograph_12bit: np.ndarray, syntax: str) -> None:
    import pydicom
    import pydicom.uid

    dataset = dicom_dataset(radiograph_12bit)
    dataset.compress(getattr(pydicom.uid, syntax))
    assert np.array_equal(decode(dicom_bytes(dataset)).pixels, decode(make_dicom(radiograph_12bit)).pixels)


def test_jpeg_baseline_dicom(radiograph: np.ndarray) -> None:
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGBaseline8Bit

    dataset = dicom_dataset(radiograph, bits=8)
    dataset.PixelData = encapsulate([encode(radiograph, "JPEG", quality=95)])
    dataset.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    decoded = decode(dicom_bytes(dataset))
    assert np.abs(to_model_input(decoded.pixels, CONTRACT) - to_model_input(radiograph, CONTRACT)).mean() < 3


def test_overlay_shape_and_range(radiograph: np.ndarray) -> None:
    heat = np.zeros((14, 14), np.float32)
    heat[5:9, 5:9] = 1.0
    out = overlay(radiograph, heat, 0.5)
    assert out.shape == (*radiograph.shape, 3) and out.dtype == np.uint8
    center, corner = out[112, 112], out[5, 5]
    assert center[0] > corner[0]  # hot region is red-shifted


# --- fuzzing: no exception escapes except InputError ------------------------------------------


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096))
def test_fuzz_random_bytes(data: bytes) -> None:
    with contextlib.suppress(InputError):
        decode(data)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fuzz_mutated_real_files(data: st.DataObject) -> None:
    base = {
        "jpeg": _FUZZ_SEEDS["jpeg"],
        "png": _FUZZ_SEEDS["png"],
        "dicom": _FUZZ_SEEDS["dicom"],
    }[data.draw(st.sampled_from(["jpeg", "png", "dicom"]))]
    mutated = bytearray(base)
    for _ in range(data.draw(st.integers(1, 20))):
        position = data.draw(st.integers(0, len(mutated) - 1))
        mutated[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(mutated)))
    with contextlib.suppress(InputError):
        decode(bytes(mutated[:cut]))


_gradient = (np.add.outer(np.arange(96), np.arange(96)) % 256).astype(np.uint8)
_FUZZ_SEEDS = {
    "jpeg": encode(_gradient, "JPEG"),
    "png": encode(_gradient, "PNG"),
    "dicom": make_dicom(_gradient.astype(np.uint16) * 16),
}


def test_frame_shrinks_the_image_about_its_centre_inside_a_black_border() -> None:
    image = np.full((100, 100), 200.0, dtype=np.float32)
    assert frame(image, 1.0) is image
    framed = frame(image, 0.8)
    assert framed.shape == (100, 100)
    top, bottom, left, right = frame_box(0.8, 100, 100)
    assert (top, bottom, left, right) == (10, 90, 10, 90)
    assert framed[:8].max() == 0 and framed[:, 92:].max() == 0  # black frame
    assert np.allclose(framed[12:88, 12:88], 200.0)  # the image, shrunk, inside it
    assert frame(image[:, :, None], 0.8).shape == (100, 100, 1)


def test_model_input_is_framed_as_the_contract_says(radiograph: np.ndarray) -> None:
    plain = to_model_input(radiograph, CONTRACT)
    framed = to_model_input(radiograph, ModelContract(input_size=224, frame_scale=0.9))
    assert np.array_equal(framed, frame(plain, 0.9))
    with pytest.raises(ValueError, match="frame_scale"):
        ModelContract(frame_scale=0.2)


def test_the_decoding_limits_are_the_documented_ones() -> None:
    """Pinned as numbers, not read back from the constants: raising a limit must fail a test."""
    from pneumo_core.imaging import MAX_PIXELS, MAX_UPLOAD_MB

    assert MAX_UPLOAD_MB == 50 and MAX_FILE_BYTES == 50_000_000 and MAX_PIXELS == 60_000_000

    with pytest.raises(InputError) as just_over:
        decode(_png_header_only(7746, 7746))  # 60.0 M pixels + a little: 1.0001x the limit
    assert just_over.value.code == "too_many_pixels"
    with pytest.raises(InputError) as under:
        decode(_png_header_only(7000, 7000))  # 49 M pixels: past the pixel check, then fails as damaged
    assert under.value.code != "too_many_pixels"
    with pytest.raises(InputError) as big_file:
        decode(b"\xff\xd8\xff" + b"\x00" * (50_000_000 - 2))  # one byte over 50 MB
    assert big_file.value.code == "too_large"
    assert "The file is 50.0 MB; the limit is 50 MB (50,000,000 bytes)." in big_file.value.message
    with pytest.raises(InputError) as at_limit:
        decode(b"x" * 50_000_000)  # exactly 50 MB: past the size check, then not an image (fails fast)
    assert at_limit.value.code == "unsupported_format"


# --- every refusal with its code and the exact words a user reads -------------------------------


def _refusal(source) -> tuple[str, str]:
    with pytest.raises(InputError) as info:
        decode(source)
    return info.value.code, info.value.message


def test_each_refusal_says_exactly_what_is_wrong(tmp_path: Path) -> None:
    (tmp_path / "scans").mkdir()
    expected = {
        "list": (["a"], "unsupported_input", "Cannot read an image from a list."),
        "missing": (tmp_path / "gone.png", "not_found", "File not found: gone.png."),
        "folder": (tmp_path / "scans", "is_directory", "scans is a folder, not an image file."),
        "empty": (b"", "empty", "The file is empty (0 bytes). Upload the image again."),
        "text": (
            b"hello",
            "unsupported_format",
            "This file is not a JPEG, PNG or DICOM image (its content was not recognised). "
            "Export the X-ray as JPEG, PNG or DICOM.",
        ),
        "png": (b"\x89PNG\r\n\x1a\n" + b"\x00" * 50, "corrupt", "The PNG file is damaged or incomplete and cannot be read."),
        "bomb": (
            _png_header_only(8000, 8000),
            "too_many_pixels",
            "The image declares more than 60 million pixels, far beyond any radiograph; it was refused without "
            "decoding. Export it at a normal resolution.",
        ),
        "thumbnail": (
            np.zeros((63, 200), np.uint8),
            "too_small",
            "The image is 200x63 px; at least 64 px on each side is needed to read a chest X-ray. Upload the "
            "original image, not a thumbnail.",
        ),
        "4-D": (np.zeros((2, 64, 64, 1)), "bad_array", "Expected an H x W or H x W x 1/3/4 array, got shape (2, 64, 64, 1)."),
        "2 channels": (np.zeros((64, 64, 2)), "bad_array", "Expected an H x W or H x W x 1/3/4 array, got shape (64, 64, 2)."),
        "strings": (np.full((64, 64), "a"), "bad_array", "Expected a numeric image array, got dtype <U1."),
        "NaN": (np.full((64, 64), np.nan), "bad_values", "The image contains invalid (NaN or infinite) pixel values."),
    }  # fmt: skip
    for name, (source, code, message) in expected.items():
        assert _refusal(source) == (code, message), name


def test_a_file_of_exactly_the_limit_is_read_and_one_byte_more_is_not(tmp_path: Path) -> None:
    at_limit = tmp_path / "at.jpeg"
    with at_limit.open("wb") as handle:
        handle.write(b"text")
        handle.truncate(50_000_000)
    assert _refusal(at_limit)[0] == "unsupported_format"  # read, then found not to be an image
    with at_limit.open("ab") as handle:
        handle.write(b"\x00")
    assert _refusal(at_limit) == (
        "too_large",
        "The file is 50.0 MB; the limit is 50 MB (50,000,000 bytes). Export the image at a lower resolution or "
        "as JPEG/PNG.",
    )


def test_what_a_decoded_image_says_about_itself(radiograph: np.ndarray) -> None:
    from pneumo_core.imaging import DecodedImage

    bare = DecodedImage(radiograph, "array", 10, 10)
    assert bare.facts == {} and bare.colorfulness == 0.0
    png = decode(encode(radiograph, "PNG"))
    assert (png.format, png.width, png.height) == ("PNG", radiograph.shape[1], radiograph.shape[0])
    assert png.facts == {"format": "PNG", "mode": "L", "width": radiograph.shape[1], "height": radiograph.shape[0]}
    assert png.colorfulness == 0.0
    smallest = decode(np.tile(np.arange(64, dtype=np.uint8), (64, 1)))  # 64 px on each side is enough
    assert smallest.facts == {"format": "array"} and smallest.pixels.shape == (64, 64)


def test_colorfulness_by_hand() -> None:
    from pneumo_core.imaging import colorfulness

    assert colorfulness(np.full((8, 8), 90, np.uint8)) == 0.0 and colorfulness(np.full((8, 8, 3), 90)) == 0.0
    red = np.zeros((8, 8, 3), np.uint8)
    red[..., 0] = 200  # rg = 200 and yb = 100 everywhere: no spread, 0.3 x the length of the mean
    assert colorfulness(red) == pytest.approx(0.3 * np.hypot(200, 100))
    assert colorfulness(red.astype(np.uint16) * 257) == pytest.approx(
        0.3 * np.hypot(255, 127.5), rel=1e-5
    )  # 16-bit: max read as 255
    halves = np.zeros((8, 8, 3), np.uint8)
    halves[:, :4, 0] = 200  # half red, half black: rg and yb spread with standard deviation 100 and 50
    assert colorfulness(halves) == pytest.approx(np.hypot(100, 50) + 0.3 * np.hypot(100, 50))


def test_high_bit_depth_and_float_images_are_stretched_linearly() -> None:
    from pneumo_core.imaging import rescale_to_uint8

    np.testing.assert_array_equal(rescale_to_uint8(np.array([0, 1000, 4000])), [0, 64, 255])
    np.testing.assert_array_equal(rescale_to_uint8(np.array([-1.0, 0.0, 1.0])), [0, 128, 255])
    np.testing.assert_array_equal(rescale_to_uint8(np.full(3, 7.0)), [0, 0, 0])
    one_channel = np.tile(np.arange(64, dtype=np.uint16)[None, :, None] * 1000, (64, 1, 1))
    np.testing.assert_array_equal(decode(one_channel).pixels[0, :3], [0, 4, 8])


def test_colour_files_are_read_in_rgb_order(tmp_path: Path) -> None:
    """OpenCV reads PNG as BGR and Pillow reads JPEG as RGB: either way red is red."""
    from pneumo_core.imaging import colorfulness

    red = np.zeros((96, 96, 3), np.uint8)
    red[..., 0] = 200
    for kind in ("PNG", "JPEG"):
        buffer = io.BytesIO()
        Image.fromarray(red).save(buffer, format=kind, quality=100)
        decoded = decode(buffer.getvalue())
        assert abs(int(decoded.pixels[48, 48]) - round(0.299 * 200)) <= 2, kind  # luma of red, not of blue
        assert decoded.colorfulness == pytest.approx(colorfulness(red), rel=0.05), kind
        assert decoded.facts["mode"] == "RGB"


def test_colorfulness_samples_a_thumbnail_of_about_128_px() -> None:
    from pneumo_core.imaging import colorfulness

    stripes = np.zeros((256, 256, 3), np.uint8)
    stripes[:, ::2, 0] = 200  # red and black columns in turn: every other pixel of a 256 px image is read
    assert colorfulness(stripes) == pytest.approx(0.3 * np.hypot(200, 100))  # only the red columns
    narrow = stripes[:200, :200]  # under 256 px: every pixel is read, red and black alike
    assert colorfulness(narrow) == pytest.approx(1.3 * np.hypot(100, 50))


def test_large_jpegs_are_decoded_at_a_reduced_scale_that_keeps_512_px(tmp_path: Path) -> None:
    gradient = np.tile(np.linspace(0, 255, 1024, dtype=np.uint8), (2048, 1))  # 1024 wide, 2048 tall
    buffer = io.BytesIO()
    Image.fromarray(gradient).save(buffer, format="JPEG", quality=95)
    decoded = decode(buffer.getvalue())
    assert decoded.pixels.shape == (1024, 512)  # read at 1/2: the short side stays >= 512
    assert (decoded.width, decoded.height) == (1024, 2048) and decoded.facts["mode"] == "L"
    just_under = np.ascontiguousarray(gradient[:1022, :1022])  # short side below 2 x 512: read whole
    buffer = io.BytesIO()
    Image.fromarray(just_under).save(buffer, format="JPEG", quality=95)
    assert decode(buffer.getvalue()).pixels.shape == (1022, 1022)


def test_exactly_the_pixel_limit_is_not_a_bomb() -> None:
    with pytest.raises(InputError) as info:
        decode(_png_header_only(8000, 7500))  # 60,000,000 pixels: past the limit check, then damaged
    assert info.value.code != "too_many_pixels"


# --- behaviours the mutation benchmark found unpinned (benchmarks/mutation.py) -------------------


def test_the_file_names_read_as_images() -> None:
    from pneumo_core.inputs import is_image_name

    for name in ("a.jpg", "a.JPEG", "a.png", "a.dcm", "a.DICOM", "IMG0001"):
        assert is_image_name(name), name
    for name in ("a.gif", "a.txt", ".hidden.png"):
        assert not is_image_name(name), name


def test_pydicom_logs_only_errors_after_the_first_dicom(radiograph_12bit: np.ndarray, tmp_path: Path) -> None:
    """pydicom's warnings quote element values, which may hold patient data. pydicom resets its
    logger to WARNING when first imported, which in the app happens at the first DICOM decoded: a
    fresh process shows the order a user's does."""
    import subprocess
    import sys

    (tmp_path / "scan.dcm").write_bytes(make_dicom(radiograph_12bit[:64, :64]))
    script = (
        "import logging, sys; from pneumo_core.imaging import decode; decode(sys.argv[1]); "
        "print(logging.getLogger('pydicom').level)"
    )
    run = subprocess.run([sys.executable, "-c", script, str(tmp_path / "scan.dcm")], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == str(logging.ERROR)


def test_sizes_and_signatures_at_their_edges() -> None:
    from pneumo_core.imaging import too_large_message

    assert too_large_message(50_050_010).startswith("The file is 50.1 MB;")  # decimal megabytes
    assert sniff_format(b"\x00" * 128 + b"DICM") == "DICOM"  # the shortest DICOM signature
    assert sniff_format(b"\x00" * 128 + b"DICX" + b"\x00" * 100) is None
    assert _refusal(b"plain text, long enough to reach a DICOM preamble. " * 5)[0] == "unsupported_format"


def test_the_pixel_limit_guards_dicom_and_arrays_too(radiograph_12bit: np.ndarray) -> None:
    """Pillow has its own bomb guard for JPEG and PNG; DICOM headers and arrays have only ours."""

    dataset = dicom_dataset(radiograph_12bit)
    dataset.Rows, dataset.Columns = 8000, 7501  # declared, not stored: refused before decoding
    assert _refusal(dicom_bytes(dataset)) == (
        "too_many_pixels",
        "The image declares more than 60 million pixels, far beyond any radiograph; it was refused without "
        "decoding. Export it at a normal resolution.",
    )
    assert _refusal(np.zeros((7746, 7746), np.uint8))[0] == "too_many_pixels"


def test_dicom_refusals_say_exactly_what_is_wrong(radiograph_12bit: np.ndarray) -> None:

    assert _refusal(make_dicom(None)) == (
        "dicom_no_pixels",
        "This DICOM file holds no image (no pixel data): it may be a report or structured document. Export "
        "the image series instead.",
    )
    assert _refusal(make_dicom(radiograph_12bit, frames=2)) == (
        "dicom_multiframe",
        "This DICOM holds 2 frames (a cine, tomosynthesis or volume series); a single frontal chest radiograph "
        "is needed. Export one frame.",
    )
    dataset = dicom_dataset(radiograph_12bit)
    dataset.PixelData = dataset.PixelData[:100]  # far fewer bytes than Rows x Columns declare
    code, message = _refusal(dicom_bytes(dataset))
    assert code == "dicom_pixels_unreadable"
    assert message.startswith("The DICOM pixel data cannot be decoded (transfer syntax: Explicit VR Little Endian;")
    assert message.endswith("Export it uncompressed or as JPEG/PNG.")
    dataset = dicom_dataset(radiograph_12bit)
    dataset.NumberOfFrames = 0  # a malformed count is read as one frame, not as many
    assert decode(dicom_bytes(dataset)).pixels.shape == radiograph_12bit.shape


def test_colour_arrays_are_read_as_rgb_in_any_dtype() -> None:
    red, blue = np.zeros((64, 64, 3), np.uint8), np.zeros((64, 64, 3), np.uint8)
    red[..., 0], blue[..., 2] = 200, 200
    assert decode(red).pixels[0, 0] == round(0.299 * 200) and decode(blue).pixels[0, 0] == round(0.114 * 200)
    assert decode(red).format == "array"
    both = np.concatenate([red, blue], axis=1)  # red is the brighter gray, stretched to 255; blue to 0
    for dtype in (np.float64, np.int32):
        pixels = decode(both.astype(dtype)).pixels
        assert (pixels[0, 0], pixels[0, -1]) == (255, 0), dtype
    assert _refusal(np.zeros((64, 64, 5)))[0] == "bad_array"


def test_colorfulness_ignores_alpha_and_reads_green_as_green(tmp_path: Path) -> None:
    from pneumo_core.imaging import colorfulness

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)
    rgba = np.dstack([rgb, np.full((96, 96), 255, np.uint8)])
    assert decode(encode(rgba, "PNG")).colorfulness == pytest.approx(colorfulness(rgb))
    deep = rgb.astype(np.uint16) * 100  # 16-bit, colour at most 25,500 under an opaque alpha of 65,535
    cv2.imwrite(str(tmp_path / "deep.png"), np.dstack([deep[..., ::-1], np.full((96, 96), 65535, np.uint16)]))
    assert decode(tmp_path / "deep.png").colorfulness == pytest.approx(colorfulness(rgb), rel=1e-4)
    green = np.zeros((8, 8, 3), np.uint8)
    green[..., 1] = 200  # rg = -200, yb = 100
    assert colorfulness(green) == pytest.approx(0.3 * np.hypot(200, 100))
    top = np.zeros((8, 8, 3), np.uint16)
    top[..., 0] = 256  # a maximum just over 255 is scaled to 255
    assert colorfulness(top) == pytest.approx(0.3 * np.hypot(255, 127.5))


def test_a_large_colour_jpeg_keeps_its_colour() -> None:
    """Large JPEGs are decoded at a reduced scale; the colour must survive it, or a photograph would
    slip past the gate's colour rule."""
    from pneumo_core.imaging import colorfulness

    photo = np.zeros((1200, 1200, 3), np.uint8)
    photo[:, :600] = (200, 40, 40)
    photo[:, 600:] = (40, 160, 60)
    decoded = decode(encode(photo, "JPEG", quality=95))
    assert decoded.pixels.shape == (600, 600) and decoded.facts["mode"] == "RGB"
    assert decoded.colorfulness == pytest.approx(colorfulness(photo), rel=0.05)


def test_a_colour_dicom_is_read_as_luma_and_keeps_its_colour(radiograph_12bit: np.ndarray) -> None:

    from pneumo_core.imaging import colorfulness

    rgb = np.zeros((64, 64, 3), np.uint8)
    rgb[:, :32], rgb[:, 32:] = (200, 40, 40), (40, 160, 60)
    dataset = dicom_dataset(radiograph_12bit[:64, :64])
    dataset.SamplesPerPixel, dataset.PhotometricInterpretation, dataset.PlanarConfiguration = 3, "RGB", 0
    dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit = 8, 8, 7
    dataset.PixelData = rgb.tobytes()
    decoded = decode(dicom_bytes(dataset))
    assert decoded.pixels.shape == (64, 64)
    assert (decoded.pixels[0, 0], decoded.pixels[0, 40]) == (88, 113)  # luma of the red and the green half
    assert decoded.colorfulness == pytest.approx(colorfulness(rgb))
    assert decode(make_dicom(radiograph_12bit)).colorfulness == 0.0  # a grayscale DICOM has none


def test_dicom_windowing_and_voi_luts_are_applied(radiograph_12bit: np.ndarray) -> None:
    """A narrow window clips most of the image to black and white; a VOI LUT maps values through
    its table (here one that inverts); without either the values are only stretched."""
    from pydicom.dataset import Dataset

    plain = decode(make_dicom(radiograph_12bit)).pixels
    assert ((plain == 0) | (plain == 255)).mean() < 0.05
    centre = float(np.median(radiograph_12bit))
    narrow = decode(make_dicom(radiograph_12bit, window=(centre, 64.0))).pixels
    assert ((narrow == 0) | (narrow == 255)).mean() > 0.8
    dataset = dicom_dataset(radiograph_12bit)
    lut = Dataset()
    lut.LUTDescriptor = [4096, 0, 16]
    lut.LUTData = np.arange(4095, -1, -1, dtype=np.uint16).tobytes()
    dataset.VOILUTSequence = [lut]
    inverted = decode(dicom_bytes(dataset)).pixels
    assert np.abs(inverted.astype(int) - (255 - plain)).max() <= 1


def test_what_a_dicom_says_about_itself(radiograph_12bit: np.ndarray) -> None:

    rows, columns = radiograph_12bit.shape
    assert decode(make_dicom(radiograph_12bit)).facts == {
        "format": "DICOM", "modality": "DX", "body_part": "CHEST", "view_position": "PA",
        "photometric_interpretation": "MONOCHROME2", "rows": rows, "columns": columns, "bits_stored": 16,
    }  # fmt: skip
    dataset = dicom_dataset(radiograph_12bit)
    dataset.BodyPartExamined = ""  # empty fields are left out
    assert "body_part" not in decode(dicom_bytes(dataset)).facts
    assert decode(make_dicom(radiograph_12bit)).format == "DICOM"
    dataset = dicom_dataset(radiograph_12bit)
    dataset.PixelData = dataset.PixelData[:100]
    del dataset.file_meta.TransferSyntaxUID  # undecodable, and no transfer syntax to name
    code, message = _refusal(dicom_bytes(dataset))
    assert code == "dicom_pixels_unreadable" and "(transfer syntax: unknown;" in message


def test_model_input_needs_2d_uint8_and_frames_about_the_exact_centre(radiograph: np.ndarray) -> None:
    from pneumo_core.imaging import load_for_model, normalized

    with pytest.raises(ValueError, match=r"^expected 2-D uint8 pixels, got \(8, 8\) float32$"):
        normalized(np.zeros((8, 8), np.float32), CONTRACT)
    with pytest.raises(ValueError, match="expected 2-D uint8"):
        normalized(np.zeros((8, 8, 3), np.uint8), CONTRACT)
    symmetric = np.zeros((64, 64), np.float32)
    symmetric[16:48, 16:48] = 200.0
    framed = frame(symmetric, 0.9)
    np.testing.assert_allclose(framed, framed[::-1, ::-1], atol=1e-4)  # shrunk about the centre, not beside it
    model_input, decoded = load_for_model(radiograph, CONTRACT)
    assert decoded.format == "array" and np.array_equal(model_input, to_model_input(radiograph, CONTRACT))


def test_fit_longer_side_keeps_the_aspect_and_reads_float16() -> None:
    from pneumo_core.imaging import fit_longer_side

    assert fit_longer_side(np.zeros((100, 50), np.uint8), 20).shape == (20, 10)
    assert fit_longer_side(np.zeros((50, 100), np.uint8), 200).shape == (100, 200)
    assert fit_longer_side(np.zeros((1000, 1), np.uint8), 100).shape == (100, 1)  # never under 1 px
    assert fit_longer_side(np.zeros((1, 1000), np.uint8), 100).shape == (1, 100)
    half = fit_longer_side(np.full((8, 4), 0.5, np.float16), 4)
    assert half.dtype == np.float32 and half.shape == (4, 2) and np.all(half == 0.5)
    assert fit_longer_side(np.full((8, 4), 7, np.uint8), 4).dtype == np.uint8
    assert fit_longer_side(np.zeros((100, 50, 3), np.uint8), 20).shape == (20, 10, 3)  # colour images too


def test_colorfulness_of_an_rgba_array_ignores_alpha() -> None:
    from pneumo_core.imaging import colorfulness

    rgb = np.random.default_rng(1).integers(0, 256, (96, 96, 3)).astype(np.uint16) * 100
    rgba = np.dstack([rgb, np.full((96, 96), 65535, np.uint16)])  # alpha above every colour value
    assert decode(rgba).colorfulness == pytest.approx(colorfulness(rgb))

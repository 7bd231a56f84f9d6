"""What a person reads: the disclaimer, percentages, the Grad-CAM overlay and the one-page report.

Pure NumPy/OpenCV; the app, the CLI, the model card and the evaluation gallery all draw through it.
"""

from __future__ import annotations

import csv
import time
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from .imaging import fit_longer_side

if TYPE_CHECKING:  # types only: the model card renders through here without loading the classifier
    from .classifier import Analysis, Prediction

DISCLAIMER = "A demo and teaching tool, not a medical device."
DISCLAIMER_LONG = f"{DISCLAIMER} Do not use it for decisions about real patients."
SCREEN_JPEG_QUALITY = 90
"""JPEG quality of the images the app shows (about a third of the bytes of quality 100, which
Streamlit would use for an array)."""


def count(n: int, noun: str) -> str:
    """``count(1, "file")`` -> ``"1 file"``, ``count(3, "file")`` -> ``"3 files"``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def percent(fraction: float, decimals: int = 1) -> str:
    """``0.1234`` -> ``"12.3%"``."""
    return f"{100 * fraction:.{decimals}f}%"


def probability_percent(probability: float) -> str:
    """A probability as a percentage that never reads as certainty: 0.9996 is ">99.9%", not "100.0%"."""
    if probability >= 0.9995:
        return ">99.9%"
    if probability < 0.0005:
        return "<0.1%"
    return percent(probability)


def probability_percent_value(probability: float) -> float:
    """The same as a number for tables that sort: one decimal, clipped to [0.1, 99.9]."""
    return min(99.9, max(0.1, round(100 * probability, 1)))


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def write_csv(handle: Any, columns: list[str], rows: list[dict[str, Any]]) -> None:
    """CSV rows that no spreadsheet runs as formulas: a text cell starting with ``= + - @``, tab or
    carriage return gets a leading ``'`` (OWASP's CSV-injection advice). Numbers are left alone."""
    writer = csv.DictWriter(handle, fieldnames=columns)
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {k: f"'{v}" if isinstance(v, str) and v.startswith(FORMULA_STARTS) else v for k, v in row.items()}
        )


def overlay(pixels: np.ndarray, heatmap: np.ndarray, opacity: float = 0.4) -> np.ndarray:
    """Blend a [0, 1] heatmap (any size) over a grayscale image; returns uint8 RGB (H x W x 3)."""
    height, width = pixels.shape[:2]
    heatmap = heatmap.astype(np.float32, copy=False)  # float16 arithmetic is emulated in software: slow
    if heatmap.shape != (height, width):
        heatmap = cv2.resize(heatmap, (width, height), interpolation=cv2.INTER_LINEAR)
    colored = cv2.applyColorMap(np.uint8(np.clip(heatmap, 0, 1) * 255), cv2.COLORMAP_JET)
    colored = cv2.cvtColor(colored, cv2.COLOR_BGR2RGB)
    base = cv2.cvtColor(pixels, cv2.COLOR_GRAY2RGB)
    opacity = float(np.clip(opacity, 0.0, 1.0))
    return cv2.addWeighted(base, 1.0 - opacity, colored, opacity, 0.0)


def screen_jpegs(analysis: Analysis, opacity: float = 0.4) -> tuple[bytes, bytes]:
    """The image as read and its Grad-CAM overlay, as JPEG for the screen (at the analysis' size;
    quality ``SCREEN_JPEG_QUALITY``). The report stays lossless PNG."""
    images = (
        analysis.pixels,
        cv2.cvtColor(overlay(analysis.pixels, analysis.heatmap, opacity), cv2.COLOR_RGB2BGR),
    )
    return tuple(_encode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, SCREEN_JPEG_QUALITY]) for image in images)


def _encode(extension: str, image: np.ndarray, params: list[int] | None = None) -> bytes:
    """``image`` (grayscale or BGR) encoded by OpenCV."""
    ok, encoded = cv2.imencode(extension, image, params or [])
    if not ok:
        raise RuntimeError(f"{extension[1:].upper()} encoding failed")
    return encoded.tobytes()


def _prevalence(prediction: Prediction) -> str:
    return f"   Prevalence assumed {percent(prediction.prevalence, 0)}" if prediction.prevalence else ""


def report_lines(analysis: Analysis, *, model_name: str, source_name: str, generated: str | None = None) -> list[str]:
    """The report's text, line by line (``generated``: the time stamp, now by default)."""
    p = analysis.prediction
    return [
        f"Verdict: {p.label}   P(pneumonia) = {probability_percent(p.probability_pneumonia)}   ({p.band})",
        f"Operating threshold {percent(p.operating_threshold)}{_prevalence(p)}   Model: {model_name}",
        f"Image: {source_name[:60]}   Generated {generated or time.strftime('%Y-%m-%d %H:%M')}",
        "Left: image as read. Right: Grad-CAM (regions that drove the verdict; not a lesion map).",
        f"{DISCLAIMER} Not for clinical decisions.",
    ]


REPORT_SIDE = 512
"""Each of the report's two panels fits in a square of this many pixels."""


def report_png(analysis: Analysis, *, model_name: str, source_name: str, opacity: float = 0.4) -> bytes:
    """A one-page PNG report for one image: original, Grad-CAM overlay, verdict, model version
    (white page, two 512 px panels, ``report_lines`` below)."""
    side = REPORT_SIDE
    fitted = fit_longer_side(analysis.pixels, side)
    original = cv2.cvtColor(fitted, cv2.COLOR_GRAY2RGB)
    blended = overlay(fitted, fit_longer_side(analysis.heatmap, side), opacity)
    page = np.full((side + 230, 2 * side + 60, 3), 255, np.uint8)
    page[20 : 20 + original.shape[0], 20 : 20 + original.shape[1]] = original
    page[20 : 20 + blended.shape[0], side + 40 : side + 40 + blended.shape[1]] = blended
    styles = [(0.8, 2), (0.6, 1), (0.6, 1), (0.55, 1), (0.6, 1)]  # (font scale, thickness) per line
    y = side + 60
    for text, (scale, thickness) in zip(
        report_lines(analysis, model_name=model_name, source_name=source_name), styles, strict=True
    ):
        cv2.putText(page, text, (20, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thickness, cv2.LINE_AA)
        y += 36
    return _encode(".png", cv2.cvtColor(page, cv2.COLOR_RGB2BGR))

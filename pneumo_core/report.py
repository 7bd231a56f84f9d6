"""A one-page PNG report for a single image: original, Grad-CAM overlay, verdict, model version."""

from __future__ import annotations

import time

import cv2
import numpy as np

from .classifier import Analysis, Prediction
from .imaging import overlay

_DISCLAIMER = "Demo and teaching tool - not a medical device. Not for clinical decisions."


def probability_percent(probability: float) -> str:
    """A probability as a percentage that never reads as certainty: 0.9996 is ">99.9%", not "100.0%"."""
    if probability >= 0.9995:
        return ">99.9%"
    if probability < 0.0005:
        return "<0.1%"
    return f"{100 * probability:.1f}%"


def _fit(pixels: np.ndarray, side: int) -> np.ndarray:
    height, width = pixels.shape[:2]
    scale = side / max(height, width)
    return cv2.resize(
        pixels, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA
    )


def _prevalence(prediction: Prediction) -> str:
    return f"   Prevalence assumed {100 * prediction.prevalence:.0f}%" if prediction.prevalence else ""


def report_png(analysis: Analysis, *, model_name: str, source_name: str, opacity: float = 0.4) -> bytes:
    """Render the report as PNG bytes (white page, two 512 px panels, text below)."""
    side = 512
    original = cv2.cvtColor(_fit(analysis.pixels, side), cv2.COLOR_GRAY2RGB)
    heat = _fit(analysis.heatmap, side)
    blended = overlay(_fit(analysis.pixels, side), heat, opacity)
    page = np.full((side + 230, 2 * side + 60, 3), 255, np.uint8)
    page[20 : 20 + original.shape[0], 20 : 20 + original.shape[1]] = original
    page[20 : 20 + blended.shape[0], side + 40 : side + 40 + blended.shape[1]] = blended
    p = analysis.prediction
    lines = [
        (f"Verdict: {p.label}   P(pneumonia) = {probability_percent(p.probability_pneumonia)}   ({p.band})", 0.8, 2),
        (f"Operating threshold {100 * p.operating_threshold:.1f}%{_prevalence(p)}   Model: {model_name}", 0.6, 1),
        (f"Image: {source_name[:60]}   Generated {time.strftime('%Y-%m-%d %H:%M')}", 0.6, 1),
        ("Left: image as read. Right: Grad-CAM (regions that drove the verdict; not a lesion map).", 0.55, 1),
        (_DISCLAIMER, 0.6, 1),
    ]
    y = side + 60
    for text, scale, thickness in lines:
        cv2.putText(page, text, (20, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thickness, cv2.LINE_AA)
        y += 36
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(page, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return encoded.tobytes()

"""Metrics, calibration and threshold choice, shaped like scikit-learn: ``(y_true, y_score, *, options)``.

Plot-free: ``plots.py`` draws what these functions compute.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import expit
from scipy.stats import norm
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    confusion_matrix,
    log_loss,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)


def _check(y_true: np.ndarray, y_score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true, dtype=int).ravel()
    y_score = np.asarray(y_score, dtype=float).ravel()
    if y_true.shape != y_score.shape:
        raise ValueError(f"y_true and y_score differ in length: {y_true.size} vs {y_score.size}")
    if np.unique(y_true).size < 2:
        raise ValueError("only one class present in y_true; these metrics need both classes")
    return y_true, y_score


def sigmoid(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """``1 / (1 + exp(-logits / temperature))``, without overflow for very large logits."""
    return expit(np.asarray(logits, dtype=np.float64) / temperature)


def shift_prevalence(probability: Any, from_prevalence: float, to_prevalence: float) -> Any:
    """Re-express calibrated probabilities for another prevalence of the positive class.

    Bayes' rule under a change of prior only (Saerens et al. 2002): the odds are multiplied by the
    ratio of the prior odds. The ranking, and so every verdict at a correspondingly moved threshold,
    is unchanged. Returns a float for a scalar input, else an array.
    """
    for prevalence in (from_prevalence, to_prevalence):
        if not 0.0 < prevalence < 1.0:
            raise ValueError(f"a prevalence must lie strictly between 0 and 1, got {prevalence}")
    p = np.clip(np.asarray(probability, dtype=np.float64), 1e-12, 1 - 1e-12)
    shift = np.log(to_prevalence / (1 - to_prevalence)) - np.log(from_prevalence / (1 - from_prevalence))
    out = sigmoid(np.log(p / (1 - p)) + shift)
    return float(out) if out.ndim == 0 else out


def threshold_metrics(y_true: np.ndarray, y_score: np.ndarray, *, threshold: float | np.ndarray) -> dict[str, Any]:
    """Confusion matrix and the rates derived from it at ``y_score >= threshold``.

    ``threshold`` may be one per image (out-of-fold predictions, each at its own fold's threshold);
    the report's ``threshold`` is then their median.
    """
    y_true = np.asarray(y_true, dtype=int).ravel()
    y_pred = (np.asarray(y_score, dtype=float).ravel() >= np.asarray(threshold, dtype=float).ravel()).astype(int)
    tn, fp, fn, tp = (int(v) for v in confusion_matrix(y_true, y_pred, labels=[0, 1]).ravel())

    def ratio(num: int, den: int) -> float:
        return float(num / den) if den else float("nan")

    precision = ratio(tp, tp + fp)
    sensitivity = ratio(tp, tp + fn)
    return {
        "threshold": float(np.median(threshold)),
        "accuracy": ratio(tp + tn, tp + tn + fp + fn),
        "sensitivity": sensitivity,
        "specificity": ratio(tn, tn + fp),
        "precision": precision,
        "npv": ratio(tn, tn + fn),
        "f1": ratio(2 * tp, 2 * tp + fp + fn),
        "confusion": {"tn": tn, "fp": fp, "fn": fn, "tp": tp},
    }


def expected_calibration_error(y_true: np.ndarray, y_prob: np.ndarray, *, n_bins: int = 10) -> float:
    """Mean |observed rate - mean predicted probability| over equal-width bins, weighted by count."""
    y_true, y_prob = _check(y_true, y_prob)
    bins = np.minimum((y_prob * n_bins).astype(int), n_bins - 1)
    total = 0.0
    for b in range(n_bins):
        mask = bins == b
        if mask.any():
            total += mask.sum() * abs(y_true[mask].mean() - y_prob[mask].mean())
    return float(total / y_true.size)


def calibration_curve(y_true: np.ndarray, y_prob: np.ndarray, *, n_bins: int = 10) -> dict[str, list]:
    """Per equal-width bin: mean predicted probability, observed positive rate, count."""
    y_true, y_prob = _check(y_true, y_prob)
    bins = np.minimum((y_prob * n_bins).astype(int), n_bins - 1)
    predicted, observed, counts = [], [], []
    for b in range(n_bins):
        mask = bins == b
        if mask.any():
            predicted.append(float(y_prob[mask].mean()))
            observed.append(float(y_true[mask].mean()))
            counts.append(int(mask.sum()))
    return {"predicted": predicted, "observed": observed, "count": counts}


def choose_threshold(
    y_true: np.ndarray, y_prob: np.ndarray, *, target_sensitivity: float | None = None
) -> tuple[float, str]:
    """Operating threshold on validation data.

    Youden's J (max sensitivity + specificity - 1) by default: it does not depend on prevalence,
    which differs between train (2.9:1) and test (1.67:1). With ``target_sensitivity``, the highest
    threshold that still reaches it.
    """
    y_true, y_prob = _check(y_true, y_prob)
    fpr, tpr, thresholds = roc_curve(y_true, y_prob)
    finite = np.isfinite(thresholds)
    fpr, tpr, thresholds = fpr[finite], tpr[finite], thresholds[finite]
    if target_sensitivity is not None:
        ok = np.flatnonzero(tpr >= target_sensitivity)
        index = ok[0]
        method = f"highest threshold with validation sensitivity >= {target_sensitivity:.2f}"
    else:
        index = int(np.argmax(tpr - fpr))
        method = "Youden's J on the validation split"
    # Midway to the next lower score: a threshold exactly on a validation score is fragile.
    lower = y_prob[y_prob < thresholds[index]]
    threshold = (thresholds[index] + lower.max()) / 2 if lower.size else thresholds[index]
    return float(np.clip(threshold, 1e-4, 1 - 1e-4)), method


def fit_temperature(y_true: np.ndarray, logits: np.ndarray) -> float:
    """Temperature T minimising the validation log-loss of ``sigmoid(logit / T)``."""
    y_true = np.asarray(y_true, dtype=float).ravel()
    logits = np.asarray(logits, dtype=float).ravel()

    def nll(log_t: float) -> float:
        p = np.clip(sigmoid(logits, np.exp(log_t)), 1e-7, 1 - 1e-7)
        return float(-np.mean(y_true * np.log(p) + (1 - y_true) * np.log(1 - p)))

    result = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(result.x))


def temperature_scaled(y_true: np.ndarray, logits: np.ndarray) -> tuple[float, np.ndarray, float]:
    """``(T, sigmoid(logits / T), log-loss)`` with T fitted on these labels: the calibrated
    validation log-loss that models are compared by (probabilities clipped to [1e-7, 1 - 1e-7]
    for the loss only)."""
    temperature = fit_temperature(y_true, logits)
    probabilities = sigmoid(logits, temperature)
    return temperature, probabilities, float(log_loss(y_true, np.clip(probabilities, 1e-7, 1 - 1e-7), labels=[0, 1]))


def bootstrap_ci(
    y_true: np.ndarray,
    y_score: np.ndarray,
    statistic: Callable[[np.ndarray, np.ndarray], dict[str, float]],
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals for every scalar ``statistic`` returns (resampling images)."""
    y_true, y_score = np.asarray(y_true), np.asarray(y_score)
    rng = np.random.default_rng(seed)
    samples: dict[str, list[float]] = {}
    n = y_true.size
    for _ in range(n_resamples):
        idx = rng.integers(0, n, n)
        if np.unique(y_true[idx]).size < 2:
            continue
        for key, value in statistic(y_true[idx], y_score[idx]).items():
            samples.setdefault(key, []).append(value)
    alpha = (1 - confidence) / 2
    return {key: _interval(np.asarray(v, np.float64), alpha) for key, v in samples.items()}


def _interval(values: np.ndarray, alpha: float) -> tuple[float, float]:
    """The percentile interval of the resamples where the statistic is defined; NaN where it never is
    (a sensitivity of a resample without positives, say)."""
    values = values[~np.isnan(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    return float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha))


def roc_band(
    y_true: np.ndarray,
    y_score: np.ndarray,
    *,
    n_resamples: int = 500,
    confidence: float = 0.95,
    seed: int = 0,
    points: int = 101,
) -> dict[str, list[float]]:
    """A pointwise percentile-bootstrap band around the ROC curve (``bootstrap_ci`` of the
    sensitivity at each false positive rate of a regular grid)."""
    grid = np.linspace(0.0, 1.0, points)

    def curve(t: np.ndarray, s: np.ndarray) -> dict[str, float]:
        fpr, tpr, _ = roc_curve(t, s)
        return {str(i): value for i, value in enumerate(np.interp(grid, fpr, tpr).tolist())}

    y_true, y_score = _check(y_true, y_score)
    band = bootstrap_ci(y_true, y_score, curve, n_resamples=n_resamples, confidence=confidence, seed=seed)
    return {
        "fpr": grid.tolist(),
        "low": [band[str(i)][0] for i in range(points)],
        "high": [band[str(i)][1] for i in range(points)],
    }


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion (``(nan, nan)`` with no trials)."""
    if trials == 0:
        return float("nan"), float("nan")
    z = float(norm.ppf(1 - (1 - confidence) / 2))
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * np.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def evaluate(
    y_true: np.ndarray,
    y_prob: np.ndarray,
    *,
    threshold: float | np.ndarray,
    n_resamples: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """The full report: scalars, 95% CIs (ECE's included), confusion matrix, ROC / PR / calibration curves.

    ``threshold``: one operating threshold, or one per image (resampled with its image).
    """
    y_true, y_prob = _check(y_true, y_prob)
    thresholds = np.broadcast_to(np.asarray(threshold, dtype=float), y_prob.shape)

    def scalars(t: np.ndarray, scored: np.ndarray) -> dict[str, float]:
        p, at_threshold = scored[:, 0], scored[:, 1]
        at = threshold_metrics(t, p, threshold=at_threshold)
        return {
            "auc": float(roc_auc_score(t, p)),
            **{k: at[k] for k in ("accuracy", "sensitivity", "specificity", "precision", "f1")},
            "ece": expected_calibration_error(t, p),
        }

    fpr, tpr, roc_thresholds = roc_curve(y_true, y_prob)
    precision, recall, _ = precision_recall_curve(y_true, y_prob)
    report: dict[str, Any] = {
        "n": int(y_true.size),
        "n_positive": int(y_true.sum()),
        **threshold_metrics(y_true, y_prob, threshold=thresholds),
        "auc": float(roc_auc_score(y_true, y_prob)),
        "average_precision": float(average_precision_score(y_true, y_prob)),
        "brier": float(brier_score_loss(y_true, y_prob)),
        "log_loss": float(log_loss(y_true, np.clip(y_prob, 1e-7, 1 - 1e-7), labels=[0, 1])),
        "ece": expected_calibration_error(y_true, y_prob),
        "ci95": bootstrap_ci(y_true, np.c_[y_prob, thresholds], scalars, n_resamples=n_resamples, seed=seed),
        "roc": {
            "fpr": fpr.tolist(),
            "tpr": tpr.tolist(),
            "thresholds": np.nan_to_num(roc_thresholds, posinf=1.0).tolist(),
        },
        "pr": {"precision": precision.tolist(), "recall": recall.tolist()},
        "calibration": calibration_curve(y_true, y_prob),
    }
    return report


def summary(report: dict[str, Any]) -> dict[str, Any]:
    """The scalar part of an ``evaluate`` report (no curves), for tables and JSON summaries."""
    keys = (
        "n", "auc", "accuracy", "sensitivity", "specificity", "precision", "f1",
        "brier", "log_loss", "ece", "threshold", "confusion", "ci95",
    )  # fmt: skip
    return {k: report[k] for k in keys if k in report}

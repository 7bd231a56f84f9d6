"""Metrics on toy arrays with hand-computed answers."""

from __future__ import annotations

import numpy as np
import pytest

from pneumo_core.evaluation import (
    bootstrap_ci,
    calibration_curve,
    choose_threshold,
    evaluate,
    expected_calibration_error,
    fit_temperature,
    shift_prevalence,
    sigmoid,
    threshold_metrics,
)

Y = np.array([0, 0, 0, 1, 1, 1, 1, 1])
P = np.array([0.1, 0.4, 0.6, 0.3, 0.7, 0.8, 0.9, 0.95])


def test_threshold_metrics_by_hand() -> None:
    m = threshold_metrics(Y, P, threshold=0.5)
    # predicted positive: 0.6, 0.7, 0.8, 0.9, 0.95 -> tp 4, fp 1; fn 1 (0.3); tn 2
    assert m["confusion"] == {"tn": 2, "fp": 1, "fn": 1, "tp": 4}
    assert m["sensitivity"] == pytest.approx(4 / 5)
    assert m["specificity"] == pytest.approx(2 / 3)
    assert m["precision"] == pytest.approx(4 / 5)
    assert m["accuracy"] == pytest.approx(6 / 8)
    assert m["f1"] == pytest.approx(0.8)


def test_threshold_is_inclusive() -> None:
    assert threshold_metrics([0, 1], [0.5, 0.5], threshold=0.5)["confusion"]["fp"] == 1


def test_ece_by_hand() -> None:
    # bin [0.2,0.3): p=0.25 twice, one positive -> |0.5-0.25|; bin [0.9,1.0]: p=0.95 twice, both positive -> 0.05
    assert expected_calibration_error([0, 1, 1, 1], [0.25, 0.25, 0.95, 0.95]) == pytest.approx(
        (2 * 0.25 + 2 * 0.05) / 4
    )


def test_calibration_curve_counts() -> None:
    curve = calibration_curve([0, 1, 1, 1], [0.25, 0.25, 0.95, 0.95])
    assert curve == {"predicted": [0.25, 0.95], "observed": [0.5, 1.0], "count": [2, 2]}


def test_youden_threshold_separates_perfectly() -> None:
    y = np.array([0, 0, 0, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.6, 0.7, 0.8])
    threshold, method = choose_threshold(y, p)
    assert 0.3 < threshold <= 0.6 and "Youden" in method
    assert threshold_metrics(y, p, threshold=threshold)["accuracy"] == 1.0


def test_target_sensitivity_threshold() -> None:
    threshold, _ = choose_threshold(Y, P, target_sensitivity=1.0)
    assert threshold_metrics(Y, P, threshold=threshold)["sensitivity"] == 1.0
    assert threshold <= 0.3
    # the *highest* threshold that reaches the target, midway to the next lower score
    assert threshold == pytest.approx((0.3 + 0.1) / 2)
    threshold, method = choose_threshold(Y, P, target_sensitivity=0.8)
    assert threshold == pytest.approx((0.7 + 0.6) / 2) and "0.80" in method
    assert threshold_metrics(Y, P, threshold=threshold)["specificity"] == 1.0


def test_temperature_recovers_overconfidence() -> None:
    rng = np.random.default_rng(0)
    true_logits = rng.normal(0, 2, 5000)
    y = (rng.random(5000) < sigmoid(true_logits)).astype(int)
    assert fit_temperature(y, true_logits * 3.0) == pytest.approx(3.0, rel=0.15)


def test_single_class_is_a_specific_error() -> None:
    with pytest.raises(ValueError, match="only one class"):
        evaluate([1, 1, 1], [0.2, 0.5, 0.9], threshold=0.5)


def test_evaluate_report_and_cis() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300)
    p = np.clip(y * 0.5 + rng.random(300) * 0.5, 0, 1)
    report = evaluate(y, p, threshold=0.5, n_resamples=200)
    for key in (
        "auc",
        "accuracy",
        "sensitivity",
        "specificity",
        "precision",
        "f1",
        "brier",
        "ece",
        "confusion",
        "roc",
        "pr",
        "calibration",
    ):
        assert key in report
    low, high = report["ci95"]["auc"]
    assert low <= report["auc"] <= high and high - low < 0.2


def test_bootstrap_is_seeded() -> None:
    stat = lambda t, p: {"mean": float(np.mean(p))}  # noqa: E731
    assert bootstrap_ci(Y, P, stat, seed=3) == bootstrap_ci(Y, P, stat, seed=3)


def test_shift_prevalence_by_hand() -> None:
    # p = 0.8 at prevalence 0.75: odds 4 / prior odds 3; at prevalence 0.5 (prior odds 1): odds 4/3
    assert shift_prevalence(0.8, 0.75, 0.5) == pytest.approx(4 / 7)
    assert shift_prevalence(0.8, 0.75, 0.75) == pytest.approx(0.8)
    p = np.array([0.01, 0.3, 0.5, 0.99])
    back = shift_prevalence(shift_prevalence(p, 0.74, 0.2), 0.2, 0.74)
    np.testing.assert_allclose(back, p)
    assert np.all(np.diff(shift_prevalence(p, 0.74, 0.2)) > 0)  # ranking kept
    with pytest.raises(ValueError, match="prevalence"):
        shift_prevalence(0.5, 0.74, 1.0)

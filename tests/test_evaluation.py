"""Metrics on toy arrays with hand-computed answers."""

from __future__ import annotations

import re

import numpy as np
import pytest

from pneumo_core.evaluation import (
    bootstrap_ci,
    calibration_curve,
    choose_threshold,
    evaluate,
    expected_calibration_error,
    fit_temperature,
    roc_band,
    shift_prevalence,
    sigmoid,
    summary,
    temperature_scaled,
    threshold_metrics,
    wilson_interval,
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
    low, high = report["ci95"]["ece"]
    assert low < report["ece"] < high and high - low < 0.2


def test_roc_band_holds_the_curve_and_narrows_with_more_images() -> None:
    from sklearn.metrics import roc_curve

    rng = np.random.default_rng(3)
    widths = []
    for n in (150, 2400):
        y = rng.integers(0, 2, n)
        p = sigmoid(2 * y + rng.normal(size=n))
        band = roc_band(y, p, n_resamples=300)
        low, high = np.array(band["low"]), np.array(band["high"])
        fpr, tpr, _ = roc_curve(y, p)
        curve = np.interp(band["fpr"], fpr, tpr)
        assert band["fpr"][0] == 0 and band["fpr"][-1] == 1 and len(low) == 101
        assert np.all(low <= high) and np.mean((low <= curve) & (curve <= high)) > 0.95
        widths.append(float(np.mean(high - low)))
    assert widths[1] < widths[0] / 2  # 16 times the images: about a quarter of the width


def test_wilson_interval_by_hand() -> None:
    z2 = 1.959963984540054**2
    assert wilson_interval(0, 10) == pytest.approx((0.0, z2 / (10 + z2)))
    low, high = wilson_interval(377, 390)
    assert (low, high) == pytest.approx((0.9438, 0.9804), abs=1e-4) and low < 377 / 390 < high
    assert wilson_interval(13, 390) == pytest.approx((1 - high, 1 - low))
    assert np.isnan(wilson_interval(0, 0)).all()


def test_bootstrap_is_seeded() -> None:
    stat = lambda t, p: {"mean": float(np.mean(p))}  # noqa: E731
    assert bootstrap_ci(Y, P, stat, seed=3) == bootstrap_ci(Y, P, stat, seed=3)


def test_a_statistic_undefined_in_every_resample_gets_no_interval_and_no_warning() -> None:
    import warnings

    stat = lambda t, p: {"never": float("nan"), "sometimes": float(p[0]) if t[0] else float("nan")}  # noqa: E731
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        intervals = bootstrap_ci(Y, P, stat, n_resamples=200, seed=1)
    assert np.isnan(intervals["never"]).all()
    low, high = intervals["sometimes"]  # the resamples where it is defined still give an interval
    assert P.min() <= low <= high <= P.max()


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


@pytest.mark.parametrize(
    ("y", "p", "message"),
    [
        ([0, 1, 1], [0.2, 0.5], "y_true and y_score differ in length: 3 vs 2"),
        ([1, 1], [0.2, 0.5], "only one class present in y_true; these metrics need both classes"),
    ],
)
def test_bad_inputs_are_refused_with_the_reason(y: list, p: list, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        expected_calibration_error(y, p)


def test_prevalence_shift_at_the_edges() -> None:
    with pytest.raises(ValueError, match=r"^a prevalence must lie strictly between 0 and 1, got 0\.0$"):
        shift_prevalence(0.5, 0.0, 0.5)
    # certain probabilities stay (almost) certain and finite under any prior
    assert shift_prevalence(1.0, 0.5, 0.5) == pytest.approx(1.0) and shift_prevalence(0.0, 0.5, 0.5) < 1e-11
    assert np.isfinite(shift_prevalence(np.array([0.0, 1.0]), 0.7, 0.2)).all()


def test_negative_predictive_value_and_the_report_threshold() -> None:
    m = threshold_metrics(Y, P, threshold=0.5)
    assert m["npv"] == pytest.approx(2 / 3) and m["threshold"] == 0.5  # tn 2 of the 3 called negative
    per_image = threshold_metrics(Y, P, threshold=np.array([0.2, 0.2, 0.2, 0.5, 0.5, 0.5, 0.9, 0.9]))
    assert per_image["threshold"] == 0.5 and per_image["confusion"] == {"tn": 1, "fp": 2, "fn": 1, "tp": 4}


def test_calibration_bins_are_tenths_and_the_last_one_holds_certainty() -> None:
    # 0.18 and 0.19 share the tenth [0.1, 0.2); 1.0 belongs in the last bin [0.9, 1.0], with 0.95
    curve = calibration_curve([0, 1, 1, 0, 1, 0], [0.18, 0.19, 0.85, 0.95, 1.0, 1.0])
    assert curve == {"predicted": [0.185, 0.85, pytest.approx(2.95 / 3)], "observed": [0.5, 1.0, pytest.approx(1 / 3)], "count": [2, 1, 3]}  # fmt: skip
    ece = (2 * abs(0.5 - 0.185) + 1 * abs(1.0 - 0.85) + 3 * abs(1 / 3 - 2.95 / 3)) / 6
    assert expected_calibration_error([0, 1, 1, 0, 1, 0], [0.18, 0.19, 0.85, 0.95, 1.0, 1.0]) == pytest.approx(ece)


def test_a_threshold_never_reaches_0_or_1() -> None:
    assert choose_threshold([0, 1], [1.0, 1.0])[0] == pytest.approx(1 - 1e-4)
    assert choose_threshold([0, 1], [0.0, 0.0])[0] == pytest.approx(1e-4)
    _, method = choose_threshold(Y, P)
    assert method == "Youden's J on the validation split"
    _, method = choose_threshold(Y, P, target_sensitivity=0.97)
    assert method == "highest threshold with validation sensitivity >= 0.97"


def test_temperature_recovers_under_and_overconfidence_within_its_bounds() -> None:
    rng = np.random.default_rng(0)
    true_logits = rng.normal(0, 2, 20000)
    y = (rng.random(20000) < sigmoid(true_logits)).astype(int)
    assert fit_temperature(y, true_logits * 3.0) == pytest.approx(3.0, rel=0.05)
    assert fit_temperature(y, true_logits / 3.0) == pytest.approx(1 / 3, rel=0.05)
    assert fit_temperature(y, true_logits * 100.0) == pytest.approx(20.0, rel=1e-3)  # the upper bound
    temperature, probabilities, loss = temperature_scaled(y, true_logits * 3.0)
    assert temperature == fit_temperature(y, true_logits * 3.0)
    np.testing.assert_allclose(probabilities, sigmoid(true_logits * 3.0 / temperature))
    expected = -np.mean(y * np.log(probabilities) + (1 - y) * np.log(1 - probabilities))
    assert loss == pytest.approx(expected, rel=1e-6)


def test_bootstrap_intervals_have_the_stated_coverage_and_use_every_image() -> None:
    rng = np.random.default_rng(0)
    y = np.tile([0, 1], 1000)
    p = rng.normal(0, 1, 2000)
    low, high = bootstrap_ci(y, p, lambda t, s: {"mean": float(np.mean(s))}, n_resamples=2000)["mean"]
    half_width = 1.96 * p.std() / np.sqrt(p.size)  # the normal-theory 95% interval of a mean
    assert (high - low) / 2 == pytest.approx(half_width, rel=0.05) and low < p.mean() < high
    # the first image is resampled like any other: an interval of the maximum reaches it
    extreme = np.r_[100.0, p[1:20]]
    assert bootstrap_ci(y[:20], extreme, lambda t, s: {"max": float(np.max(s))})["max"][1] == 100.0
    # resamples with one class are skipped, not the end of the loop
    calls = []
    few_positives = np.r_[1, np.zeros(19, int)]
    bootstrap_ci(few_positives, p[:20], lambda t, s: calls.append(1) or {"n": 1.0})
    assert 550 < len(calls) < 720  # about 1 - (19/20)^20 = 64% of 1000 resamples hold the positive

    # the defaults: 1000 resamples, seed 0
    def counted(calls: list) -> object:
        return lambda t, s: calls.append(1) or {"mean": float(np.mean(s))}

    by_default = []
    balanced = np.tile([0, 1], 10)  # a resample of one class only: about 2 in a million
    bootstrap_ci(balanced, np.arange(20.0), counted(by_default))
    assert len(by_default) == 1000
    stat = lambda t, s: {"mean": float(np.mean(s))}  # noqa: E731
    assert bootstrap_ci(Y, P, stat) == bootstrap_ci(Y, P, stat, n_resamples=1000, seed=0)
    assert bootstrap_ci(Y, P, stat) != bootstrap_ci(Y, P, stat, n_resamples=1000, seed=1)


def test_evaluate_report_by_hand() -> None:
    report = evaluate(Y, P, threshold=0.5, n_resamples=50)
    assert set(report) == {
        "n", "n_positive", "threshold", "accuracy", "sensitivity", "specificity", "precision", "npv", "f1",
        "confusion", "auc", "average_precision", "brier", "log_loss", "ece", "ci95", "roc", "pr", "calibration",
    }  # fmt: skip
    assert (report["n"], report["n_positive"], report["threshold"]) == (8, 5, 0.5)
    assert report["auc"] == pytest.approx(13 / 15)  # 13 of the 15 positive-negative pairs ranked right
    assert report["brier"] == pytest.approx(np.mean((P - Y) ** 2))
    assert report["log_loss"] == pytest.approx(-np.mean(Y * np.log(P) + (1 - Y) * np.log(1 - P)))
    assert report["average_precision"] == pytest.approx(
        np.mean([1, 1, 1, 1, 5 / 7])  # precision at each positive, by descending score
    )
    assert set(report["ci95"]) == {"auc", "accuracy", "sensitivity", "specificity", "precision", "f1", "ece"}
    assert set(report["roc"]) == {"fpr", "tpr", "thresholds"} and set(report["pr"]) == {"precision", "recall"}
    assert report["roc"]["thresholds"][0] == 1.0 and report["roc"]["tpr"][-1] == 1.0
    assert report["pr"]["recall"][0] == 1.0 and report["pr"]["precision"][-1] == 1.0
    assert report["calibration"] == calibration_curve(Y, P)


def test_evaluate_resamples_1000_times_from_seed_0_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    import pneumo_core.evaluation as evaluation

    asked = {}
    monkeypatch.setattr(evaluation, "bootstrap_ci", lambda *args, **kwargs: asked.update(kwargs) or {})
    evaluation.evaluate(Y, P, threshold=0.5)
    assert (asked["n_resamples"], asked["seed"]) == (1000, 0)


def test_summary_keeps_the_scalars_and_drops_the_curves() -> None:
    report = evaluate(Y, P, threshold=0.5, n_resamples=20)
    assert list(summary(report)) == [
        "n", "auc", "accuracy", "sensitivity", "specificity", "precision", "f1",
        "brier", "log_loss", "ece", "threshold", "confusion", "ci95",
    ]  # fmt: skip
    assert summary(report)["auc"] == report["auc"] and summary({"auc": 0.9}) == {"auc": 0.9}


def test_sigmoid_with_temperature_and_without_overflow() -> None:
    assert sigmoid(0.0) == 0.5 and sigmoid(2.0, temperature=2.0) == pytest.approx(1 / (1 + np.exp(-1.0)))
    with np.errstate(over="raise"):
        np.testing.assert_array_equal(sigmoid(np.array([-1e4, 1e4])), [0.0, 1.0])


def test_log_losses_clip_certain_mistakes_at_1e7() -> None:
    """A probability of exactly 0 or 1 on the wrong side costs -log(1e-7), not infinity."""
    cost = -np.log(1e-7)
    report = evaluate([0, 1, 1], [1.0, 1.0, 0.5], threshold=0.5, n_resamples=10)
    assert report["log_loss"] == pytest.approx((cost + -np.log(1 - 1e-7) + np.log(2)) / 3, rel=1e-6)
    assert evaluate([1, 0, 0], [0.0, 0.0, 0.5], threshold=0.5, n_resamples=10)["log_loss"] == pytest.approx(
        (cost + -np.log(1 - 1e-7) + np.log(2)) / 3, rel=1e-6
    )
    # logits far beyond what any temperature within its bounds can soften: two sure mistakes of four
    temperature, _, loss = temperature_scaled(np.array([0, 1, 0, 1]), np.array([1000.0, 1000.0, -1000.0, -1000.0]))
    assert temperature == pytest.approx(20.0, rel=1e-3)
    assert loss == pytest.approx((2 * cost + 2 * -np.log(1 - 1e-7)) / 4, rel=1e-6)

"""Plotly figures of what ``evaluation`` computes. No Streamlit here: pages render these."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from sklearn.metrics import precision_recall_curve, roc_auc_score, roc_curve

from .evaluation import calibration_curve, threshold_metrics, wilson_interval

_LAYOUT = {"height": 380, "margin": {"l": 50, "r": 20, "t": 50, "b": 50}, "template": "plotly_white"}
_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd")
"""One colour per model, its band shaded in the same."""
_LEGEND_BELOW = {"orientation": "h", "yanchor": "top", "y": -0.25, "xanchor": "left", "x": 0}
"""Below the plot, where it cannot cover a second y axis's labels."""


def confusion_matrix_figure(
    confusion: dict[str, int], class_names: Sequence[str], title: str = "Confusion matrix"
) -> go.Figure:
    """Counts, each with its share of its true class and that share's 95% Wilson interval (for the
    diagonal: specificity and sensitivity)."""
    z = [[confusion["tn"], confusion["fp"]], [confusion["fn"], confusion["tp"]]]

    def cell(count: int, row: list[int]) -> str:
        low, high = wilson_interval(count, sum(row))
        return f"{count}<br><span style='font-size:12px'>{count / max(1, sum(row)):.1%} ({low:.1%}-{high:.1%})</span>"

    labels = list(class_names)
    fig = go.Figure(
        go.Heatmap(
            z=z, x=[f"predicted {c}" for c in labels], y=[f"true {c}" for c in labels],
            text=[[cell(v, row) for v in row] for row in z], texttemplate="%{text}", textfont={"size": 20},
            colorscale="Blues", showscale=False,
        )
    )  # fmt: skip
    fig.update_layout(title=title, yaxis={"autorange": "reversed"}, **_LAYOUT)
    return fig


def roc_figure(
    curves: dict[str, tuple[np.ndarray, np.ndarray]],
    operating_points: dict[str, tuple[float, float]] | None = None,
    marker: tuple[float, float] | None = None,
    bands: dict[str, dict[str, list[float]]] | None = None,
) -> go.Figure:
    """ROC curves by name ``{name: (y_true, y_prob)}``, each shaded with its 95% band from ``bands``
    (``evaluation.roc_band``) where given; frozen operating points and a movable marker."""
    fig = go.Figure()
    for index, (name, (y_true, y_prob)) in enumerate(curves.items()):
        colour = _COLOURS[index % len(_COLOURS)]
        if bands and name in bands:
            band = bands[name]
            fig.add_trace(
                go.Scatter(
                    x=[*band["fpr"], *band["fpr"][::-1]], y=[*band["high"], *band["low"][::-1]], fill="toself",
                    fillcolor=colour, opacity=0.2, line={"width": 0}, hoverinfo="skip", showlegend=False,
                )
            )  # fmt: skip
        fpr, tpr, _ = roc_curve(y_true, y_prob)
        fig.add_trace(
            go.Scatter(
                x=fpr, y=tpr, mode="lines", line={"color": colour},
                name=f"{name} (AUC {roc_auc_score(y_true, y_prob):.3f})",
            )
        )  # fmt: skip
    for name, (fpr, tpr) in (operating_points or {}).items():
        fig.add_trace(
            go.Scatter(
                x=[fpr],
                y=[tpr],
                mode="markers",
                marker={"size": 12, "symbol": "diamond"},
                name=f"{name} operating point",
            )
        )
    if marker is not None:
        fig.add_trace(
            go.Scatter(
                x=[marker[0]],
                y=[marker[1]],
                mode="markers",
                marker={"size": 14, "color": "red"},
                name="selected threshold",
            )
        )
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "gray"}, showlegend=False))
    fig.update_layout(
        title="ROC curve" + (" (shaded: 95% bootstrap band)" if bands else ""),
        xaxis_title="1 - specificity (false positive rate)",
        yaxis_title="sensitivity",
        legend={"x": 0.35, "y": 0.05},
        **_LAYOUT,
    )
    return fig


def pr_figure(curves: dict[str, tuple[np.ndarray, np.ndarray]]) -> go.Figure:
    fig = go.Figure()
    for name, (y_true, y_prob) in curves.items():
        precision, recall, _ = precision_recall_curve(y_true, y_prob)
        fig.add_trace(go.Scatter(x=recall, y=precision, mode="lines", name=name))
    fig.update_layout(
        title="Precision-recall curve", xaxis_title="recall (sensitivity)", yaxis_title="precision", **_LAYOUT
    )
    return fig


def calibration_figure(curves: dict[str, tuple[np.ndarray, np.ndarray]], n_bins: int = 10) -> go.Figure:
    fig = go.Figure()
    for name, (y_true, y_prob) in curves.items():
        curve = calibration_curve(y_true, y_prob, n_bins=n_bins)
        fig.add_trace(
            go.Scatter(
                x=curve["predicted"], y=curve["observed"], mode="lines+markers", name=name,
                text=[f"n={c}" for c in curve["count"]],
            )
        )  # fmt: skip
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "gray"}, name="perfect"))
    fig.update_layout(
        title="Calibration (reliability) curve",
        xaxis_title="predicted probability of pneumonia",
        yaxis_title="observed share with pneumonia",
        **_LAYOUT,
    )
    return fig


def operating_point(y_true: np.ndarray, y_prob: np.ndarray, threshold: float) -> tuple[float, float]:
    """``(1 - specificity, sensitivity)`` at ``threshold``: where it sits on the ROC plot."""
    at = threshold_metrics(y_true, y_prob, threshold=threshold)
    return 1.0 - at["specificity"], at["sensitivity"]


def training_curves_figure(history: dict[str, Sequence[float]], member_epochs: Sequence[int] = ()) -> go.Figure:
    """Loss and AUC per epoch, training and validation. An ensemble's members trained one after
    another: a dotted line marks where each starts."""
    fig = go.Figure()
    for key in ("loss", "val_loss", "auc", "val_auc"):
        if history.get(key):
            epochs = list(range(1, len(history[key]) + 1))
            fig.add_trace(
                go.Scatter(
                    x=epochs, y=list(history[key]), mode="lines+markers", name=key, yaxis="y2" if "auc" in key else "y"
                )
            )
    starts = np.cumsum([0, *member_epochs])[:-1] + 1 if len(member_epochs) > 1 else []
    for member, start in enumerate(starts, start=1):
        fig.add_vline(x=float(start) - 0.5, line={"dash": "dot", "color": "#888"})
        fig.add_annotation(x=float(start) - 0.5, y=1.0, yref="paper", text=f"member {member}", showarrow=False,
                           xanchor="left", yanchor="bottom", font={"size": 11, "color": "#555"})  # fmt: skip
    title = "epoch (members one after another)" if len(starts) else "epoch"
    epochs_run = max((len(v) for v in history.values()), default=0)
    fig.update_layout(
        title="Training curves", xaxis={"title": title, "dtick": 1, "range": [0.5, epochs_run + 0.5]},
        yaxis={"title": "loss"},
        yaxis2={"title": "AUC", "overlaying": "y", "side": "right", "range": [0.5, 1.0]},
        **{**_LAYOUT, "height": 420, "margin": {**_LAYOUT["margin"], "r": 60, "b": 110}}, legend=_LEGEND_BELOW,
    )  # fmt: skip
    return fig


def site_projection_figure(picture: dict[str, Any], class_names: Sequence[str]) -> go.Figure:
    """Where a site's images fall against the reference (``site.ShiftTest.picture``): x runs from
    the normal to the pneumonia class mean, y along the direction in which the site departs."""
    reference = np.asarray(picture["reference"])
    labels = np.asarray(picture["reference_labels"])
    site = np.asarray(picture["site"])
    fig = go.Figure()
    for label, colour in ((0, "#4c9a2a"), (1, "#c0392b")):
        points = reference[labels == label]
        fig.add_trace(
            go.Scatter(
                x=points[:, 0], y=points[:, 1], mode="markers", name=f"reference {class_names[label]}",
                marker={"color": colour, "size": 5, "opacity": 0.35},
            )
        )  # fmt: skip
    fig.add_trace(
        go.Scatter(
            x=site[:, 0], y=site[:, 1], mode="markers", name="this site",
            marker={"color": "#1f4e9c", "size": 7, "symbol": "x"},
        )
    )  # fmt: skip
    fig.update_layout(
        title="Site images against the reference",
        xaxis={"title": f"{class_names[0]} -> {class_names[1]} (class axis)"},
        yaxis={"title": "direction of the site's difference"},
        legend={"orientation": "h", "y": -0.25},
        **_LAYOUT,
    )
    return fig


def atypicality_figure(reference: Sequence[float], site: Sequence[float]) -> go.Figure:
    """Histograms of atypicality (distance to the nearer reference class), reference vs site."""
    fig = go.Figure()
    for values, name, colour in ((reference, "reference (validation)", "#9a9a9a"), (site, "this site", "#1f4e9c")):
        fig.add_trace(
            go.Histogram(
                x=list(values), name=name, histnorm="probability", opacity=0.6, nbinsx=30, marker={"color": colour}
            )
        )
    fig.update_layout(
        title="Atypicality", barmode="overlay", xaxis={"title": "distance to the nearer reference class"},
        yaxis={"title": "share of images"}, legend={"orientation": "h", "y": -0.25}, **_LAYOUT,
    )  # fmt: skip
    return fig


def learning_curve_figure(points: Sequence[dict[str, Any]]) -> go.Figure:
    """Out-of-fold accuracy, sensitivity and specificity against the number of site images used."""
    fig = go.Figure()
    images = [p["images"] for p in points]
    for key in ("accuracy", "sensitivity", "specificity"):
        fig.add_trace(go.Scatter(x=images, y=[p[key] for p in points], mode="lines+markers", name=key))
    fig.update_layout(
        title="Learning curve (site-adapted, out of fold)", xaxis={"title": "site images used", "type": "log"},
        yaxis={"title": "share", "range": [0.5, 1.0]}, legend={"orientation": "h", "y": -0.25}, **_LAYOUT,
    )  # fmt: skip
    return fig

"""Evaluation: test-set confusion matrix, ROC, PR, calibration and metrics, from stored predictions."""

import streamlit as st

import ui
from pneumo_core import api
from pneumo_core.api import plots

st.title("Evaluation")
names = api.registry.model_names()
if not names:
    st.error("No readable model in models/.")
    st.stop()
left, right = st.columns(2)
name = left.selectbox(
    "Model", names, index=names.index(ui.selected_model()) if ui.selected_model() in names else 0, key="eval_model"
)
compare = right.selectbox("Compare with", ["(none)", *[n for n in names if n != name]], key="eval_compare")

primary = api.load_test_predictions(name)
if primary is None:
    st.warning(f"{name} has no stored test-set predictions.")
    st.stop()
st.caption(primary.description)
models = {name: primary}
if compare != "(none)" and (other := api.load_test_predictions(compare)) is not None:
    models[compare] = other
    st.caption(other.description)

st.subheader("Metrics at each model's frozen operating threshold (95% bootstrap CIs)")
st.dataframe(api.metrics_by_row(api.metric_table(models)), hide_index=True, width="stretch")


bands = {n: api.roc_band(m.y_true, m.y_prob) for n, m in models.items()}  # once per page run, not per slider move


@st.fragment
def threshold_explorer() -> None:
    """The slider reruns this fragment only."""
    threshold = st.slider(
        "Threshold (explore; the model's frozen operating threshold is the default)",
        0.001, 0.999, float(round(primary.threshold, 3)), 0.001, format="%.3f", key="eval_threshold",
    )  # fmt: skip
    at = api.threshold_metrics(primary.y_true, primary.y_prob, threshold=threshold)
    a, b, c, d = st.columns(4)
    a.metric("Sensitivity", api.percent(at["sensitivity"]))
    b.metric("Specificity", api.percent(at["specificity"]))
    c.metric("Accuracy", api.percent(at["accuracy"]))
    d.metric("Precision", api.percent(at["precision"]))
    col1, col2 = st.columns(2)
    col1.plotly_chart(
        plots.confusion_matrix_figure(
            at["confusion"], primary.class_names, f"Confusion matrix at {threshold:.3f} (row shares, 95% CI)"
        ),
        key="eval_cm",
    )
    curves = {n: (m.y_true, m.y_prob) for n, m in models.items()}
    frozen = {n: plots.operating_point(m.y_true, m.y_prob, m.threshold) for n, m in models.items()}
    marker = plots.operating_point(primary.y_true, primary.y_prob, threshold)
    col2.plotly_chart(plots.roc_figure(curves, frozen, marker, bands), key="eval_roc")
    gallery(threshold)


def gallery(threshold: float) -> None:
    """The test images misclassified at the slider's threshold, with their Grad-CAM."""
    data_dir = api.data_dir()
    with st.expander(f"Misclassified test images at {threshold:.3f}, with Grad-CAM", expanded=False):
        if not primary.on_official_test_set:
            st.info(f"{name}'s predictions are of a site's images, not the dataset's test set: no gallery.")
        elif data_dir is None:
            st.info("Set PNEUMO_DATA to the dataset folder to see the misclassified images.")
        elif st.toggle("Show (runs the model on up to 8 images)", key="eval_gallery"):
            clf = ui.classifier(name)
            columns = st.columns(4)
            for i, item in enumerate(api.misclassified(primary, data_dir, clf, limit=8, threshold=threshold)):
                columns[i % 4].image(item.image, caption=item.caption, width="stretch")


threshold_explorer()
curves = {n: (m.y_true, m.y_prob) for n, m in models.items()}
col1, col2 = st.columns(2)
col1.plotly_chart(plots.pr_figure(curves), key="eval_pr")
col2.plotly_chart(plots.calibration_figure(curves), key="eval_calibration")
if primary.history:
    st.plotly_chart(plots.training_curves_figure(primary.history, primary.member_epochs), key="eval_history")

"""Retrain: launch a small training run, watch it live, cancel it, promote the result."""

import streamlit as st

from pneumo_core import api
from pneumo_core.api import jobs, plots, registry

st.title("Retrain")
st.caption(
    "A small run on a subset of the training set. It runs in its own process: leaving this page does not stop it."
)
data_dir = api.data_dir()

with st.form("retrain_form"):
    a, b, c = st.columns(3)
    subset = a.number_input("Training images (subset)", 100, 5000, 1500, 100, key="rt_subset")
    epochs = b.number_input("Epochs", 1, 30, 4, key="rt_epochs")
    image_size = c.select_slider("Image size (px)", [64, 96, 128, 160, 192, 224], 128, key="rt_size")
    learning_rate = a.select_slider("Learning rate", [3e-4, 1e-3, 2e-3, 3e-3], 2e-3, key="rt_lr")
    augment = b.toggle("Augmentation", True, key="rt_augment")
    start = st.form_submit_button("Start training", disabled=data_dir is None)
if data_dir is None:
    st.info("Retraining needs the dataset: set PNEUMO_DATA to the chest_xray folder and restart the app.")
if start:
    config = api.TrainingConfig(
        epochs=int(epochs),
        train_subset=int(subset),
        image_size=int(image_size),
        learning_rate=float(learning_rate),
        augment=augment,
    )
    try:
        st.session_state["rt_run"] = jobs.start_run(config, data_dir)
    except jobs.RunRefused as refusal:
        st.error(str(refusal))

run_id = st.session_state.get("rt_run") or jobs.active_run() or next((r.run_id for r in jobs.list_runs()), None)


@st.fragment(run_every=1.0)
def live(run_id: str) -> None:
    """Polls the run's event file every second; only this fragment reruns."""
    status = jobs.run_status(run_id)
    st.subheader(f"Run {run_id}: {status.state}")
    if status.state == "running":
        eta = f", about {status.eta_s / 60:.1f} min left" if status.eta_s else ""
        step = (
            f"epoch {status.epoch}/{status.epochs}, step {status.step}/{status.steps}"
            if status.epochs
            else status.message
        )
        st.progress(min(1.0, status.progress), text=f"{step}{eta}")
        if st.button("Cancel run", key="rt_cancel", type="primary"):
            jobs.cancel_run(run_id)
            st.rerun()
    elif status.state == "done":
        st.success("Finished.")
    else:
        st.error(f"Run {status.state}: {status.message}. The default model was not changed.")
    if status.history:
        st.plotly_chart(plots.training_curves_figure(status.history), key="rt_curves")
    if status.state == "running":
        st.session_state["rt_was_running"] = True
    elif st.session_state.pop("rt_was_running", False):
        st.rerun()  # the whole page: show the comparison once the run has ended


if run_id:
    live(run_id)
    status = jobs.run_status(run_id)
    if status.state == "done" and (results := api.load_test_predictions(run_id)):
        default = registry.default_name()
        compared = {run_id: results, **({default: d} if (d := api.load_test_predictions(default)) else {})}
        st.dataframe(
            api.metric_table(compared, "validation") + api.metric_table(compared, "test"),
            hide_index=True,
            width="stretch",
        )
        if run_id != default and st.button(f"Make {run_id} the default model", key="rt_promote"):
            registry.set_default(run_id)
            st.success(f"{run_id} is now the default model.")

with st.expander("Past runs"):
    st.dataframe(jobs.runs_table(), hide_index=True, width="stretch")

"""Retrain: launch a small training run, watch it live, cancel it, promote the result."""

import streamlit as st

import ui
from pneumo_core import api
from pneumo_core.api import jobs, plots, registry

st.title("Retrain")
mode = st.radio(
    "What to do", ["Retrain on the dataset", "Adapt to a new site"], horizontal=True, key="rt_mode",
    help="Adapting learns a site's own labelled X-rays on top of the selected model, scored by patient-grouped "
    "cross-validation. Check the site first with its unlabelled images (Site check page).",
)  # fmt: skip


@st.fragment(run_every=1.0)
def follow_adaptation(job: api.AdaptJob) -> None:
    """Progress of an adaptation, with Cancel; its figures, learning curve and "make default" once done."""
    name = job.out.name
    if job.state == "running":
        st.progress(min(1.0, job.progress), text=f"Adapting: {job.message}")
        if st.button("Cancel", key="ad_cancel"):
            job.cancel()
        return
    if job.state == "cancelled":
        st.info("Adaptation cancelled: no model was registered.")
        return
    if job.state == "failed":
        st.error(f"Adaptation stopped: {api.plain(job.message)}")
        return
    metadata = job.result.metadata
    st.success(f"{name} is registered. Its figures are site-adapted, out of fold: each image was scored by a model "
               "fitted without that patient.")  # fmt: skip
    st.dataframe(api.adapted_figures(metadata), hide_index=True, width="stretch")
    st.plotly_chart(plots.learning_curve_figure(metadata["adaptation"]["learning_curve"]), key="ad_curve")
    rejected = metadata["adaptation"]["rejected"]
    if rejected:
        with st.expander(f"{api.count(len(rejected), 'file')} left out"):
            st.dataframe(rejected, hide_index=True, width="stretch")
    ui.promote(name, "ad")


if mode == "Adapt to a new site":
    base = ui.classifier()
    st.caption(
        f"Adapts {base.name} to a site: give a zip holding NORMAL/ and PNEUMONIA/ folders of the site's X-rays, or "
        "such a folder on the server. The images stay in memory; the new model folder holds their embeddings."
    )
    with st.form("adapt_form"):
        labelled = st.file_uploader("Labelled site images (zip)", type=["zip"], key="ad_zip")
        folder = st.text_input("...or a folder on the server", key="ad_folder")
        folds = st.number_input("Cross-validation folds (grouped by patient)", 3, 10, 5, key="ad_folds")
        go = st.form_submit_button("Adapt")
    if go:
        try:
            if labelled is not None:
                images = api.from_archive(api.gather_uploads([(labelled.name, labelled.getvalue())]))
            else:
                images = api.from_folder(folder)
            out = api.registry.models_dir() / api.new_model_name(base.name)
            st.session_state["ad_job"] = api.AdaptJob(
                base, images, out, folds=int(folds), source=labelled.name if labelled else folder
            )
        except (api.SiteDataError, api.InputError) as problem:
            st.error(api.plain(problem))
    job = st.session_state.get("ad_job")
    if job is not None:
        follow_adaptation(job)
    st.stop()

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
        st.error(api.plain(refusal))

run_id = st.session_state.get("rt_run") or jobs.active_run() or next((r.run_id for r in jobs.list_runs()), None)


@st.fragment(run_every=1.0)
def live(run_id: str) -> None:
    """Polls the run's event file every second; only this fragment reruns."""
    status = jobs.run_status(run_id)
    st.subheader(f"Run {run_id}: {status.state}")
    if status.state == "running":
        eta = f", about {status.eta_s / 60:.1f} min left" if status.eta_s else ""
        st.progress(min(1.0, status.progress), text=f"{status.message or 'Starting'}{eta}")
        if st.button("Cancel run", key="rt_cancel", type="primary"):
            jobs.cancel_run(run_id)
            st.rerun()
    elif status.state == "done":
        st.success("Finished.")
    elif status.state == "cancelled":  # asked for: not an error
        st.info("Cancelled: no model was registered, and the default model was not changed.")
    else:
        st.error(f"Run {status.state}: {api.plain(status.message)}. The default model was not changed.")
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
        validation, test = api.metric_table(compared, "validation"), api.metric_table(compared, "test")
        st.dataframe(api.metrics_by_row(validation + test), hide_index=True, width="stretch")
        st.caption(api.comparison_note(validation, test))
        ui.promote(run_id, "rt")

with st.expander("Past runs"):
    st.dataframe(jobs.runs_table(), hide_index=True, width="stretch")

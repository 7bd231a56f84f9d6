"""Diagnose: upload chest X-rays, get verdicts with Grad-CAM, a worklist and reports."""

from dataclasses import replace

import streamlit as st

import ui
from pneumo_core import api

st.title("Diagnose")
ui.disclaimer()
clf = ui.classifier()

uploads = st.file_uploader(
    f"Chest X-rays: JPEG, PNG or DICOM (.dcm or no extension), up to {api.MAX_UPLOAD_MB} MB each",
    accept_multiple_files=True,
    key="uploads",
    help="Upload the whole radiograph as acquired, not a cropped or zoomed-in part: the model calls many tightly "
    "framed normal chests pneumonia (the model card's shortcut check).",
)
files = [(u.name, u.getvalue()) for u in uploads or []]

examples = api.example_images(api.data_dir())
if examples and not files:
    choice = st.selectbox("...or try an example from the dataset", ["(none)", *examples], key="example")
    if choice != "(none)":
        files = [(choice, examples[choice].read_bytes())]

setting = api.prevalence_setting(clf)
prevalence = None
if setting is not None:
    chosen = st.sidebar.slider(
        "Pneumonia prevalence in your setting (%)", 1, 99, setting.default_percent, key="prevalence", help=setting.help
    )
    st.sidebar.caption(setting.caption)
    prevalence = setting.prevalence(chosen)

if not files:
    st.info("Upload one or more images to get a verdict.")
    st.stop()


def at_setting(result: api.Analysis | api.InputError) -> api.Analysis | api.InputError:
    """The analysis with its probability stated for the prevalence chosen in the sidebar."""
    if isinstance(result, api.InputError) or setting is None or prevalence == setting.calibrated_for:
        return result
    return replace(result, prediction=result.prediction.at_prevalence(prevalence))


@st.fragment
def show(index: int, name: str, data: bytes) -> None:
    """One image; the opacity slider reruns only this fragment, never the model (the images come
    from the session's cache, or are made again if they were dropped while unused)."""
    opacity = st.slider("Heatmap opacity", 0.0, 1.0, 0.4, 0.05, key=f"opacity_{index}")
    image, heatmap = ui.screen_images_cached(data, opacity)
    left, right = st.columns(2)
    left.image(image, caption="Image as read", width="stretch")
    right.image(heatmap, caption="Grad-CAM: regions that drove the verdict", width="stretch")
    owner = ui.session_owner()

    def report() -> bytes:  # built on click only
        analysis = at_setting(ui.analyze_cached(data, clf, owner))
        return api.report_png(analysis, model_name=clf.name, source_name=name, opacity=opacity)

    st.download_button(
        "Download report (PNG)", report, f"{name}_report.png", "image/png", key=f"report_{index}", on_click="ignore"
    )


def show_results(files: list[tuple[str, bytes]]) -> None:
    """Verdicts, the worklist and each image. Analyses stay local here: what a page's globals hold
    lives on with the session's fragments after the run, and a closed tab's session lingers."""
    bar = st.progress(0.0, text="Reading images...") if len(files) > 1 else None
    results = []
    for done, (name, data) in enumerate(files, start=1):
        results.append((name, at_setting(ui.analyze_cached(data))))
        if bar is not None:
            bar.progress(done / len(files), text=f"Read {done} of {len(files)} images")
    if bar is not None:
        bar.empty()
    rows = api.worklist_rows(results)
    if len(files) >= api.SITE_CHECK_WITH_DIAGNOSE_FROM:
        check = ui.site_check_cached(files, results)  # from the analyses: the network runs once per image
        if isinstance(check, api.SiteCheck):
            st.info(check.summary())
            st.page_link("app_pages/site.py", label="Site check: the details")
    if len(files) > 1:
        st.subheader("Worklist (highest probability first)")
        ui.worklist(rows)
        st.download_button(
            "Download results (CSV)", api.worklist_csv(rows), "pneumonia_worklist.csv", "text/csv", key="csv"
        )
    for index, ((name, result), (_, data)) in enumerate(zip(results, files, strict=True)):
        st.divider()
        if isinstance(result, api.InputError):
            st.subheader(api.plain(name))
            st.error(api.plain(result.message))
            continue
        p = result.prediction
        st.subheader(f"{api.plain(name)}: :{api.verdict_color(p.label)}[{p.label}]")
        a, b, c = st.columns(3)
        a.metric(
            "Probability of pneumonia", api.probability_percent(p.probability_pneumonia),
            help="Calibrated on held-out training patients"
            + (f", stated for a prevalence of {api.percent(p.prevalence, 0)}" if p.prevalence else "")
            + ". On the official test set it runs high for normal images.",
        )  # fmt: skip
        b.metric(
            "Operating threshold", api.percent(p.operating_threshold),
            help=f"PNEUMONIA at or above it. Chosen as the {clf.metadata.get('threshold_method', 'validation threshold')}.",
        )  # fmt: skip
        c.metric("Reading", p.band)
        st.caption("Image facts: " + api.plain(api.facts_line(p)))
        show(index, name, data)


show_results(files)

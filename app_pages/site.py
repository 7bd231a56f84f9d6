"""Site: do this site's X-rays look like the ones the model learned from? (unlabelled images)"""

import streamlit as st

import ui
from pneumo_core import api
from pneumo_core.api import plots

st.title("Site check")
ui.disclaimer()
st.markdown(
    "Before trusting the verdicts at a new site, or paying for labels, check whether its X-rays look like the "
    "images the model learned from. Give it unlabelled images from the site, as many as you have (at least "
    f"{api.SITE_MIN_IMAGES}; the more, the smaller a difference it can see: the model card gives its measured "
    "false-alarm and detection rates). A site that only sees more or "
    "less pneumonia is not flagged: the check separates *your patients are sicker* from *your images look "
    "different*."
)
clf = ui.classifier()

uploads = st.file_uploader(
    "Images from the site: JPEG, PNG, DICOM, or zip archives of them",
    accept_multiple_files=True,
    key="site_uploads",
)
folder = st.text_input("...or a folder on the server", key="site_folder", placeholder="/data/site-b/2026-11")
images: list = []
if uploads:
    images = api.gather_uploads([(u.name, u.getvalue()) for u in uploads])
elif folder:
    try:
        images, skipped = api.folder_images(folder)
        if skipped:
            st.caption(api.plain(skipped))
    except api.InputError as error:
        st.error(api.plain(error.message))

if images:
    result = ui.site_check_cached(images)
elif (previous := st.session_state.get("site_check")) is not None:
    st.caption("The check of the images you uploaded on Diagnose:")
    result = previous["check"]
else:
    st.info("Upload images, a zip of them, or name a folder on the server to run the check.")
    st.stop()

if isinstance(result, str):
    st.error(api.plain(result))
    st.stop()
if result.model != clf.name:
    st.caption(f"Checked against model {result.model}.")

if result.too_small:
    st.warning(result.summary())
elif result.shifted:
    st.error(result.summary())
else:
    st.success(result.summary())

if not result.too_small:
    a, b, c = st.columns(3)
    by_class = result.p_value_by_class
    a.metric(
        "p-value (appearance differs)", f"{result.p_value:.2g}", help="Below 0.05: flagged as different. "
        f"The images read as normal alone: p = {by_class['normal']:.2g}; as pneumonia: {by_class['pneumonia']:.2g}.",
    )  # fmt: skip
    low, high = result.effect["ci95"]
    b.metric(
        "Domain-classifier AUC", f"{result.effect['value']:.2f}", help=f"95% CI {low:.2f}-{high:.2f}; 0.5: "
        "the site's images cannot be told from the reference's (after matching the class mix)."
    )  # fmt: skip
    low, high = result.estimated_prevalence["ci95"]
    c.metric(
        "Estimated pneumonia share", api.percent(result.estimated_prevalence["value"], 0),
        help=f"95% CI {api.percent(low, 0)}-{api.percent(high, 0)}. Assumes the images look like the reference: "
        "biased when they do not.",
    )  # fmt: skip
    left, right = st.columns(2)
    left.plotly_chart(plots.site_projection_figure(result.picture, api.CLASS_NAMES), key="site_projection")
    right.plotly_chart(
        plots.atypicality_figure(result.reference_atypicality, result.atypicality), key="site_atypicality"
    )
    st.subheader("Most atypical images")
    sources = (st.session_state.get("site_check") or {}).get("atypical", {})
    columns = st.columns(5)
    for index, item in enumerate(result.most_atypical):
        pixels = api.thumbnail(sources[item["name"]]) if item["name"] in sources else None
        column = columns[index % 5]
        if pixels is not None:
            column.image(pixels, clamp=True)
        column.text(f"{item['name']}\n{item['atypicality']:.1f} (beyond {item['reference_percentile']:.0f}%)")

if result.rejected:
    with st.expander(f"{api.count(len(result.rejected), 'file')} left out"):
        st.dataframe(
            [{"file": r["name"], "reason": r["reason"]} for r in result.rejected], hide_index=True, width="stretch"
        )

"""Home: what this tool is, and the selected model's card."""

import streamlit as st

import ui
from pneumo_core import api

st.title("Pneumonia chest X-ray assistant")
st.markdown(
    "Drop a frontal chest X-ray (JPEG, PNG or DICOM) on **Diagnose** for a NORMAL / PNEUMONIA verdict with a "
    "calibrated probability and a Grad-CAM heatmap. **Evaluation** shows how the model does on the official test "
    "set. **Site check** says whether your site's unlabelled X-rays look like the ones the model learned from. "
    "**Retrain** runs a small training job you can watch, or adapts the model to your site's own labelled X-rays."
)
ui.disclaimer()
clf = ui.classifier()
with st.expander(f"Model card: {clf.name}", expanded=True):
    st.markdown(api.model_card(clf))

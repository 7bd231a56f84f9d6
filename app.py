"""Pneumonia chest X-ray assistant: the router and the frame around every page.

streamlit run app.py
"""

from pathlib import Path

import streamlit as st

import ui
from pneumo_core import api

# A local icon: a ":material/...:" page icon is fetched from Google's font host, and the app must work offline.
ICON = Path(__file__).parent / "app_pages" / "icon.png"
st.set_page_config(page_title="Pneumonia X-ray assistant", page_icon=str(ICON), layout="wide")

pages = [
    st.Page("app_pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("app_pages/diagnose.py", title="Diagnose", icon=":material/radiology:"),
    st.Page("app_pages/evaluation.py", title="Evaluation", icon=":material/monitoring:"),
    st.Page("app_pages/site.py", title="Site check", icon=":material/travel_explore:"),
    st.Page("app_pages/retrain.py", title="Retrain", icon=":material/model_training:"),
]
page = st.navigation(pages)
ui.model_selector()
st.sidebar.caption(api.DISCLAIMER)
page.run()

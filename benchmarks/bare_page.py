"""A bare Streamlit page shaped like Diagnose, for the load benchmark's floor on this machine:

    python benchmarks/bench_load.py --app benchmarks/bare_page.py --soak 0

Per upload it shows only what ``bench_load`` waits for (a heading naming the file, and two small
images, the second captioned as the Grad-CAM), with no model, sidebar, metrics or worklist. What
ten browsers and this page cost on the machine is a floor for any page the benchmark drives.
"""

import numpy as np
import streamlit as st

IMAGE = np.full((64, 64), 128, np.uint8)


def diagnose() -> None:
    st.title("Diagnose")
    for upload in st.file_uploader("Chest X-rays", accept_multiple_files=True) or []:
        upload.getvalue()
        st.subheader(f"{upload.name}: NORMAL")
        left, right = st.columns(2)
        left.image(IMAGE, caption="Image as read")
        right.image(IMAGE, caption="Grad-CAM: regions that drove the verdict")


st.navigation([st.Page(diagnose, title="Diagnose", url_path="diagnose", default=True)]).run()

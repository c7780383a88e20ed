"""MedModels web app: upload a scan and see what MedModels reads from it.

Thin by design: it calls :mod:`medmodels` and lays out what it returns.
"""

from __future__ import annotations

import streamlit as st

from medmodels import MedModelsError, load_scans, load_settings
from ui.widgets import load_report, research_notice, scan_facts, slice_image

st.set_page_config(page_title="MedModels", page_icon="🩻", layout="wide")
st.title("MedModels")
research_notice()
st.write(
    "Drop DICOM files, a zipped series, or a NIfTI/PNG/JPEG image. Everything that could "
    "identify the patient is removed while reading; nothing you upload is stored."
)

uploads = st.file_uploader(
    "Scan files", accept_multiple_files=True, key="uploads", help="DICOM, zip, NIfTI, PNG, JPEG"
)
if uploads:
    try:
        result = load_scans(uploads, settings=load_settings())
    except MedModelsError as exc:
        st.error(str(exc))
        st.stop()
    load_report(result)
    if result.scans:
        labels = [f"{i + 1}. {s.describe()}" for i, s in enumerate(result.scans)]
        choice = labels[0]
        if len(labels) > 1:
            choice = st.radio("Several scans were found; choose one", labels, key="scan_choice")
        scan = result.scans[labels.index(choice)]
        scan_facts(scan)
        z = scan.shape[0]
        index = st.slider("Slice", 1, z, (z + 1) // 2, key="slice") - 1 if z > 1 else 0
        st.image(slice_image(scan, index), caption=f"Slice {index + 1} of {z}", width=512)

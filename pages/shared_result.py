"""A shared result (``?share=<token>``): read-only. Share links need the prediction history."""

from __future__ import annotations

import streamlit as st

from ui import widgets

st.title("Shared result")
widgets.research_notice()
st.info("Share links are not available yet in this version of MedModels.")

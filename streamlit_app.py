"""MedModels web app: try a model on your own scan, browse model versions, review the prediction
history, share a result. Research use only — not for diagnosis.

Thin by design: pages call :mod:`medmodels` and lay out what it returns; Streamlit helpers live
in ``ui/``. Run with ``make run`` (``streamlit run streamlit_app.py``).

The page scripts live in ``app_pages/``, not ``pages/``: Streamlit turns on its automatic
file-based navigation whenever a ``pages/`` folder sits next to the entry script, which shows a
second, raw page list in the sidebar on deep links, beside the one ``st.navigation`` builds.
"""

from __future__ import annotations

import logging

import streamlit as st

from medmodels import MedModelsError
from ui import links, resources, widgets

st.set_page_config(page_title="MedModels", page_icon="🩻", layout="wide")
log = logging.getLogger("medmodels.app")

try_page = st.Page(
    "app_pages/try_model.py", title="Try a model", icon=":material/biotech:", default=True
)
models_page = st.Page(
    "app_pages/models.py", title="Models", icon=":material/inventory_2:", url_path="models"
)
history_page = st.Page(
    "app_pages/history.py", title="History", icon=":material/history:", url_path="history"
)
hardware_page = st.Page(
    "app_pages/hardware_cost.py",
    title="Hardware & cost",
    icon=":material/speed:",
    url_path="hardware_cost",
)
shared_page = st.Page(
    "app_pages/shared_result.py",
    title="Shared result",
    icon=":material/link:",
    url_path="shared",
    visibility="hidden",
)

try:
    resources.settings()
except MedModelsError as exc:  # a bad MEDMODELS_* variable: say which, and stop
    st.title("MedModels")
    widgets.research_notice()
    widgets.show_error(exc)
    st.stop()

if st.query_params.get("share"):
    # A shared link shows the shared result and nothing else: no upload, no history.
    page = st.navigation([shared_page], position="hidden")
else:
    links.restore()
    page = st.navigation([try_page, models_page, history_page, hardware_page, shared_page])
    with st.sidebar:
        st.caption(widgets.RESEARCH_NOTICE)

try:
    page.run()
except MedModelsError as exc:
    widgets.show_error(exc)
except Exception:  # a bug: log it for the operator, show the user a plain message
    log.exception("Unexpected error on page %s", page.title)
    st.error(
        "Something went wrong on this page. The details were written to the server log; "
        "reload the page to start again.",
        icon=":material/error:",
    )

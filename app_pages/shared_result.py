"""A shared result (``?share=<token>``): one logged prediction, read-only — its de-identified
images, its numbers and the model card as it was when the link was made. Nothing else: no
upload, no history. A link that is expired, revoked, changed or unknown shows why and stops."""

from __future__ import annotations

import streamlit as st

from medmodels import HistoryError, MedModelsError
from medmodels.history import get_prediction
from medmodels.share import ShareLinkError
from ui import records, resources, widgets

st.title("Shared result")
widgets.research_notice()
token = st.query_params.get("share") or ""
try:
    share = resources.shares().resolve(token)
    try:
        record = get_prediction(resources.history(), share.prediction_id)
    except HistoryError:  # the prediction was deleted after the link was made
        raise ShareLinkError("unknown") from None
except MedModelsError as exc:
    widgets.show_error(exc)
    st.stop()

st.caption(
    f"Shared read-only until {share.expires_at:%Y-%m-%d %H:%M} UTC. The images were "
    "de-identified when the scan was read; nothing else from the scan was kept."
)
records.artifacts(record, key="shared")
records.result_summary(record)
for note in record.get("warnings") or []:
    st.info(note)
if share.card_markdown:
    with st.expander("Model card (as it was when the link was made)", icon=":material/assignment:"):
        st.markdown(share.card_markdown)

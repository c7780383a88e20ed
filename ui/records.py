"""Layout for logged predictions: the feedback form, share links, and a logged prediction's
result as read back from the history (used by Try, History and the shared view)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import streamlit as st

from medmodels import MedModelsError
from medmodels.history import FEEDBACK_REASONS, VERDICTS, add_feedback
from medmodels.share import ShareLinks, default_days
from ui import resources, widgets

VERDICT_LABELS = {"agree": "Agree", "disagree": "Disagree", "unsure": "Unsure"}
NO_REASON = "(no reason)"


def feedback_form(prediction_id: str, labels: Sequence[str], *, key: str) -> None:
    """Agree / disagree / unsure, a reason from the closed list, an optional note and (for a
    classifier, whose ``labels`` are given) the correct label; saved to the history."""
    with st.form(f"{key}_form", border=True, clear_on_submit=True):
        st.markdown("**Is this result right?** Your verdict is saved with the prediction.")
        verdict = st.radio(
            "Verdict",
            list(VERDICTS),
            format_func=VERDICT_LABELS.get,
            horizontal=True,
            key=f"{key}_verdict",
            index=None,
        )
        reasons = [NO_REASON, *FEEDBACK_REASONS]
        reason = st.selectbox(
            "Reason",
            reasons,
            key=f"{key}_reason",
            format_func=lambda r: r if r == NO_REASON else f"{r}: {FEEDBACK_REASONS[r]}",
        )
        corrected = None
        if labels:
            corrected = st.selectbox(
                "Correct label (optional)",
                ["", *labels],
                key=f"{key}_corrected",
                format_func=lambda x: x or "(not given)",
            )
        note = st.text_area(
            "Note (optional; never write anything that identifies the patient)",
            key=f"{key}_note",
            max_chars=1000,
        )
        if not st.form_submit_button("Save feedback", type="primary"):
            return
    if verdict is None:
        st.error("Choose agree, disagree or unsure.")
        return
    try:
        add_feedback(
            resources.history(),
            prediction_id,
            verdict,
            reason=None if reason == NO_REASON else reason,
            corrected_label=corrected or None,
            note=note or None,
        )
    except MedModelsError as exc:
        widgets.show_error(exc)
        return
    st.success(f"Feedback saved: {VERDICT_LABELS[verdict]}. Thank you.", icon=":material/check:")


def feedback_rows(feedback: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Earlier verdicts, newest first."""
    return [
        {
            "When (UTC)": f["created_at"].strftime("%Y-%m-%d %H:%M") if f.get("created_at") else "",
            "Verdict": f.get("verdict"),
            "Reason": f.get("reason") or "",
            "Correct label": f.get("corrected_label") or "",
            "Note": f.get("note") or "",
        }
        for f in reversed(list(feedback))
    ]


def share_url(token: str) -> str:
    """The link to open a shared result: the app's own address with ``?share=``."""
    url = None
    try:
        url = st.context.url
    except Exception:  # no browser session (tests, bare mode)
        url = None
    base_path = str(st.get_option("server.baseUrlPath") or "").strip("/")
    if url:
        parts = urlsplit(url)
        root = f"{parts.scheme}://{parts.netloc}/" + (f"{base_path}/" if base_path else "")
        return f"{root}?share={token}"
    return f"/{base_path + '/' if base_path else ''}?share={token}"


def share_panel(prediction_id: str, card_markdown: str | None, *, key: str) -> None:
    """Create a read-only link to this prediction; lists the links made for it."""
    links: ShareLinks = resources.shares()
    days = default_days(resources.settings())
    c1, c2 = st.columns([1, 2])
    if c1.button("Create a share link", key=f"{key}_create", icon=":material/share:"):
        try:
            share, token = links.create(prediction_id, days=days, card_markdown=card_markdown)
        except MedModelsError as exc:
            widgets.show_error(exc)
        else:
            st.session_state[f"{key}_token"] = (prediction_id, token, share.expires_at)
    c2.caption(
        f"Anyone with the link can see this result (the de-identified images, the numbers "
        f"and the model card) for {days:g} days, until it is revoked on the History page. "
        "They cannot see anything else."
    )
    made = st.session_state.get(f"{key}_token")
    if made and made[0] == prediction_id:
        _, token, expires = made
        st.code(share_url(token), language=None)
        st.caption(f"Expires {expires:%Y-%m-%d %H:%M} UTC.")


def artifacts(record: Mapping[str, Any], *, key: str) -> None:
    """The de-identified images saved with the prediction."""
    if record.get("status") != "ok":
        return  # a refused input or failed run has no images
    files: Mapping[str, Path] = record.get("artifacts") or {}
    overlay = files.get("key_slice_overlay.png")
    plain = files.get("key_slice.png")
    shown = [(p, c) for p, c in ((overlay, "Key slice with the result"), (plain, "Key slice")) if p]
    if not shown:
        st.caption("No images were saved with this prediction (artifacts off or expired).")
        return
    cols = st.columns(len(shown))
    for col, (path, caption) in zip(cols, shown, strict=True):
        try:
            col.image(path.read_bytes(), caption=caption, width="stretch")
        except OSError:
            col.caption(f"{caption}: no longer available.")


def result_summary(record: Mapping[str, Any]) -> None:
    """The numbers of a logged prediction: volumes or probabilities, decision, version, time."""
    labels = [lab for lab in (record.get("labels") or []) if lab]
    if record.get("task") == "classification":
        rows = [
            {"Label": lab["name"], "Probability": round(float(lab["probability"] or 0), 4)}
            for lab in labels
        ]
        if rows:
            st.dataframe(rows, hide_index=True)
        if record.get("decision") is not None and labels:
            positive = labels[-1]["name"]
            verdict = positive if record["decision"] else f"not {positive}"
            st.markdown(f"Decision at threshold {record.get('threshold')}: **{verdict}**")
    else:
        rows = [
            {
                "Label": lab["name"],
                "Volume (mL)": None if lab.get("volume_ml") is None else round(lab["volume_ml"], 1),
                "Voxels": lab.get("voxels"),
            }
            for lab in labels
            if lab.get("idx")
        ]
        if rows:
            st.dataframe(rows, hide_index=True)
    sha = record.get("model_sha256") or ""
    when = record.get("created_at")
    facts = [f"{widgets.code(record.get('model'))} **{widgets.md(record.get('version'))}**"]
    if record.get("alias"):
        facts[0] += f" via {widgets.code(record['alias'])}"
    if sha:
        facts.append(f"model SHA-256 {widgets.code(sha[:12])}")
    if record.get("provider"):
        facts.append(widgets.md(record["provider"]))
    if when:
        facts.append(f"{when:%Y-%m-%d %H:%M} UTC")
    st.markdown(" · ".join(facts))
    z, y, x = (record.get(f"shape_{a}") for a in "zyx")
    size = None
    if z and y and x:
        size = f"{z} slices of {x}×{y}" if z > 1 else f"{x}×{y}"
    scan = " · ".join(str(v) for v in (record.get("modality"), record.get("kind"), size) if v)
    if scan:
        st.caption(f"Scan: {scan}")
    timings = {
        stage: record.get(f"{stage}_ms")
        for stage in ("load", "preprocess", "infer", "postprocess", "total")
        if record.get(f"{stage}_ms") is not None
    }
    if timings:
        st.caption(
            "Timings: "
            + ", ".join(
                f"{widgets.STAGES.get(k, k).lower()} {v:,.0f} ms" for k, v in timings.items()
            )
        )

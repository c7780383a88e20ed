"""History: every logged prediction with filters and paging; open one to see its images, result
and feedback without re-running; per-version statistics, charts and drift flags; exports; share
links and their revocation."""

from __future__ import annotations

import tempfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from medmodels import MedModelsError
from medmodels.history import (
    PSI_DRIFT,
    PSI_WATCH,
    Database,
    HistoryFilter,
    count,
    drift,
    export,
    get_prediction,
    recent,
    version_stats,
)
from ui import records, resources, widgets

ALL = "(all)"
PAGE_SIZE = 25
CHART_ROWS = 5000
MODALITIES = ["CT", "MR", "CR", "DX", "MG", "US", "XA", "PT", "NM", "OT"]


def _filters(db: Database) -> HistoryFilter:
    store = resources.store()
    models = store.models()
    c1, c2, c3 = st.columns([2, 1, 2])
    model = c1.selectbox("Model", [ALL, *models], key="history_model", persist_state="session")
    versions = store.versions(model) if model != ALL and model in models else []
    version = c2.selectbox(
        "Version", [ALL, *versions], key="history_version", persist_state="session"
    )
    today = datetime.now(UTC).date()
    dates = c3.date_input(
        "Date range (UTC)",
        value=(today - timedelta(days=90), today),
        key="history_dates",
        persist_state="session",
    )
    c1, c2, c3 = st.columns(3)
    status = c1.selectbox(
        "Status", [ALL, "ok", "rejected", "failed"], key="history_status", persist_state="session"
    )
    verdict = c2.selectbox(
        "Feedback",
        [ALL, "agree", "disagree", "unsure", "none"],
        key="history_verdict",
        format_func=lambda v: "no feedback yet" if v == "none" else v,
        persist_state="session",
    )
    modality = c3.selectbox(
        "Modality", [ALL, *MODALITIES], key="history_modality", persist_state="session"
    )
    since = until = None
    if isinstance(dates, tuple | list) and dates:
        since = dates[0]
        until = dates[1] if len(dates) > 1 else dates[0]
    elif isinstance(dates, date):
        since = until = dates

    def value(x: str) -> str | None:
        return None if x == ALL else x

    return HistoryFilter(
        model=value(model),
        version=value(version),
        since=since,
        until=until,
        status=value(status),
        verdict=value(verdict),
        modality=value(modality),
    )


def _result_text(row: dict[str, Any]) -> str:
    if row.get("status") != "ok":
        return f"{row.get('status')}: {row.get('reason_code') or ''}"
    if row.get("task") == "classification":
        p = row.get("top_probability")
        return f"{row.get('top_label')} ({p:.0%})" if p is not None else str(row.get("top_label"))
    labels = [lab for lab in row.get("labels") or [] if lab and lab.get("idx")]
    return ", ".join(
        f"{lab['name']} {lab['volume_ml']:,.0f} mL"
        for lab in labels
        if lab.get("volume_ml") is not None
    )


def _table(db: Database, filters: HistoryFilter) -> None:
    total = count(db, filters)
    pages = max(1, -(-total // PAGE_SIZE))
    st.caption(f"{total:,} prediction(s) match.")
    if total == 0:
        if count(db, HistoryFilter()) == 0:
            st.info(
                "No predictions yet. Run a model on the Try page: every result (and every "
                "refused upload) is recorded here, without anything that identifies the patient.",
                icon=":material/info:",
            )
        return
    page = 1
    if pages > 1:
        page = st.pagination(pages, key="history_page")
    rows = recent(db, filters, limit=PAGE_SIZE, offset=(min(page, pages) - 1) * PAGE_SIZE)
    table = pd.DataFrame(
        [
            {
                "When (UTC)": r["created_at"].strftime("%Y-%m-%d %H:%M:%S"),
                "Model": r["model"],
                "Version": r.get("version") or "",
                "Alias": r.get("alias") or "",
                "Status": r["status"],
                "Modality": r.get("modality") or "",
                "Result": _result_text(r),
                "Feedback": r.get("verdict") or "",
                "Total ms": None if r.get("total_ms") is None else round(r["total_ms"]),
                "Id": r["id"][:8],
            }
            for r in rows
        ]
    )
    event = st.dataframe(
        table,
        hide_index=True,
        key="history_table",
        on_select="rerun",
        selection_mode="single-row",
    )
    selected = list(getattr(getattr(event, "selection", None), "rows", []) or [])
    st.caption("Select a row to open it.")
    if selected and 0 <= selected[0] < len(rows):
        chosen = rows[selected[0]]["id"]
        # Open a row when the selection changes (a closed row stays closed while selected).
        if st.session_state.get("_history_selected") != chosen:
            st.session_state["_history_selected"] = chosen
            st.session_state["history_open"] = chosen
            st.query_params["prediction"] = chosen


def _detail(db: Database, prediction_id: str) -> None:
    try:
        record = get_prediction(db, prediction_id)
    except MedModelsError as exc:
        widgets.show_error(exc)
        return
    pid = record["id"]
    with st.container(border=True):
        c1, c2 = st.columns([4, 1])
        c1.subheader(f"Prediction {pid[:8]}")
        if c2.button("Close", key="history_close", icon=":material/close:"):
            st.session_state.pop("history_open", None)
            st.query_params.pop("prediction", None)
            st.rerun()
        if record.get("status") != "ok":
            st.warning(
                f"This input was {record['status']} ({record.get('reason_code') or 'no code'})."
            )
        records.artifacts(record, key=f"history_{pid}")
        records.result_summary(record)
        for note in record.get("warnings") or []:
            st.info(note)
        if record.get("feedback"):
            st.markdown("**Feedback so far** (the latest counts)")
            st.dataframe(records.feedback_rows(record["feedback"]), hide_index=True)
        if record.get("status") == "ok":
            labels = (
                [lab["name"] for lab in record.get("labels") or [] if lab]
                if record.get("task") == "classification"
                else []
            )
            records.feedback_form(pid, labels, key="history_feedback")
            card = None
            try:
                card = _card(str(record["model"]), str(record["version"]))
            except MedModelsError:
                card = None
            records.share_panel(pid, card, key="history_share")


def _card(model: str, version: str) -> str:
    from medmodels.store import render_card

    return render_card(resources.store().get(f"{model}@{version}").manifest)


def _histogram(frame: pd.DataFrame, column: str, bins: int = 12) -> pd.DataFrame | None:
    """Counts per bin (rows, indexed by the bin's lower edge) and version (columns)."""
    values = frame[[column, "version"]].dropna()
    if values.empty:
        return None
    edges = pd.cut(values[column], bins=min(bins, max(1, values[column].nunique())))
    table = values.groupby([edges, "version"], observed=False).size().unstack(fill_value=0)
    table.index = pd.Index([round(float(iv.left), 3) for iv in table.index], name=column)
    return table


def _stats(db: Database, filters: HistoryFilter) -> None:
    stats = version_stats(db, filters.model)
    if not stats:
        st.caption("No predictions yet.")
        return
    st.dataframe(
        [
            {
                "Model": s.model,
                "Version": s.version or "(none: input refused)",
                "Predictions": s.predictions,
                "Rejected": s.rejected,
                "Failed": s.failed,
                "Rejection rate": f"{s.rejection_rate:.0%}",
                "p50 total ms": None if s.p50_ms.get("total") is None else round(s.p50_ms["total"]),
                "p95 total ms": None if s.p95_ms.get("total") is None else round(s.p95_ms["total"]),
                "Rated": s.rated,
                "Agreement": None if s.agreement_rate is None else f"{s.agreement_rate:.0%}",
                "Mean output": None if s.mean_output is None else round(s.mean_output, 3),
                "First used": s.first_used.strftime("%Y-%m-%d") if s.first_used else "",
                "Last used": s.last_used.strftime("%Y-%m-%d") if s.last_used else "",
            }
            for s in stats
        ],
        hide_index=True,
        key="history_stats",
    )
    st.caption(
        "Agreement = agree / (agree + disagree) over the latest feedback per prediction. Mean "
        "output = the positive class's probability, or the foreground volume in mL."
    )
    rows = recent(db, filters, limit=CHART_ROWS)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return
    frame["version"] = frame["model"] + " " + frame["version"].fillna("?")
    frame["day"] = pd.to_datetime(frame["created_at"]).dt.tz_localize(None).dt.floor("D")
    if len(rows) == CHART_ROWS:
        st.caption(f"Charts show the latest {CHART_ROWS:,} predictions that match the filters.")
    st.markdown("**Predictions per day, per version**")
    per_day = frame.groupby(["day", "version"]).size().unstack(fill_value=0)
    st.bar_chart(per_day, x_label="day (UTC)", y_label="predictions")
    ok = frame[frame["status"] == "ok"]
    c1, c2 = st.columns(2)
    with c1:
        st.markdown("**Latency: total ms per prediction**")
        hist = _histogram(ok, "total_ms")
        if hist is not None:
            st.bar_chart(hist, x_label="total ms (bin start)", y_label="predictions")
    with c2:
        if filters.model is None:
            st.markdown("**Output distribution**")
            st.caption("Choose a model above: outputs of different models are not comparable.")
        else:
            unit = "probability" if (ok["task"] == "classification").any() else "mL"
            st.markdown(f"**Output: {unit} per prediction**")
            hist = _histogram(ok, "output_value")
            if hist is not None:
                st.bar_chart(hist, x_label=f"{unit} (bin start)", y_label="predictions")


def _drift(db: Database, model: str | None) -> None:
    if model is None:
        st.caption("Choose a model above to see its drift flags.")
        return
    try:
        report = drift(db, model)
    except MedModelsError as exc:
        st.caption(str(exc))
        return
    st.caption(
        f"Population stability index (PSI) of each input and output feature per ISO week "
        f"against the reference window {report.reference_start:%Y-%m-%d} – "
        f"{report.reference_end:%Y-%m-%d} ({report.reference_n} predictions). PSI above "
        f"{PSI_WATCH:g} is worth watching, above {PSI_DRIFT:g} is drift; groups too small to "
        "read are marked too-few."
    )
    flagged = report.flagged()
    if not flagged:
        st.success("No drift flags.", icon=":material/check:")
    rows = flagged or [r for r in report.rows if r.version is None]
    if rows:
        st.dataframe(
            [
                {
                    "Feature": r.feature,
                    "Week": r.week.isoformat(),
                    "Version": r.version or "all",
                    "Predictions": r.n,
                    "PSI": None if r.psi is None else round(r.psi, 3),
                    "Flag": r.flag,
                }
                for r in rows
            ],
            hide_index=True,
            key="history_drift",
        )


def _export(db: Database, filters: HistoryFilter) -> None:
    def produce(fmt: str) -> bytes:
        with tempfile.TemporaryDirectory(prefix="medmodels-export-") as tmp:
            path = Path(tmp) / f"history.{fmt}"
            export(db, path, format=fmt, filters=filters)  # type: ignore[arg-type]
            return path.read_bytes()

    c1, c2 = st.columns(2)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M")
    c1.download_button(
        "Export CSV",
        lambda: produce("csv"),
        file_name=f"medmodels-history-{stamp}.csv",
        mime="text/csv",
        key="history_export_csv",
        icon=":material/download:",
        on_click="ignore",
    )
    c2.download_button(
        "Export Parquet",
        lambda: produce("parquet"),
        file_name=f"medmodels-history-{stamp}.parquet",
        mime="application/vnd.apache.parquet",
        key="history_export_parquet",
        icon=":material/download:",
        on_click="ignore",
    )
    st.caption("Exports hold the filtered table (no notes, nothing identifying).")


def _shares() -> None:
    links = resources.shares()
    all_shares = links.list()
    if not all_shares:
        st.caption("No share links yet. Create one under a result.")
        return
    now = datetime.now(UTC)
    st.dataframe(
        [
            {
                "Created (UTC)": s.created_at.strftime("%Y-%m-%d %H:%M"),
                "Expires (UTC)": s.expires_at.strftime("%Y-%m-%d %H:%M"),
                "Status": s.status(now),
                "Prediction": s.prediction_id[:8],
                "Link id": s.id[:8],
            }
            for s in all_shares
        ],
        hide_index=True,
        key="history_shares",
    )
    active = {s.id: s for s in all_shares if s.status(now) == "active"}
    if not active:
        return
    c1, c2 = st.columns([3, 1])
    chosen = c1.selectbox(
        "Revoke a link",
        list(active),
        key="history_revoke_choice",
        format_func=lambda i: (
            f"{i[:8]} → prediction {active[i].prediction_id[:8]}, expires "
            f"{active[i].expires_at:%Y-%m-%d}"
        ),
    )
    if c2.button("Revoke", key="history_revoke", icon=":material/link_off:") and chosen:
        links.revoke(chosen)
        st.session_state["history_flash"] = f"Link {chosen[:8]} revoked: it no longer opens."
        st.rerun()


def page() -> None:
    """The History page."""
    st.title("History")
    widgets.research_notice()
    flash = st.session_state.pop("history_flash", None)
    if flash:
        st.success(flash, icon=":material/check:")
    db = resources.history()
    wanted = st.query_params.get("prediction")
    if wanted and st.session_state.get("history_open") != wanted:
        st.session_state["history_open"] = wanted
    filters = _filters(db)
    tabs = st.tabs(["Predictions", "Statistics", "Drift", "Share links"])
    with tabs[0]:
        _table(db, filters)
        opened = st.session_state.get("history_open")
        if opened:
            _detail(db, opened)
        _export(db, filters)
    with tabs[1]:
        _stats(db, filters)
    with tabs[2]:
        _drift(db, filters.model)
    with tabs[3]:
        _shares()


page()

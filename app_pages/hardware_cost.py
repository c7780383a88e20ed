"""Hardware & cost: a model's versions and variants side by side (size, speed, memory, cost,
agreement with the parent, mobile/edge/web verdicts), every figure with its provenance; a cost
calculator; measuring a version on this server; importing a sheet measured elsewhere."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from medmodels import MedModelsError, ModelStore
from medmodels.sheets import PriceList, Sheet, SheetStore, build_sheet, comparison_row, cost_rows
from ui import resources, widgets
from ui.sheets import fmt, import_upload, prices, sheet_store, size, with_price

ALL_HOSTS = "All hosts"
VERDICT_COLOUR = {
    "yes": ":green[yes]",
    "maybe": ":orange[maybe]",
    "no": ":red[no]",
    "unknown": ":gray[unknown]",
}


def _flash(message: str, **select: str) -> None:
    """Show ``message`` after a rerun, with ``select`` applied to widgets before they exist."""
    st.session_state["hc_flash"] = message
    st.session_state["_hc_select"] = select
    st.rerun()


def _label(sheet: Sheet, several_hosts: bool) -> str:
    return f"{sheet.version} · {sheet.host.fingerprint[:6]}" if several_hosts else sheet.version


# --------------------------------------------------------------------------- comparison


def _comparison(
    shown: list[Sheet], price_list: PriceList, sheets: SheetStore, hw_id: str, u: float
) -> None:
    several_hosts = len({s.host.fingerprint for s in shown}) > 1
    rows: list[dict[str, Any]] = []
    for s in shown:
        r = comparison_row(s, price_list, sheets=sheets, hardware=hw_id, utilisation=u)
        rows.append(
            {
                "Version": _label(s, several_hosts),
                "Derived from": r["derived_from"] or "",
                "Host": f"{r['cpu']} ({r['cores']} cores)",
                "Size": size(s.graph.file_bytes),
                "Parameters": r["parameters"],
                "Precision": r["precision"],
                "GFLOPs": "unknown" if r["gflops"] is None else f"{r['gflops']:,.3f}",
                "Cold start (ms)": r["cold_start_ms"],
                "p50 (ms)": r["p50_ms"],
                "p95 (ms)": r["p95_ms"],
                "Throughput (/h)": r["throughput_per_h"],
                "Peak memory (MB)": r["peak_mb"],
                "$ per 1,000": r["usd_per_1000"],
                "$ provenance": r["usd_per_1000_provenance"],
                "Agreement with parent": r["agreement"] or "—",
                "Mobile": r.get("mobile", "unknown"),
                "Edge": r.get("edge", "unknown"),
                "Web": r.get("web", "unknown"),
                "Runs": s.bench.runs,
                "Measured (UTC)": s.created.strftime("%Y-%m-%d %H:%M"),
            }
        )
    read, measured = "read from model.onnx", "measured on the named host"
    num = st.column_config.NumberColumn
    st.dataframe(
        rows,
        hide_index=True,
        key="hc_table",
        column_config={
            "Size": st.column_config.TextColumn("Size · read", help=read),
            "Parameters": num("Parameters · read", format="localized", help=read),
            "Precision": st.column_config.TextColumn("Precision · read", help=read),
            "GFLOPs": st.column_config.TextColumn(
                "GFLOPs · read",
                help="counted from the graph (Conv, Gemm/MatMul, ConvTranspose); empty = unknown",
            ),
            "Cold start (ms)": num(
                "Cold start (ms) · measured",
                format="%.0f",
                help="decode + session creation + first prediction in a fresh process",
            ),
            "p50 (ms)": num("p50 (ms) · measured", format="%.1f", help=f"end to end; {measured}"),
            "p95 (ms)": num("p95 (ms) · measured", format="%.1f", help=f"end to end; {measured}"),
            "Throughput (/h)": num(
                "Throughput (/h) · measured",
                format="localized",
                help="best measured configuration, end-to-end predictions per hour",
            ),
            "Peak memory (MB)": num(
                "Peak memory (MB) · measured", format="%.0f", help="peak resident memory"
            ),
            "$ per 1,000": num(
                "$ per 1,000",
                format="$%.4f",
                help="derived (measured on that hardware) or estimated: see '$ provenance' and "
                "the calculator below",
            ),
            "Agreement with parent": st.column_config.TextColumn(
                "Agreement with parent · measured", help="on the reference input(s)"
            ),
        },
    )
    st.caption(
        "**Provenance.** *read*: from the ONNX graph · *measured*: on the named host, in a "
        "fresh process · *derived*: measured throughput × a listed price · *estimated*: scaled "
        "from another machine (method in the calculator). Verdicts are derived from the sheet; "
        "reasons below. The source of every figure is under “All figures with sources”."
    )
    chart = pd.DataFrame(rows).set_index("Version")
    c1, c2 = st.columns(2)
    with c1:
        st.markdown("**Latency per version (ms, measured)**")
        st.bar_chart(chart[["p50 (ms)", "p95 (ms)"]], stack=False, y_label="ms")
    with c2:
        hw = price_list.get(hw_id)
        st.markdown(f"**$ per 1,000 predictions** ({widgets.md(hw.name)}, {u:.0%} utilisation)")
        costs = chart[["$ per 1,000"]].dropna()
        if costs.empty:
            st.caption("No cost can be shown for this hardware (see the calculator).")
        else:
            st.bar_chart(costs, y_label="USD")


def _verdicts(shown: list[Sheet], sheets: SheetStore) -> None:
    several_hosts = len({s.host.fingerprint for s in shown}) > 1
    st.subheader("Target verdicts")
    for s in shown:
        verdicts = sheets.verdicts(s)
        summary = " · ".join(f"{v.target} {VERDICT_COLOUR[v.verdict]}" for v in verdicts)
        with st.expander(f"{_label(s, several_hosts)} — {summary}", icon=":material/devices:"):
            for v in verdicts:
                st.markdown(
                    f"**{v.target.capitalize()}: {VERDICT_COLOUR[v.verdict]}** ({v.provenance})\n"
                    + "\n".join(f"- {widgets.md(r)}" for r in v.reasons)
                )


def _figures(shown: list[Sheet]) -> None:
    several_hosts = len({s.host.fingerprint for s in shown}) > 1
    with st.expander("All figures with sources", icon=":material/fact_check:"):
        for s in shown:
            st.markdown(
                f"**{widgets.md(_label(s, several_hosts))}** — measured on "
                f"{widgets.md(s.host.describe())}, {s.created:%Y-%m-%d %H:%M} UTC, {s.tool}"
            )
            st.dataframe(
                [
                    {
                        "Figure": f.label,
                        "Value": f.value if isinstance(f.value, str) else fmt(f.value, 3),
                        "Unit": f.unit,
                        "Provenance": f.provenance,
                        "Source": f.source,
                    }
                    for f in s.figures()
                ],
                hide_index=True,
                key=f"hc_figures_{s.version}_{s.host.fingerprint}",
            )
            for w in s.warnings:
                st.caption(f"⚠ {widgets.md(w)}")


# --------------------------------------------------------------------------- calculator


def _calculator_inputs(price_list: PriceList) -> tuple[PriceList, str, float, float]:
    """Hardware, its (editable) hourly price, utilisation and daily volume."""
    entries = {e.id: e for e in price_list.hardware}
    c1, c2, c3, c4 = st.columns([3, 2, 2, 2])
    hw_id = c1.selectbox(
        "Hardware", list(entries), key="hc_hw", format_func=lambda i: entries[i].name
    )
    entry = entries[hw_id]
    price = c2.number_input(
        "Price per hour (USD)",
        min_value=0.0,
        value=round(entry.hourly, 6),
        step=0.01,
        format="%.4f",
        key=f"hc_price_{hw_id}",
        help="Pre-filled from the price list; change it to your own price.",
    )
    utilisation = c3.slider(
        "Utilisation (%)",
        min_value=1,
        max_value=100,
        value=100,
        key="hc_util",
        help="Share of paid hours spent predicting; idle hours are paid too.",
    )
    volume = c4.number_input(
        "Predictions per day", min_value=0, value=500, step=100, key="hc_volume"
    )
    edited = " (edited)" if abs(price - round(entry.hourly, 6)) > 1e-9 else ""
    st.caption(
        f"Listed price {entry.hourly:.4f} USD/h{edited} · as of {entry.as_of:%Y-%m-%d} · "
        f"source: {widgets.md(entry.source)} · price list {widgets.code(price_list.path)}"
    )
    return with_price(price_list, hw_id, float(price)), hw_id, utilisation / 100, float(volume)


def _calculator(sheet: Sheet, price_list: PriceList, hw_id: str, u: float, volume: float) -> None:
    row = next(
        r
        for r in cost_rows(sheet, price_list, utilisations=(u,), daily_volume=volume)
        if r.entry.id == hw_id
    )
    if not row.shown or row.predictions_per_hour is None:
        st.info(f"No cost for {widgets.md(row.entry.name)}: {widgets.md(row.method)}")
        return
    per_1000 = row.cost_per_1000[u]
    monthly = row.monthly_usd[u]
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("$ per 1,000 predictions", f"${per_1000:,.4f}", border=True)
    c2.metric(f"Monthly cost ({volume:,.0f}/day)", f"${monthly:,.2f}", border=True)
    c3.metric("Predictions per hour at 100 %", f"{row.predictions_per_hour:,.0f}", border=True)
    c4.metric(
        "Always-on instead",
        f"${row.always_on_monthly_usd or 0:,.2f}",
        help=f"{row.instances} machine(s) running 24 h a day for a month",
        border=True,
    )
    st.markdown(
        f"$ per 1,000 = {row.usd_per_hour:.4f} $/h ÷ ({row.predictions_per_hour:,.0f} "
        f"predictions/h × {u:.0%}) × 1,000 = **${per_1000:,.4f}**  \n"
        f"Monthly = {volume:,.0f} predictions/day × 30.44 days × ${per_1000:,.4f} / 1,000 = "
        f"**${monthly:,.2f}**"
    )
    tag = ":green-badge[derived]" if row.provenance == "derived" else ":orange-badge[estimated]"
    st.caption(f"{tag} {widgets.md(row.method)}")


# --------------------------------------------------------------------------- measure, import


def _measure(store: ModelStore, name: str, versions: list[str], missing: list[str]) -> None:
    st.markdown("**Measure on this server**")
    c1, c2 = st.columns([3, 1])
    default = st.session_state.get("hc_version")
    if st.session_state.get("hc_measure_version") not in versions:
        st.session_state["hc_measure_version"] = (
            default if default in versions else (missing or versions)[0]
        )
    version = c1.selectbox(
        "Version to measure",
        versions,
        key="hc_measure_version",
        format_func=lambda v: f"{v} (no sheet yet)" if v in missing else v,
    )
    runs = c2.number_input(
        "Warm runs",
        min_value=1,
        max_value=200,
        value=5,
        key="hc_runs",
        help="More runs give steadier figures and take longer (each run is a full prediction).",
    )
    st.caption(
        "Runs the benchmark in a separate process: cold start, warm runs, throughput at 1 and "
        "all cores, peak memory, and for variants the agreement with the parent. It takes from "
        "a few seconds to minutes; the app keeps serving other users meanwhile."
    )
    if not st.button("Measure now", key="hc_measure", type="primary", icon=":material/speed:"):
        return
    ref = f"{name}@{version}"
    with st.status(f"Measuring {ref} ({runs} warm runs)…", expanded=True) as status:
        bar = st.progress(0.0, text="starting")

        def progress(fraction: float, message: str) -> None:
            bar.progress(min(max(fraction, 0.0), 1.0), text=message)

        try:
            sheet = build_sheet(
                store, ref, settings=resources.settings(), runs=int(runs), progress=progress
            )
        except MedModelsError as exc:
            status.update(label=f"Measuring {ref} failed", state="error")
            widgets.show_error(exc)
            return
        status.update(label=f"Measured {ref}", state="complete", expanded=False)
    p50 = sheet.bench.stages["end_to_end"].p50_ms
    _flash(
        f"Measured {ref} on this server: p50 {p50:,.1f} ms end to end ({sheet.bench.runs} runs). "
        "The sheet is stored.",
        hc_version=version,
    )


def _import() -> None:
    st.markdown("**Import a sheet measured on another device**")
    st.caption(
        "Run `medmodels sheet MODEL@VERSION --json > sheet.json` there (same model files), then "
        "upload the JSON here; it is checked and stored beside this server's sheets."
    )
    up = st.file_uploader("Sheet (JSON)", type=["json"], key="hc_import")
    if up is None or st.session_state.get("_hc_imported") == up.file_id:
        return
    st.session_state["_hc_imported"] = up.file_id
    try:
        sheet = import_upload(up.name, up.getvalue())
    except MedModelsError as exc:
        widgets.show_error(exc)
        return
    _flash(
        f"Imported the sheet of {sheet.ref} measured on {sheet.host.describe()}.",
        hc_model=sheet.model,
        hc_version=sheet.version,
    )


# --------------------------------------------------------------------------- page


def page() -> None:
    """The Hardware & cost page."""
    st.title("Hardware & cost")
    widgets.research_notice()
    for key, value in st.session_state.pop("_hc_select", {}).items():
        st.session_state[key] = value
    flash = st.session_state.pop("hc_flash", None)
    if flash:
        st.success(flash, icon=":material/check_circle:")
    store = resources.store()
    sheets = sheet_store()
    models = store.models()
    if not models:
        st.info(f"The model store ({widgets.md(store.root)}) is empty: publish a model first.")
        return
    wanted = st.query_params.get("model")
    if st.session_state.get("hc_model") not in models:
        st.session_state["hc_model"] = wanted if wanted in models else models[0]
    name = st.selectbox(
        "Model", models, key="hc_model", format_func=resources.model_title, persist_state="session"
    )
    versions = store.versions(name)
    wanted_version = st.query_params.get("version")
    if st.session_state.get("hc_version") not in versions:
        st.session_state["hc_version"] = (
            wanted_version if wanted_version in versions else versions[0]
        )

    problems: list[str] = []
    all_sheets = sheets.sheets(name, problems=problems)
    for p in problems:
        st.warning(f"A stored sheet was skipped: {widgets.md(p)}")
    hosts = {s.host.fingerprint: s.host for s in all_sheets}
    host = ALL_HOSTS
    if len(hosts) > 1:
        host = st.selectbox(
            "Host",
            [ALL_HOSTS, *hosts],
            key="hc_host",
            format_func=lambda h: h if h == ALL_HOSTS else f"{hosts[h].describe()} ({h[:6]})",
        )
    shown = [s for s in all_sheets if host in (ALL_HOSTS, s.host.fingerprint)]
    measured = {s.version for s in shown}
    missing = [v for v in versions if v not in measured]

    try:
        price_list = prices()
    except MedModelsError as exc:
        widgets.show_error(exc)
        return

    table_area = st.container()
    st.subheader("Cost calculator")
    version = st.selectbox("Version", versions, key="hc_version")
    priced, hw_id, u, volume = _calculator_inputs(price_list)
    if st.query_params.get("model") != name or st.query_params.get("version") != version:
        st.query_params.update({"model": name, "version": version})
    current = next((s for s in shown if s.version == version), None)
    if current is None:
        st.info(f"No sheet yet for {widgets.md(name)}@{version}: measure it below (Measure now).")
    else:
        st.caption(f"Sheet measured on {widgets.md(current.host.describe())}")
        _calculator(current, priced, hw_id, u, volume)

    with table_area:
        st.subheader("Versions side by side")
        if missing:
            st.info(
                f"No sheet yet for {', '.join(missing)}"
                + ("" if host == ALL_HOSTS else " on this host")
                + ": use “Measure now” below, or import a sheet.",
                icon=":material/info:",
            )
        if shown:
            _comparison(shown, priced, sheets, hw_id, u)
            _verdicts(shown, sheets)
            _figures(shown)

    st.divider()
    c1, c2 = st.columns(2)
    with c1:
        _measure(store, name, versions, missing)
    with c2:
        _import()


page()

"""Try a model: choose a model and version, bring a scan (upload, folder, zip or a sample), see
whether it fits, run it, look at the result on the image, download it, compare two versions."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import streamlit as st

from medmodels import (
    LoadResult,
    MedModelsError,
    ModelVersion,
    Prediction,
    Scan,
    ScanMismatchError,
    fit_problems,
    predict,
)
from medmodels import render as rd
from medmodels.history import record_prediction, record_rejection
from medmodels.store import Window, is_version, render_card
from ui import links, records, resources, viewer, widgets
from ui.samples import BY_ID, available

SOURCES = ("Upload files or a zip", "Upload a folder", "Sample scan")
UPLOAD, FOLDER, SAMPLE = SOURCES


@dataclass
class Result:
    """One run kept in session state so that it survives reruns."""

    key: tuple[Any, ...]
    scan: Scan
    model: ModelVersion
    prediction: Prediction
    record_id: str | None = None
    save_error: str | None = None  # why the result could not be logged (logging was on)
    downloads: dict[str, bytes] = field(default_factory=dict)


# --------------------------------------------------------------------------- choosing


def _tags(name: str) -> list[str]:
    """Aliases (production first), then versions newest first."""
    store = resources.store()
    aliases = store.aliases(name)
    ordered = sorted(aliases, key=lambda a: (a != "production", a))
    return [*ordered, *store.versions(name)]


def _tag_label(name: str, tag: str) -> str:
    aliases = resources.store().aliases(name)
    return f"{tag} → {aliases[tag]}" if tag in aliases else tag


def _apply_link(models: list[str]) -> bool:
    """Turn a new deep link into selections; True when it asks to run."""
    link = links.pending()
    if link is None:
        return False
    model = link.get("model")
    if model:
        if model in models:
            st.session_state["try_model"] = model
        else:
            st.warning(f"The link names a model that is not here ({widgets.md(model)}).")
            return False
    version = link.get("version")
    if version:
        st.session_state["try_version"] = version
    sample = link.get("sample")
    if sample:
        if sample in BY_ID:
            st.session_state["try_source"] = SAMPLE
            st.session_state["try_sample"] = sample
            return bool(model)
        st.warning(f"The link names a sample scan that is not here ({widgets.md(sample)}).")
    return False


def _choose_model(models: list[str]) -> ModelVersion | None:
    if st.session_state.get("try_model") not in models:
        st.session_state["try_model"] = models[0]
    c1, c2 = st.columns([3, 2])
    name = c1.selectbox(
        "Model",
        models,
        key="try_model",
        persist_state="session",
        format_func=resources.model_title,
    )
    tags = _tags(name)
    wanted = st.session_state.get("try_version")
    if wanted not in tags:
        if wanted:
            st.warning(
                f"{widgets.md(name)} has no version or alias {widgets.md(wanted)}; "
                f"available: {', '.join(tags)}."
            )
        st.session_state["try_version"] = tags[0]
    tag = c2.selectbox(
        "Version",
        tags,
        key="try_version",
        persist_state="session",
        format_func=lambda t: _tag_label(name, t),
    )
    try:
        model = resources.store().get(f"{name}@{tag}")
    except MedModelsError as exc:
        widgets.show_error(exc)
        return None
    widgets.model_header(model.manifest)
    widgets.card_expander(model.manifest)
    return model


# --------------------------------------------------------------------------- input


def _forget_upload(widget_key: str, store_key: str) -> None:
    """The user removed the files from the uploader: forget what they held."""
    if not st.session_state.get(widget_key):
        st.session_state.pop(store_key, None)


def _uploaded(
    widget_key: str, label: str, multiple: Any, help: str | None = None
) -> tuple[LoadResult, str] | None:
    """Files from an uploader, read in a decode worker once; kept in session state so that the
    scan is still there after visiting another page (uploaders come back empty)."""
    store_key = f"_{widget_key}_loaded"
    files = st.file_uploader(
        label,
        accept_multiple_files=multiple,
        key=widget_key,
        help=help,
        on_change=_forget_upload,
        args=(widget_key, store_key),
    )
    kept = st.session_state.get(store_key)
    if not files:
        if kept is None:
            return None
        st.caption(
            f"Using your earlier upload ({kept[2]} file(s)). Upload new files to replace it."
        )
        return kept[1], kept[0]
    ident = f"{widget_key}:" + ",".join(f"{f.file_id}" for f in files)
    if kept is not None and kept[0] == ident:
        return kept[1], kept[0]
    try:
        with st.spinner("Reading and de-identifying the upload…"):
            result = resources.load_upload(files)
    except MedModelsError as exc:
        widgets.show_error(exc)
        return None
    st.session_state[store_key] = (ident, result, len(files))
    return result, ident


def _choose_input() -> tuple[LoadResult, str, str | None] | None:
    """The loaded upload or sample, an identity for it, and the sample id (if a sample)."""
    source = st.radio("Scan", SOURCES, key="try_source", persist_state="session", horizontal=True)
    if source in (UPLOAD, FOLDER):
        got = (
            _uploaded(
                "try_files",
                "DICOM files, a zipped series, NIfTI, PNG or JPEG",
                True,
                "Everything that could identify the patient is removed while the files are "
                "read; uploads are not stored.",
            )
            if source == UPLOAD
            else _uploaded(
                "try_folder", "A folder of DICOM files (subfolders included)", "directory"
            )
        )
        return None if got is None else (got[0], got[1], None)
    samples = available()
    ids = [s.id for s in samples]
    if st.session_state.get("try_sample") not in ids:
        st.session_state["try_sample"] = None
    sample_id = st.selectbox(
        "Sample scan",
        ids,
        key="try_sample",
        persist_state="session",
        index=None,
        placeholder="Choose a sample scan",
        format_func=lambda i: BY_ID[i].label,
        help="Small real and synthetic scans shipped with MedModels (see sample_data/README.md).",
    )
    if sample_id is None:
        return None
    try:
        result = resources.sample(sample_id)
    except MedModelsError as exc:
        widgets.show_error(exc)
        return None
    return result, f"sample:{sample_id}", sample_id


def _choose_scan(result: LoadResult) -> tuple[Scan, int] | None:
    widgets.load_report(result)
    if not result.scans:
        st.info("Nothing in this upload could be read as a scan; see the reasons above.")
        return None
    index = 0
    if len(result.scans) > 1:
        st.markdown(f"**{len(result.scans)} scans were found.** Choose the one to run:")
        st.dataframe(widgets.scan_rows(result.scans), hide_index=True, key="try_series_table")
        labels = [widgets.scan_label(i, s) for i, s in enumerate(result.scans)]
        if st.session_state.get("try_series") not in labels:
            st.session_state["try_series"] = labels[0]
        choice = st.radio(
            "Scan to run",
            labels,
            key="try_series",
            persist_state="session",
        )
        index = labels.index(choice)
    scan = result.scans[index]
    st.markdown(
        f"**{widgets.md(scan.describe())}** · {scan.source_format}, {scan.file_count} file(s)"
    )
    widgets.deid_report(scan)
    return scan, index


def _switch_model(name: str) -> None:
    st.session_state["try_model"] = name
    st.session_state["try_version"] = _tags(name)[0]


def _suggest(scan: Scan, current: str, models: list[str]) -> None:
    """Offer the models (at their default version) that this scan does fit."""
    store = resources.store()
    fitting = []
    for name in models:
        if name == current:
            continue
        try:
            if not fit_problems(scan, store.get(name).manifest):
                fitting.append(name)
        except MedModelsError:
            continue
    if not fitting:
        return
    st.markdown("Switch to a model this scan fits:")
    cols = st.columns(min(len(fitting), 3))
    for i, name in enumerate(fitting):
        cols[i % len(cols)].button(
            resources.model_title(name),
            key=f"try_suggest_{name}",
            on_click=_switch_model,
            args=(name,),
            icon=":material/swap_horiz:",
        )


# --------------------------------------------------------------------------- running


def _alias(tag: str | None) -> str | None:
    """The alias a selection went through (None for an explicit version)."""
    return None if tag is None or is_version(tag) else tag


def _log_rejection(once: tuple[Any, ...], **fields: Any) -> None:
    """Record a refused input or failed run in the history, once per ``once`` key."""
    if not resources.settings().log_predictions:
        return
    seen: set[tuple[Any, ...]] = st.session_state.setdefault("_try_logged_rejections", set())
    if once in seen:
        return
    seen.add(once)
    try:
        record_rejection(resources.history(), source="app", **fields)
    except MedModelsError as exc:
        st.warning(f"The history could not record this: {exc}")


def _run(
    scan: Scan, model: ModelVersion, tag: str | None
) -> tuple[Prediction, str | None, str | None] | None:
    """Run with a status box that says what happens, log the prediction, then show how long
    each stage took."""
    with st.status(f"Running {model.ref}…", expanded=True) as status:
        st.write("✓ Scan read and de-identified")
        st.write("✓ Scan fits the model")
        bar = st.progress(0.05, text="Loading the model, preprocessing, inference, postprocessing…")
        try:
            prediction = predict(scan, model)
        except MedModelsError as exc:
            status.update(label=f"{model.ref} could not run", state="error", expanded=True)
            widgets.show_error(exc)
            _log_rejection(
                (scan.fingerprint, model.ref, "failed"),
                model=model.name,
                version=model.version,
                alias=_alias(tag),
                reason_code="scan-mismatch" if isinstance(exc, ScanMismatchError) else "failed",
                status="rejected" if isinstance(exc, ScanMismatchError) else "failed",
                scan=scan,
                task=model.manifest.task,
            )
            return None
        record_id = None
        save_error = None
        if resources.settings().log_predictions:
            bar.progress(0.9, text="Saving to the history…")
            try:
                record_id = record_prediction(
                    resources.history(), prediction, scan, alias=_alias(tag), source="app"
                )
            except MedModelsError as exc:
                save_error = str(exc)
                st.warning(f"The result could not be saved to the history: {exc}")
        bar.progress(1.0, text="Done")
        for row in widgets.timing_rows(prediction.timings_ms):
            st.write(f"✓ {row['Stage']}: {row['ms']} ms")
        if record_id:
            st.write("✓ Saved to the history")
        total = prediction.timings_ms.get("total", 0.0)
        status.update(
            label=f"{model.ref} finished in {total:,.0f} ms", state="complete", expanded=False
        )
    return prediction, record_id, save_error


def _model_window(model: ModelVersion) -> rd.WindowLevel | None:
    for step in model.manifest.input.preprocessing:
        if isinstance(step, Window):
            return rd.WindowLevel(center=step.center, width=step.width)
    return None


def _colours(model: ModelVersion) -> dict[int, str]:
    return {lab.index: lab.colour for lab in model.manifest.output.labels}


def _downloads(res: Result) -> None:
    p = res.prediction
    stem = f"{p.model}-{p.version}".replace("+", "_")
    if "json" not in res.downloads:
        data = {"scan": res.scan.describe(), **p.to_dict(), "research_use_only": True}
        res.downloads["json"] = json.dumps(data, indent=2).encode()
    c1, c2 = st.columns(2)
    c1.download_button(
        "Download the result (JSON)",
        res.downloads["json"],
        file_name=f"{stem}-result.json",
        mime="application/json",
        key="try_dl_json",
        icon=":material/description:",
    )
    if p.label_volume is not None:
        if "nifti" not in res.downloads:
            res.downloads["nifti"] = rd.mask_to_nifti(
                p.label_volume, affine_lps=res.scan.affine, spacing_mm=res.scan.spacing_mm
            )
        c2.download_button(
            "Download the mask (NIfTI, in the scan's geometry)",
            res.downloads["nifti"],
            file_name=f"{stem}-mask.nii.gz",
            mime="application/gzip",
            key="try_dl_nifti",
            icon=":material/download:",
        )


def _result_tables(p: Prediction) -> None:
    if p.task == "segmentation":
        rows = [
            {
                "Label": lab.name,
                "Volume (mL)": None if lab.volume_ml is None else round(lab.volume_ml, 1),
                "Voxels": lab.voxels,
                "Largest on slice": None if lab.largest_slice is None else lab.largest_slice + 1,
            }
            for lab in p.labels
            if lab.index != 0
        ]
        st.dataframe(rows, hide_index=True, key="try_volumes")
        if any(lab.volume_ml is None for lab in p.labels):
            st.caption("Volumes need the pixel spacing, which this scan does not record.")
    else:
        st.dataframe(
            [
                {"Label": lab.name, "Probability": round(float(lab.probability or 0), 4)}
                for lab in p.labels
            ],
            hide_index=True,
            key="try_probabilities",
        )


def _show(res: Result) -> viewer.View | None:
    p, scan, model = res.prediction, res.scan, res.model
    st.subheader("Result")
    st.caption(widgets.RESEARCH_NOTICE)
    st.markdown(widgets.prediction_facts(p))
    for note in p.warnings:
        if note not in scan.warnings:  # the scan's own warnings are shown with the scan
            st.info(note)
    view = None
    left, right = st.columns([3, 2])
    if p.task == "segmentation" and p.label_volume is not None:
        with right:
            view = viewer.controls(
                scan,
                key="try_view",
                identity=f"{res.key}",
                labels=p.label_volume,
                label_results=p.labels,
                model_window=_model_window(model),
            )
            viewer.legend(rd.legend_items(p.labels), p.volumes_ml)
        with left:
            st.image(
                viewer.slice_png(scan, view, labels=p.label_volume, colours=_colours(model)),
                caption=viewer.caption(scan, view),
                width="stretch",
            )
    else:
        with right:
            view = viewer.controls(
                scan, key="try_view", identity=f"{res.key}", model_window=_model_window(model)
            )
            viewer.probability_bars(p)
        with left:
            st.image(
                viewer.slice_png(scan, view), caption=viewer.caption(scan, view), width="stretch"
            )
    _result_tables(p)
    with st.expander("Timings"):
        st.dataframe(widgets.timing_rows(p.timings_ms), hide_index=True, key="try_timings")
    _downloads(res)
    if res.record_id:
        st.page_link(
            "app_pages/history.py",
            label=f"Saved to the history as {res.record_id[:8]} — open it there",
            query_params={"prediction": res.record_id},
            icon=":material/history:",
        )
        classes = [lab.name for lab in p.labels] if p.task == "classification" else []
        records.feedback_form(res.record_id, classes, key="try_feedback")
        records.share_panel(res.record_id, render_card(model.manifest), key="try_share")
    elif res.save_error:
        st.warning(
            f"This result was not saved to the history (logging is unavailable: "
            f"{res.save_error}), so there is no feedback or share link for it.",
            icon=":material/warning:",
        )
    else:
        st.caption(
            "Prediction logging is off (MEDMODELS_LOG_PREDICTIONS), so there is no "
            "feedback or share link for this result."
        )
    return view


def _preview(scan: Scan, model: ModelVersion, key: tuple[Any, ...]) -> None:
    """The scan itself, before any result: slices and window/level."""
    left, right = st.columns([3, 2])
    with right:
        view = viewer.controls(
            scan, key="try_view", identity=f"preview{key}", model_window=_model_window(model)
        )
    with left:
        st.image(viewer.slice_png(scan, view), caption=viewer.caption(scan, view), width="stretch")


# --------------------------------------------------------------------------- compare


def _compare(res: Result, view: viewer.View | None) -> None:
    store = resources.store()
    name = res.model.name
    others = [v for v in store.versions(name) if v != res.model.version]
    st.subheader("Compare with another version")
    if not others:
        st.caption(f"{widgets.md(name)} has only one version.")
        return
    if st.session_state.get("try_compare_version") not in others:
        st.session_state["try_compare_version"] = others[0]
    c1, c2 = st.columns([2, 1])
    other = c1.selectbox(
        "Other version",
        others,
        key="try_compare_version",
        persist_state="session",
    )
    key = (*res.key, other)
    if c2.button("Run it on the same scan", key="try_compare_run", icon=":material/compare:"):
        try:
            model_b = store.get(f"{name}@{other}")
        except MedModelsError as exc:
            widgets.show_error(exc)
            return
        ran = _run(res.scan, model_b, other)
        if ran is not None:
            st.session_state["try_compare"] = Result(key, res.scan, model_b, *ran)
    cmp: Result | None = st.session_state.get("try_compare")
    if cmp is None or cmp.key != key:
        return
    a, b = res.prediction, cmp.prediction
    if a.task == "segmentation" and a.label_volume is not None and b.label_volume is not None:
        rows = []
        vols_b = b.volumes_ml
        for lab in a.labels:
            if lab.index == 0:
                continue
            va, vb = lab.volume_ml, vols_b.get(lab.name)
            delta = None if va is None or vb is None else vb - va
            rows.append(
                {
                    "Label": lab.name,
                    f"{a.version} (mL)": None if va is None else round(va, 1),
                    f"{b.version} (mL)": None if vb is None else round(vb, 1),
                    "Δ (mL)": None if delta is None else round(delta, 1),
                    "Δ (%)": None if delta is None or not va else round(100 * delta / va, 1),
                }
            )
        st.dataframe(rows, hide_index=True, key="try_compare_table")
        diff = rd.differing(a.label_volume, b.label_volume)
        n = int(diff.sum())
        st.markdown(
            f"**{n:,} voxels differ** ({100 * n / diff.size:.2f} % of the scan); "
            "they are shown in magenta on the right."
        )
        if view is not None:
            cols = st.columns(3)
            scan = res.scan
            cols[0].image(
                viewer.slice_png(scan, view, labels=a.label_volume, colours=_colours(res.model)),
                caption=f"{a.version} · {viewer.caption(scan, view)}",
                width="stretch",
            )
            cols[1].image(
                viewer.slice_png(scan, view, labels=b.label_volume, colours=_colours(cmp.model)),
                caption=f"{b.version} · {viewer.caption(scan, view)}",
                width="stretch",
            )
            cols[2].image(
                viewer.slice_png(scan, view, highlight=diff),
                caption=f"Differing voxels on this slice: {int(diff[view.index].sum()):,}",
                width="stretch",
            )
    else:
        rows = [
            {
                "Label": lab.name,
                a.version: round(float(lab.probability or 0), 4),
                b.version: round(float(b.probabilities.get(lab.name, float("nan"))), 4),
            }
            for lab in a.labels
        ]
        st.dataframe(rows, hide_index=True, key="try_compare_table")
        st.markdown(f"Decision: {a.version} → **{a.decision}**, {b.version} → **{b.decision}**")


# --------------------------------------------------------------------------- page


def page() -> None:
    """The Try page."""
    st.title("Try a model")
    widgets.research_notice()
    store = resources.store()
    models = store.models()
    if not models:
        st.info(
            f"The model store ({widgets.md(store.root)}) has no models yet. Publish one on the "
            "Models page."
        )
        return
    autorun = _apply_link(models)
    model = _choose_model(models)
    if model is None:
        return

    st.divider()
    chosen = _choose_input()
    sample_id = chosen[2] if chosen else None
    links.update(model.name, st.session_state.get("try_version"), sample_id)
    if chosen is None:
        return
    result, ident, _ = chosen
    for i, problem in enumerate(result.problems):
        _log_rejection(
            (ident, i),
            model=model.name,
            version=model.version,
            alias=_alias(st.session_state.get("try_version")),
            reason_code=problem.code,
            task=model.manifest.task,
        )
    picked = _choose_scan(result)
    if picked is None:
        return
    scan, index = picked

    reasons = fit_problems(scan, model.manifest)
    if reasons:
        st.error(
            f"This scan does not fit {widgets.md(model.ref)}:\n"
            + "\n".join(f"- {widgets.md(r)}" for r in reasons)
        )
        _suggest(scan, model.name, models)
    else:
        st.success(f"The scan fits {widgets.md(model.ref)}.", icon=":material/check_circle:")
    key = (ident, index, model.ref, model.model_sha256)
    clicked = st.button(
        "Run the model",
        type="primary",
        disabled=bool(reasons),
        key="try_run",
        icon=":material/play_arrow:",
    )
    tag = st.session_state.get("try_version")
    if reasons:
        _log_rejection(
            (*key, "misfit"),
            model=model.name,
            version=model.version,
            alias=_alias(tag),
            reason_code="scan-mismatch",
            scan=scan,
            task=model.manifest.task,
        )
    if (clicked or autorun) and not reasons:
        ran = _run(scan, model, tag)
        if ran is not None:
            st.session_state["try_result"] = Result(key, scan, model, *ran)
            st.session_state.pop("try_compare", None)
    res: Result | None = st.session_state.get("try_result")
    if res is None or res.key != key:
        if res is not None:
            st.caption("The last result was for another scan or version; run the model again.")
        _preview(scan, model, key)
        return
    view = _show(res)
    st.divider()
    _compare(res, view)


page()

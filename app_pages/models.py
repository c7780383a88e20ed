"""Models: every model with its versions (newest first), aliases and their timeline, the model
card of a version, the diff between two versions, alias moves and rollbacks with a reason, and
publishing a new version behind the admission checks."""

from __future__ import annotations

import json
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

import streamlit as st

from medmodels import Manifest, MedModelsError, ModelStore, ModelVersion, diff
from medmodels.store import AdmissionReport, is_alias_name, render_card
from ui import resources, widgets

TASKS = ["segmentation", "classification"]
DIMENSIONALITIES = ["slice2d", "volume3d", "image2d"]
UNITS = ["HU", "MR-arbitrary", "0-255", "0-1", "raw"]
ACTIVATIONS = ["softmax", "sigmoid", "none"]


def _flash(message: str) -> None:
    """Show ``message`` at the top of the page after a rerun that shows the new state."""
    st.session_state["models_flash"] = message
    st.rerun()


def _short(digest: str | None) -> str:
    return "—" if not digest else f"{digest[:12]}…"


# --------------------------------------------------------------------------- versions


def _versions_table(store: ModelStore, name: str) -> dict[str, ModelVersion | None]:
    aliases = store.aliases(name)
    by_version: dict[str, list[str]] = {}
    for alias, version in aliases.items():
        by_version.setdefault(version, []).append(alias)
    loaded: dict[str, ModelVersion | None] = {}
    rows = []
    for version in store.versions(name):
        try:
            mv: ModelVersion | None = store.get(f"{name}@{version}")
        except MedModelsError as exc:
            mv = None
            st.error(f"{name}@{version}: {exc}")
        loaded[version] = mv
        m = mv.manifest if mv else None
        rows.append(
            {
                "Version": version,
                "Aliases": ", ".join(sorted(by_version.get(version, []))),
                "Created": m.created.isoformat() if m else None,
                "Derived from": (m.derived_from or "") if m else "",
                "Changelog": m.changelog if m else "refused: files do not match the manifest",
                "Model SHA-256": _short(mv.model_sha256) if mv else "—",
            }
        )
    st.dataframe(rows, hide_index=True, key="models_versions")
    with st.container(horizontal=True):
        st.caption("Hardware & cost sheet:")
        for version in loaded:
            st.page_link(
                "app_pages/hardware_cost.py",
                label=version,
                icon=":material/speed:",
                query_params={"model": name, "version": version},
            )
    return loaded


def _alias_timeline(store: ModelStore, name: str) -> None:
    events = store.alias_history(name)
    if not events:
        st.caption("No alias has been set for this model yet.")
        return
    rows = [
        {
            "When (UTC)": e.time.strftime("%Y-%m-%d %H:%M:%S"),
            "Alias": e.alias,
            "From": e.from_version or "(created)",
            "To": e.to_version or "(removed)",
            "Reason": e.reason or "",
            "By": e.actor or "",
        }
        for e in reversed(events)
    ]
    st.dataframe(rows, hide_index=True, key="models_alias_log")


def _move_aliases(store: ModelStore, name: str, versions: list[str]) -> None:
    aliases = store.aliases(name)
    c1, c2 = st.columns(2)
    with c1, st.form("models_promote", clear_on_submit=False, border=True):
        st.markdown("**Point an alias at a version**")
        existing = sorted(aliases, key=lambda a: (a != "production", a))
        choices = [*existing, *[a for a in ("production", "staging") if a not in existing]]
        alias = st.selectbox("Alias", choices, key="models_promote_alias", accept_new_options=True)
        version = st.selectbox("Version", versions, key="models_promote_version")
        reason = st.text_input("Reason (recorded in the alias log)", key="models_promote_reason")
        actor = st.text_input("Your name or initials (optional)", key="models_promote_actor")
        if st.form_submit_button("Move the alias", type="primary"):
            if not reason.strip():
                st.error("Give a reason: it is recorded with the move.")
            elif not is_alias_name(str(alias)):
                st.error(
                    "An alias is 1–64 lowercase letters, digits or dashes, starting with a "
                    "letter (e.g. production, staging, ward-trial)."
                )
            else:
                with widgets.user_errors():
                    event = store.set_alias(
                        name,
                        str(alias),
                        version,
                        reason=reason.strip(),
                        actor=actor.strip() or None,
                    )
                    if event is None:
                        st.info(f"{alias} already points to {version}.")
                    else:
                        _flash(f"{alias}: {event.from_version or '(new)'} → {version} ({reason})")
    with c2, st.form("models_rollback", border=True):
        st.markdown("**Roll an alias back to where it pointed before**")
        if not aliases:
            st.caption("No alias to roll back.")
        alias_rb = st.selectbox("Alias", sorted(aliases), key="models_rollback_alias")
        reason_rb = st.text_input(
            "Reason (recorded in the alias log)", key="models_rollback_reason"
        )
        if st.form_submit_button("Roll back", disabled=not aliases):
            if not reason_rb.strip():
                st.error("Give a reason: it is recorded with the rollback.")
            elif alias_rb:
                with widgets.user_errors():
                    event = store.rollback(name, alias_rb, reason=reason_rb.strip())
                    _flash(f"Rolled back {alias_rb}: {event.from_version} → {event.to_version}")


def _diff(loaded: dict[str, ModelVersion | None]) -> None:
    usable = [v for v, mv in loaded.items() if mv is not None]
    if len(usable) < 2:
        st.caption("Diff needs two versions.")
        return
    c1, c2 = st.columns(2)
    old = c1.selectbox("From", usable, index=1, key="models_diff_old")
    new = c2.selectbox("To", usable, index=0, key="models_diff_new")
    a, b = loaded[old], loaded[new]
    if a is None or b is None or old == new:
        st.caption("Choose two different versions.")
        return
    d = diff(a, b)
    if d.empty:
        st.info("The two manifests are identical.")
        return
    if d.metrics:
        st.markdown("**Metrics**")
        st.dataframe(
            [
                {
                    "Metric": m.name,
                    "Dataset": m.dataset,
                    old: m.old,
                    new: m.new,
                    "Δ": None if m.delta is None else round(m.delta, 4),
                }
                for m in d.metrics
            ],
            hide_index=True,
            key="models_diff_metrics",
        )
    if d.fields:
        st.markdown("**Card and specification**")
        st.dataframe(
            [{"Field": f.path, old: json.dumps(f.old), new: json.dumps(f.new)} for f in d.fields],
            hide_index=True,
            key="models_diff_fields",
        )
    if d.files:
        st.markdown("**Files (SHA-256)**")
        st.dataframe(
            [{"File": f.name, old: _short(f.old), new: _short(f.new)} for f in d.files],
            hide_index=True,
            key="models_diff_files",
        )


# --------------------------------------------------------------------------- publish


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _form_defaults(template: Manifest | None) -> dict[str, Any]:
    """Initial values of the manifest form's widgets (by key), taken from ``template``."""
    t = template.to_data() if template else {}
    card, inp, out = t.get("card", {}), t.get("input", {}), t.get("output", {})

    def pick(options: list[str], value: str | None) -> str:
        return value if value in options else options[0]

    return {
        "publish_name": t.get("name", ""),
        "publish_version": "",
        "publish_derived": "",
        "publish_title": t.get("title", ""),
        "publish_summary": t.get("summary", ""),
        "publish_task": pick(TASKS, t.get("task")),
        "publish_licence": t.get("licence", ""),
        "publish_authors": ", ".join(t.get("authors", [])),
        "publish_changelog": "",
        "publish_use": card.get("intended_use", ""),
        "publish_lim": "\n".join(card.get("limitations", [])),
        "publish_training": card.get("training_data", ""),
        "publish_metrics": json.dumps(card.get("metrics", []), indent=1),
        "publish_warnings": "\n".join(card.get("warnings", [])),
        "publish_modalities": ", ".join(inp.get("modalities", ["CT"])),
        "publish_dims": pick(DIMENSIONALITIES, inp.get("dimensionality")),
        "publish_units": pick(UNITS, inp.get("units")),
        "publish_in": inp.get("name", "image"),
        "publish_shape": json.dumps(inp.get("shape", ["N", 1, None, None])),
        "publish_spacing": json.dumps(inp["spacing_range_mm"])
        if inp.get("spacing_range_mm")
        else "",
        "publish_pre": json.dumps(inp.get("preprocessing", []), indent=1),
        "publish_out": ", ".join(out.get("names", ["logits"])),
        "publish_act": pick(ACTIVATIONS, out.get("activation")),
        "publish_threshold": "" if out.get("threshold") is None else str(out["threshold"]),
        "publish_labels": json.dumps(out.get("labels", []), indent=1),
        "publish_post": json.dumps(out.get("postprocessing", []), indent=1),
    }


def _form_manifest(template: Manifest | None) -> dict[str, Any] | None:
    """The manifest form, prefilled from ``template``; returns plain data when submitted."""
    ref = template.ref if template else ""
    if st.session_state.get("_publish_prefilled") != ref:
        st.session_state["_publish_prefilled"] = ref
        st.session_state.update(_form_defaults(template))
    with st.form("publish_form", border=True):
        c1, c2, c3 = st.columns(3)
        name = c1.text_input("Model name", key="publish_name")
        version = c2.text_input("Version (SemVer)", key="publish_version", placeholder="1.2.0")
        derived = c3.text_input(
            "Derived from (for a variant like 1.0.0+int8)", key="publish_derived"
        )
        title = st.text_input("Title", key="publish_title")
        summary = st.text_input("One-line summary", key="publish_summary")
        c1, c2 = st.columns(2)
        task = c1.selectbox("Task", TASKS, key="publish_task")
        licence = c2.text_input("Licence", key="publish_licence")
        authors = st.text_input("Authors (comma-separated)", key="publish_authors")
        changelog = st.text_area("What changed in this version", key="publish_changelog")
        st.markdown("**Model card**")
        intended = st.text_area("Intended use", key="publish_use")
        limits = st.text_area("Limitations (one per line)", key="publish_lim")
        training = st.text_area("Training data", key="publish_training")
        metrics = st.text_area(
            "Metrics (JSON list of {name, value, dataset, note})", key="publish_metrics"
        )
        warnings = st.text_area("Warnings (one per line)", key="publish_warnings")
        st.markdown("**Input**")
        c1, c2, c3 = st.columns(3)
        modalities = c1.text_input(
            "Modalities (comma-separated DICOM codes)", key="publish_modalities"
        )
        dims = c2.selectbox("Dimensionality", DIMENSIONALITIES, key="publish_dims")
        units = c3.selectbox("Units", UNITS, key="publish_units")
        c1, c2, c3 = st.columns(3)
        in_name = c1.text_input("Input tensor name", key="publish_in")
        shape = c2.text_input("Input shape (JSON)", key="publish_shape")
        spacing = c3.text_input(
            "Accepted in-plane spacing [min, max] mm (JSON, or empty)", key="publish_spacing"
        )
        pre = st.text_area("Preprocessing steps (JSON list, applied in order)", key="publish_pre")
        st.markdown("**Output**")
        c1, c2, c3 = st.columns(3)
        out_names = c1.text_input("Output tensor names (comma-separated)", key="publish_out")
        activation = c2.selectbox("Activation", ACTIVATIONS, key="publish_act")
        threshold = c3.text_input("Classification threshold (or empty)", key="publish_threshold")
        labels = st.text_area("Labels (JSON list of {index, name, colour})", key="publish_labels")
        post = st.text_area(
            "Postprocessing steps (JSON list, applied in order)", key="publish_post"
        )
        if not st.form_submit_button("Use these values"):
            return None

    def parse(label: str, text: str, default: Any) -> Any:
        if not text.strip():
            return default
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{label}: not valid JSON ({exc.msg} at line {exc.lineno})") from None

    try:
        data: dict[str, Any] = {
            "name": name.strip(),
            "version": version.strip(),
            "title": title,
            "summary": summary,
            "task": task,
            "authors": [a.strip() for a in authors.split(",") if a.strip()],
            "licence": licence,
            "created": date.today().isoformat(),
            "changelog": changelog,
            "card": {
                "intended_use": intended,
                "limitations": _lines(limits),
                "training_data": training,
                "metrics": parse("Metrics", metrics, []),
                "warnings": _lines(warnings),
            },
            "input": {
                "modalities": [m.strip() for m in modalities.split(",") if m.strip()],
                "dimensionality": dims,
                "name": in_name.strip(),
                "shape": parse("Input shape", shape, None),
                "units": units,
                "preprocessing": parse("Preprocessing", pre, []),
            },
            "output": {
                "names": [n.strip() for n in out_names.split(",") if n.strip()],
                "activation": activation,
                "labels": parse("Labels", labels, []),
                "postprocessing": parse("Postprocessing", post, []),
            },
        }
        if derived.strip():
            data["derived_from"] = derived.strip()
        if spacing.strip():
            data["input"]["spacing_range_mm"] = parse("Spacing", spacing, None)
        if threshold.strip():
            data["output"]["threshold"] = float(threshold)
    except ValueError as exc:
        st.error(str(exc))
        return None
    return data


def _report(report: AdmissionReport) -> None:
    icon = {"pass": "✅", "fail": "❌", "skip": "⏭️"}
    rows = [
        {
            "": icon[c.status],
            "Check": c.title,
            "Result": c.status,
            "Details / what to fix": c.message,
        }
        for c in report.checks
    ]
    st.dataframe(rows, hide_index=True, key="publish_checks")
    if report.ok:
        st.success(f"All {len(report.checks)} admission checks passed.")
    else:
        st.error(report.summary())


def _publish(store: ModelStore, models: list[str]) -> None:
    st.caption(
        "Upload the ONNX file, then describe it: fill the form (prefilled from an existing "
        "version) or upload a manifest.json. Admission checks run before anything is written; "
        "a published version is immutable."
    )
    onnx_file = st.file_uploader("Model file (.onnx)", type=["onnx"], key="publish_onnx")
    how = st.radio(
        "Manifest", ["Fill in a form", "Upload manifest.json"], key="publish_how", horizontal=True
    )
    if how == "Upload manifest.json":
        up = st.file_uploader("manifest.json", type=["json"], key="publish_manifest_file")
        if up is not None:
            try:
                st.session_state["publish_manifest"] = Manifest.from_json(
                    up.getvalue(), source=up.name
                )
            except MedModelsError as exc:
                widgets.show_error(exc)
                st.session_state.pop("publish_manifest", None)
    else:
        refs = [f"{m}@{store.resolve(m)[1]}" for m in models]
        start = st.selectbox(
            "Start from", ["(empty form)", *refs], key="publish_template", help="Prefill the form."
        )
        template = None
        if start != "(empty form)":
            with widgets.user_errors():
                template = store.get(start).manifest
        data = _form_manifest(template)
        if data is not None:
            try:
                st.session_state["publish_manifest"] = Manifest.from_dict(data, source="the form")
            except MedModelsError as exc:
                widgets.show_error(exc)
                st.session_state.pop("publish_manifest", None)
    manifest: Manifest | None = st.session_state.get("publish_manifest")
    if manifest is not None:
        st.markdown(
            f"Manifest ready: **{widgets.md(manifest.ref)}** — {widgets.md(manifest.title)}"
        )
    c1, c2 = st.columns(2)
    ready = onnx_file is not None and manifest is not None
    check = c1.button("Run the admission checks", key="publish_check", disabled=not ready)
    publish = c2.button("Publish", key="publish_go", type="primary", disabled=not ready)
    if not ready or not (check or publish):
        if not ready:
            st.caption("Both the .onnx file and a manifest are needed.")
        return
    assert onnx_file is not None and manifest is not None
    with tempfile.TemporaryDirectory(prefix="medmodels-publish-") as tmp:
        path = Path(tmp) / "model.onnx"
        path.write_bytes(onnx_file.getvalue())
        with st.spinner("Running the admission checks…"):
            try:
                if check:
                    _report(store.check(path, manifest))
                    return
                published = store.publish(path, manifest)
            except MedModelsError as exc:
                if not isinstance(exc, FileExistsError):
                    _report(store.check(path, manifest))
                widgets.show_error(exc)
                return
    if published.admission is not None:
        _report(published.admission)
    st.success(f"Published {published.ref}. Point an alias at it above to make it the default.")
    st.session_state.pop("publish_manifest", None)


# --------------------------------------------------------------------------- page


def page() -> None:
    """The Models page."""
    st.title("Models")
    widgets.research_notice()
    flash = st.session_state.pop("models_flash", None)
    if flash:
        st.success(flash, icon=":material/check_circle:")
    store = resources.store()
    models = store.models()
    if not models:
        st.info(f"The model store ({widgets.md(store.root)}) is empty. Publish a model below.")
    else:
        wanted = st.query_params.get("model")
        if st.session_state.get("models_model") not in models:
            st.session_state["models_model"] = wanted if wanted in models else models[0]
        name = st.selectbox(
            "Model",
            models,
            key="models_model",
            format_func=resources.model_title,
            persist_state="session",
        )
        versions = store.versions(name)
        newest = None
        with widgets.user_errors():
            newest = store.get(name).manifest
        if newest is not None:
            widgets.model_header(newest)
        aliases = store.aliases(name)
        st.markdown(
            "**Aliases:** "
            + (", ".join(f"`{a}` → {v}" for a, v in sorted(aliases.items())) or "none yet")
        )
        tabs = st.tabs(["Versions", "Model card", "Diff", "Aliases", "Publish"])
        with tabs[0]:
            loaded = _versions_table(store, name)
        with tabs[1]:
            usable = [v for v, mv in loaded.items() if mv is not None]
            if usable:
                v = st.selectbox("Version", usable, key="models_card_version")
                mv = loaded[v]
                if mv is not None:
                    st.markdown(render_card(mv.manifest))
        with tabs[2]:
            _diff(loaded)
        with tabs[3]:
            st.markdown("**Alias timeline** (newest first)")
            _alias_timeline(store, name)
            _move_aliases(store, name, versions)
        with tabs[4]:
            _publish(store, models)
        return
    _publish(store, models)


page()

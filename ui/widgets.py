"""Small pieces of layout shared by the pages: the research notice, error display, upload
reports, model headers and cards, result tables."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import streamlit as st

from medmodels import LoadResult, Manifest, MedModelsError, Prediction, Scan

RESEARCH_NOTICE = "Research use only — not for diagnosis."

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+!|~:$-])")


def md(text: object) -> str:
    """``text`` with Markdown (and HTML) special characters escaped, for user-supplied names."""
    return _MD_SPECIAL.sub(r"\\\1", str(text)).replace("\n", " ")


def code(text: object) -> str:
    """``text`` as inline code (Markdown escapes do not work inside backticks)."""
    return "`" + str(text).replace("`", "'").replace("\n", " ") + "`"


def research_notice() -> None:
    """The notice every page carries."""
    st.warning(RESEARCH_NOTICE, icon=":material/warning:")


def show_error(exc: BaseException) -> None:
    """A MedModels error as the user sees it: its message, never a traceback."""
    st.error(str(exc), icon=":material/error:")


@contextmanager
def user_errors() -> Iterator[None]:
    """Show a :class:`MedModelsError` raised in the block as a message and carry on."""
    try:
        yield
    except MedModelsError as exc:
        show_error(exc)


def load_report(result: LoadResult) -> None:
    """Rejected files (one line each, in plain words) and upload-level warnings."""
    if result.problems:
        n = len(result.problems)
        lines = [f"- **{md(p.name)}** — {md(p.reason)}" for p in result.problems]
        head = "1 file could not be used:" if n == 1 else f"{n} files could not be used:"
        st.error(head + "\n" + "\n".join(lines))
    for note in result.warnings:
        st.info(note)


def scan_rows(scans: Sequence[Scan]) -> list[dict[str, object]]:
    """One row per scan for the series table: modality, slices, size, spacing, source."""
    rows = []
    for i, scan in enumerate(scans, start=1):
        z, y, x = scan.shape
        spacing = (
            "unknown"
            if scan.spacing_mm is None
            else " × ".join(f"{s:.2f}" for s in scan.spacing_mm)
        )
        rows.append(
            {
                "#": i,
                "Modality": scan.modality,
                "Kind": scan.kind,
                "Slices": z,
                "Size (columns × rows)": f"{x} × {y}",
                "Spacing x × y × z (mm)": spacing,
                "Format": scan.source_format,
                "Files": scan.file_count,
            }
        )
    return rows


def scan_label(index: int, scan: Scan) -> str:
    """A short choice label for one scan of an upload."""
    return f"{index + 1}. {scan.describe()}"


def deid_report(scan: Scan) -> None:
    """What de-identification removed (attribute names only) and the scan's own warnings."""
    if scan.removed:
        named = [r for r in scan.removed if not r.startswith("private attributes")]
        private = [r for r in scan.removed if r.startswith("private attributes")]
        n = len(named)
        label = f"{n} identifying attribute{'s' if n != 1 else ''}"
        if private:
            label += f" and {private[0]}"
        with st.expander(f"De-identified while reading: {label} removed", icon=":material/shield:"):
            st.caption(
                "Removed (names only; their values were never kept): " + ", ".join(scan.removed)
            )
    else:
        st.caption("De-identified while reading: no identifying attributes were found.")
    for note in scan.warnings:
        st.info(note, icon=":material/info:")


def badges(modalities: Sequence[str]) -> str:
    """Markdown badges for modalities (``:blue-badge[CT]``)."""
    return " ".join(f":blue-badge[{md(m)}]" for m in modalities)


def model_header(manifest: Manifest) -> None:
    """Title, one-line summary, task and modality badges of a model version."""
    st.markdown(
        f"**{md(manifest.title)}** {badges(manifest.input.modalities)} "
        f":gray-badge[{manifest.task}]  \n{md(manifest.summary)}"
    )


def card_expander(manifest: Manifest, *, expanded: bool = False) -> None:
    """The model card's intended use, limitations, training data, metrics and warnings."""
    card = manifest.card
    with st.expander(
        "Intended use and limitations", expanded=expanded, icon=":material/assignment:"
    ):
        st.markdown(f"**Intended use.** {md(card.intended_use)}")
        st.markdown("**Limitations**\n" + "\n".join(f"- {md(x)}" for x in card.limitations))
        st.markdown(f"**Training data.** {md(card.training_data)}")
        if card.metrics:
            st.markdown(
                "**Metrics**\n"
                + "\n".join(
                    f"- {md(m.name)} {m.value:g} on {md(m.dataset)}"
                    + (f" ({md(m.note)})" if m.note else "")
                    for m in card.metrics
                )
            )
        if card.warnings:
            st.markdown("**Warnings**\n" + "\n".join(f"- {md(w)}" for w in card.warnings))


def prediction_facts(prediction: Prediction) -> str:
    """Version, hash prefix, runtime and provider in one Markdown line."""
    return (
        f"`{prediction.model}` **{prediction.version}** · model SHA-256 "
        f"`{prediction.model_sha256[:12]}` · onnxruntime {prediction.onnxruntime_version} · "
        f"{prediction.provider}"
    )


STAGES = {
    "load": "Loading the model",
    "preprocess": "Preprocessing",
    "infer": "Inference",
    "postprocess": "Postprocessing",
    "total": "Total",
}


def timing_rows(timings_ms: dict[str, float]) -> list[dict[str, object]]:
    """The stage timings as table rows, in pipeline order."""
    order = [k for k in STAGES if k in timings_ms] + [k for k in timings_ms if k not in STAGES]
    return [{"Stage": STAGES.get(k, k), "ms": round(timings_ms[k], 1)} for k in order]

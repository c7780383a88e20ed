"""The image viewer: slice slider, window/level, label overlay, legend, jump to a finding, the
side-by-side comparison of two versions, and probability bars for classifiers. Pixels are drawn
by :mod:`medmodels.render`; this module only lays out widgets."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import streamlit as st

from medmodels import LabelResult, Prediction, Scan
from medmodels import render as rd

MANUAL = "Manual"


@dataclass(frozen=True)
class View:
    """What the viewer's controls say to draw."""

    index: int
    window: rd.WindowLevel
    opacity: float
    style: rd.OverlayStyle
    spacing_xy: tuple[float, float] | None


def _presets(scan: Scan) -> dict[str, rd.WindowLevel]:
    memo: dict[str, dict[str, rd.WindowLevel]] = st.session_state.setdefault("_viewer_presets", {})
    tag = scan.fingerprint or str(id(scan))
    if tag not in memo:
        if len(memo) > 8:
            memo.clear()
        memo[tag] = rd.presets(scan.modality, array=scan.array, summary=scan.summary)
    return memo[tag]


def _set(key: str, value: Any) -> None:
    st.session_state[key] = value


def controls(
    scan: Scan,
    *,
    key: str,
    identity: str,
    labels: np.ndarray | None = None,
    label_results: Sequence[LabelResult] = (),
    model_window: rd.WindowLevel | None = None,
    overlay: bool = True,
) -> View:
    """Slice, window/level and overlay controls for ``scan``; returns what to draw.

    ``identity`` names what is shown (scan + result); when it changes the slider jumps to the
    slice with the most foreground and the window to the preset nearest ``model_window``.
    """
    z = scan.shape[0]
    choices = _presets(scan)
    slice_key, preset_key = f"{key}_slice", f"{key}_preset"
    if st.session_state.get(f"{key}_identity") != identity:
        st.session_state[f"{key}_identity"] = identity
        st.session_state[slice_key] = rd.best_slice(labels, z) + 1
        if model_window is not None and scan.modality == "CT":
            st.session_state[preset_key] = rd.nearest_preset(choices, model_window)
        else:
            st.session_state[preset_key] = next(iter(choices))
    index = 0
    if z > 1:
        index = (
            st.slider(
                "Slice",
                1,
                z,
                key=slice_key,
                persist_state="session",
                help="Slice 1 is the most inferior.",
            )
            - 1
        )

    names = [*choices, MANUAL]
    preset = st.selectbox(
        "Window / level",
        names,
        key=preset_key,
        persist_state="session",
        format_func=lambda n: n if n == MANUAL else f"{n} ({choices[n]})",
        help="CT: fixed Hounsfield windows. MR and radiographs: from the file's own window or "
        "the image's intensity percentiles.",
    )
    if preset == MANUAL:
        base = choices[next(iter(choices))]
        c1, c2 = st.columns(2)
        width = c1.number_input(
            "Width",
            value=float(base.width),
            min_value=1e-3,
            key=f"{key}_w",
            persist_state="session",
        )
        level = c2.number_input(
            "Level", value=float(base.center), key=f"{key}_l", persist_state="session"
        )
        window = rd.WindowLevel(center=float(level), width=float(width))
    else:
        window = choices[preset]

    opacity, style = 0.4, "fill"
    if overlay and labels is not None:
        c1, c2 = st.columns([3, 2])
        opacity = c1.slider(
            "Overlay opacity", 0.0, 1.0, 0.4, 0.05, key=f"{key}_opacity", persist_state="session"
        )
        style_label = c2.radio(
            "Overlay",
            ["Fill", "Outline"],
            key=f"{key}_style",
            horizontal=True,
            persist_state="session",
        )
        style = "outline" if style_label == "Outline" else "fill"
        if z > 1:
            found = [
                r for r in label_results if r.index and r.voxels and r.largest_slice is not None
            ]
            for r in found:
                st.button(
                    f"Go to the largest {r.name} (slice {int(r.largest_slice or 0) + 1})",
                    key=f"{key}_jump_{r.index}",
                    on_click=_set,
                    args=(slice_key, int(r.largest_slice or 0) + 1),
                    icon=":material/my_location:",
                )
    spacing = None if scan.spacing_mm is None else (scan.spacing_mm[0], scan.spacing_mm[1])
    return View(index, window, opacity, style, spacing)  # type: ignore[arg-type]


def slice_png(
    scan: Scan,
    view: View,
    *,
    labels: np.ndarray | None = None,
    colours: Mapping[int, str] | None = None,
    highlight: np.ndarray | None = None,
) -> bytes:
    """The current slice with its overlay, as PNG bytes."""
    plane = scan.array[view.index]
    image = rd.render_slice(
        plane,
        view.window,
        labels=None if labels is None else labels[view.index],
        colours=colours,
        opacity=view.opacity,
        style=view.style,
        highlight=None if highlight is None else highlight[view.index],
        spacing_xy=view.spacing_xy,
    )
    return rd.to_png(image)


def caption(scan: Scan, view: View) -> str:
    """``Slice 33 of 64 · W 1500 / L -600``."""
    single = "Single slice" if scan.kind == "slice" else "Image"
    where = f"Slice {view.index + 1} of {scan.shape[0]}" if scan.shape[0] > 1 else single
    return f"{where} · {view.window}"


def legend(
    items: Sequence[tuple[str, str]], volumes: Mapping[str, float | None] | None = None
) -> None:
    """Colour swatches with the label names (and volumes when given)."""
    if not items:
        return
    parts = []
    for name, colour in items:
        rd.parse_colour(colour)  # manifest colours are validated; never pass anything else on
        extra = ""
        if volumes and volumes.get(name) is not None:
            extra = f" — {volumes[name]:,.1f} mL"
        parts.append(
            f'<span style="display:inline-block;width:0.9em;height:0.9em;background:{colour};'
            f'border:1px solid #555;vertical-align:middle;margin-right:0.3em"></span>'
            f"{html.escape(name)}{html.escape(extra)}"
        )
    st.markdown("Legend: " + " &nbsp; ".join(parts), unsafe_allow_html=True)


def probability_bars(prediction: Prediction) -> None:
    """One bar per label, and the decision at the model's threshold."""
    for lab in prediction.labels:
        p = float(lab.probability or 0.0)
        st.progress(min(max(p, 0.0), 1.0), text=f"{lab.name}: {p:.1%}")
    if prediction.decision is not None and prediction.threshold is not None:
        positive = prediction.labels[-1].name
        if prediction.decision:
            st.success(
                f"Decision: **{positive}** (probability ≥ threshold {prediction.threshold:g})."
            )
        else:
            st.info(
                f"Decision: **not {positive}** (probability < threshold {prediction.threshold:g})."
            )
    elif prediction.top_label is not None:
        st.info(
            f"Most likely: **{prediction.top_label}** ({(prediction.top_probability or 0):.1%})."
        )

"""Widgets shared by the pages."""

from __future__ import annotations

import numpy as np
import streamlit as st

from medmodels.scans import LoadResult, Scan

RESEARCH_NOTICE = "Research use only — not for diagnosis."


def research_notice() -> None:
    """The notice every page carries."""
    st.warning(RESEARCH_NOTICE, icon="⚠️")


def load_report(result: LoadResult) -> None:
    """Rejected files and upload warnings, one line each, in plain words."""
    for problem in result.problems:
        st.error(f"**{problem.name}** — {problem.reason}")
    for note in result.warnings:
        st.info(note)


def scan_facts(scan: Scan) -> None:
    """What the loader found in one scan, and what it removed."""
    st.markdown(f"**{scan.describe()}** ({scan.source_format}, {scan.file_count} file(s))")
    for note in scan.warnings:
        st.info(note)
    if scan.removed:
        st.caption("Identifying attributes removed: " + ", ".join(scan.removed))
    else:
        st.caption("No identifying attributes were found.")


def slice_image(scan: Scan, index: int) -> np.ndarray:
    """One slice scaled to 0–255 for display (1st–99th percentile window)."""
    plane = scan.array[index].astype(np.float32)
    lo, hi = np.percentile(plane, [1, 99])
    if hi <= lo:
        hi = lo + 1.0
    return (np.clip((plane - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)

"""Deep links: ``?model=…&version=…&sample=…`` opens the Try page with those selected and runs;
the URL follows the user's selections, and the parameters survive switching pages."""

from __future__ import annotations

import streamlit as st

LINK_KEYS = ("model", "version", "sample")
_APPLIED = "_link_applied"  # the link parameters already turned into selections
_PARAMS = "_link_params"  # the parameters to keep in the URL across pages


def _current() -> tuple[str | None, ...]:
    return tuple(st.query_params.get(k) or None for k in LINK_KEYS)


def pending() -> dict[str, str] | None:
    """The deep-link parameters not yet applied in this session (None when there are none)."""
    values = _current()
    if not any(values) or st.session_state.get(_APPLIED) == values:
        return None
    st.session_state[_APPLIED] = values
    return {k: v for k, v in zip(LINK_KEYS, values, strict=True) if v}


def update(model: str | None, version: str | None, sample: str | None) -> None:
    """Make the URL say what is selected (and remember it for other pages)."""
    values = (model, version, sample)
    for k, v in zip(LINK_KEYS, values, strict=True):
        if v:
            if st.query_params.get(k) != v:
                st.query_params[k] = v
        elif k in st.query_params:
            del st.query_params[k]
    st.session_state[_APPLIED] = values
    st.session_state[_PARAMS] = {k: v for k, v in zip(LINK_KEYS, values, strict=True) if v}


def restore() -> None:
    """Put the remembered parameters back into the URL after a page switch dropped them."""
    kept = st.session_state.get(_PARAMS)
    if kept and not any(st.query_params.get(k) for k in LINK_KEYS):
        for k, v in kept.items():
            st.query_params[k] = v

"""Streamlit-only helpers (cached resources, shared widgets, the viewer). The library never
imports this package."""

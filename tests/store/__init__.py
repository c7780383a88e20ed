"""Tests of medmodels.store (a package so its conftest and helpers do not clash with others)."""

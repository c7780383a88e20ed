"""The reference input: the first real sample that suits the model, else a seeded synthetic scan
that says why."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medmodels.config import load_settings
from medmodels.sheets import choose_reference, load_reference, synthetic_reference

from .conftest import manifest

SAMPLE_DATA = Path(__file__).resolve().parents[2] / "sample_data"


def _ct(spacing: list[float]):
    return manifest(
        "ct-test",
        input={
            "modalities": ["CT"],
            "dimensionality": "slice2d",
            "name": "image",
            "shape": ["N", 1, None, None],
            "units": "HU",
            "preprocessing": [{"op": "window", "center": 40, "width": 400}],
            "spacing_range_mm": spacing,
        },
    )


def test_ct_models_get_the_phantom_or_the_next_sample_that_fits() -> None:
    settings = load_settings(sample_data=SAMPLE_DATA)
    reference, scan = choose_reference(_ct([0.4, 2.0]), settings)
    assert (reference.kind, reference.name) == ("sample", "ct-chest-phantom")
    assert reference.shape_zyx == scan.shape == (64, 256, 256)
    assert reference.note is None

    reference, scan = choose_reference(_ct([0.5, 0.7]), settings)  # the phantom is 1.5 mm
    assert reference.name == "dicom/CT_small.dcm" and scan.shape == (1, 128, 128)


def test_no_fitting_sample_gives_a_synthetic_scan_that_says_why() -> None:
    settings = load_settings(sample_data=SAMPLE_DATA)
    reference, scan = choose_reference(_ct([3.0, 4.0]), settings)
    assert reference.kind == "synthetic"
    assert "ct-chest-phantom does not suit the model" in (reference.note or "")
    assert scan.modality == "CT" and scan.shape == (32, 256, 256)
    # Synthetic scans are reproducible from their description.
    again = load_reference(reference, settings)
    assert np.array_equal(again.array, scan.array)

    tiny = synthetic_reference(_ct([3.0, 4.0]), shape_zyx=(2, 8, 8))
    assert tiny.spacing_mm == (3.5, 3.5, 3.5) and tiny.scan_kind == "volume"

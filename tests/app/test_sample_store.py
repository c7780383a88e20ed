"""The app on the real sample models and sample scans (model_store/, sample_data/): the deep link
of the README, results checked against the phantom's ground truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from .conftest import errors, sample_store_problem, texts

PROBLEM = sample_store_problem()
pytestmark = pytest.mark.skipif(PROBLEM is not None, reason=str(PROBLEM))

# The phantom's true volumes, from its ground truth (also listed in sample_data/README.md).
_TRUTH = Path(__file__).resolve().parents[2] / "sample_data" / "ct-chest-phantom-truth.npz"
with np.load(_TRUTH) as _npz:
    _VOXEL_ML = float(np.prod(_npz["spacing_mm"])) / 1000.0
    TRUE_LUNG_ML = float((_npz["labels"] == 2).sum()) * _VOXEL_ML
    TRUE_BODY_WITHOUT_LUNGS_ML = float((_npz["labels"] == 1).sum()) * _VOXEL_ML


def _volumes(at) -> dict[str, float]:
    table = next(d.value for d in at.dataframe if "Volume (mL)" in d.value.columns)
    return dict(zip(table["Label"], table["Volume (mL)"].astype(float), strict=True))


def test_the_readme_deep_link_measures_the_phantom(sample_app) -> None:
    at = sample_app(model="ct-body-lung", version="1.1.0", sample="ct-chest-phantom").run()
    assert not at.exception, at.exception
    volumes = _volumes(at)
    assert abs(volumes["lung"] - TRUE_LUNG_ML) / TRUE_LUNG_ML < 0.05
    assert abs(volumes["body"] - TRUE_BODY_WITHOUT_LUNGS_ML) / TRUE_BODY_WITHOUT_LUNGS_ML < 0.05
    legend = next(m.value for m in at.markdown if m.value.startswith("Legend:"))
    assert "#2a9d8f" in legend and "lung" in legend  # the manifest's colour and name
    result = at.session_state["try_result"]
    counts = (result.prediction.label_volume > 0).reshape(64, -1).sum(axis=1)
    assert at.slider(key="try_view_slice").value == int(counts.argmax()) + 1
    assert at.selectbox(key="try_view_preset").value == "Lung"


def test_compare_the_two_lung_versions(sample_app) -> None:
    at = sample_app(model="ct-body-lung", sample="ct-chest-phantom").run()
    assert at.session_state["try_result"].prediction.version == "1.1.0"  # production
    at.selectbox(key="try_compare_version").set_value("1.0.0")
    at.button(key="try_compare_run").click().run()
    assert not at.exception
    table = next(d.value for d in at.dataframe if "Δ (mL)" in d.value.columns)
    assert list(table["Label"]) == ["body", "lung"]
    assert "voxels differ" in texts(at)


def test_an_mr_brain_runs_on_the_brain_model_and_not_on_the_ct_one(sample_app) -> None:
    at = sample_app(model="ct-body-lung", sample="mr-brain-template").run()
    assert "expects CT" in "\n".join(errors(at))
    at.button(key="try_suggest_brain-tissue").click().run()
    assert at.selectbox(key="try_model").value == "brain-tissue"
    at.button(key="try_run").click().run()
    assert not at.exception
    volumes = _volumes(at)
    assert set(volumes) == {"CSF", "grey matter", "white matter"}
    assert all(v > 10 for v in volumes.values())

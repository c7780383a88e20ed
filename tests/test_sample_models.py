"""The committed sample model store: intact, documented, and its metrics really measured.

Every figure in a manifest's metrics is measured again here, with ``predict`` on the committed
models and the sample data, and must match within 1e-6: proof that the build script measured
them rather than typing them in. Runtime dependencies only (no torch); the brain model's Dice
against the template labels needs nilearn's bundled tissue maps (the ``build`` extra) and is
skipped without them.
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib.util import find_spec
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from nibabel.processing import resample_from_to

from medmodels.inference import clear_sessions, predict
from medmodels.scans import Scan, load_scans
from medmodels.store import Manifest, ModelStore, render_card

ROOT = Path(__file__).resolve().parents[1]
STORE = ROOT / "model_store"
SAMPLE = ROOT / "sample_data"
VERSIONS = {"ct-body-lung": ["1.1.0", "1.0.0"], "brain-tissue": ["1.0.0+int8", "1.0.0"]}

CT_PHANTOM = "ct-chest-phantom (sample_data: 64 axial slices, 1.5 mm pixels, 5 mm slices)"
THIN_WALL_MM = 8.0
CT_THIN_WALL = (
    f"ct-chest-phantom, thin-wall variant (outer {THIN_WALL_MM:g} mm of the body set to air)"
)
BRAIN_NAMES = ("background", "CSF", "grey matter", "white matter")
HELD_OUT_EVERY, HELD_OUT_PHASE = 5, 2
TOLERANCE = 1e-6


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(a, b).sum()) / total


def one_scan(path: Path) -> Scan:
    result = load_scans(path).raise_if_empty()
    assert len(result.scans) == 1
    return result.scans[0]


def metric_table(manifest: Manifest) -> dict[tuple[str, str], float]:
    return {(m.name, m.dataset): m.value for m in manifest.card.metrics}


@pytest.fixture(scope="module")
def store() -> Iterator[ModelStore]:
    yield ModelStore(STORE)
    clear_sessions()


@pytest.fixture(scope="module")
def labels_of(store: ModelStore) -> dict[tuple[str, str], np.ndarray]:
    """Memo of predicted label volumes, keyed by (model ref, case)."""
    return {}


def run(
    store: ModelStore, memo: dict[tuple[str, str], np.ndarray], ref: str, case: str, scan: Scan
) -> np.ndarray:
    if (ref, case) not in memo:
        labels = predict(scan, store.get(ref)).label_volume
        assert labels is not None and labels.shape == scan.shape
        memo[ref, case] = labels
    return memo[ref, case]


# --------------------------------------------------------------------------- the store itself


def test_every_version_is_intact_and_its_readme_is_its_card(store: ModelStore) -> None:
    assert store.models() == sorted(VERSIONS)
    for name, versions in VERSIONS.items():
        assert store.versions(name) == versions
        for version in versions:
            loaded = store.get(f"{name}@{version}")  # verifies every SHA-256
            assert store.verify(loaded.ref).ok
            assert set(loaded.manifest.files) == {"model.onnx", "README.md"}
            readme = loaded.readme_path.read_text(encoding="utf-8")
            assert readme == render_card(loaded.manifest)
            assert loaded.manifest.card.metrics, f"{loaded.ref} has no metrics"


def test_aliases_and_variants(store: ModelStore) -> None:
    assert store.aliases("ct-body-lung") == {"production": "1.1.0"}
    assert store.resolve("ct-body-lung") == ("ct-body-lung", "1.1.0")
    assert store.resolve("brain-tissue") == ("brain-tissue", "1.0.0")
    int8 = store.get("brain-tissue@1.0.0+int8").manifest
    assert int8.derived_from == "1.0.0"
    old = store.get("ct-body-lung@1.0.0").manifest
    assert "7×7" in old.changelog and "stripes" in old.changelog
    assert "stripes" in old.card.limitations[0]


def test_store_is_small() -> None:
    files = [p for p in STORE.rglob("*") if p.is_file()]
    for model in STORE.rglob("model.onnx"):
        assert model.stat().st_size < 3_000_000, model
    assert sum(p.stat().st_size for p in files) < 10_000_000


# --------------------------------------------------------------------------- ct-body-lung


@pytest.fixture(scope="module")
def ct_cases() -> dict[str, tuple[Scan, np.ndarray]]:
    """The phantom (its lower chest wall is a thin 13 mm) with its truth."""
    phantom = one_scan(SAMPLE / "ct-chest-phantom")
    with np.load(SAMPLE / "ct-chest-phantom-truth.npz") as npz:
        truth = npz["labels"]
    assert truth.shape == phantom.shape
    return {CT_PHANTOM: (phantom, truth)}


def test_ct_body_lung_finds_the_phantom_lungs(
    store: ModelStore, labels_of: dict[tuple[str, str], np.ndarray], ct_cases: dict
) -> None:
    scan, truth = ct_cases[CT_PHANTOM]
    true_lung = truth == 2
    fixed = run(store, labels_of, "ct-body-lung@1.1.0", CT_PHANTOM, scan) == 2
    broken = run(store, labels_of, "ct-body-lung@1.0.0", CT_PHANTOM, scan) == 2
    assert dice(fixed, true_lung) > 0.95
    assert abs(fixed.sum() / true_lung.sum() - 1) < 0.05
    assert dice(broken, true_lung) < dice(fixed, true_lung)
    assert broken.sum() < fixed.sum()
    # the production alias is what `medmodels predict ct-body-lung` runs
    assert store.get("ct-body-lung").version == "1.1.0"


def test_ct_body_lung_1_0_0_loses_lungs_behind_the_thin_lower_chest_wall(
    store: ModelStore, labels_of: dict[tuple[str, str], np.ndarray], ct_cases: dict
) -> None:
    scan, truth = ct_cases[CT_PHANTOM]
    fixed = run(store, labels_of, "ct-body-lung@1.1.0", CT_PHANTOM, scan) == 2
    broken = run(store, labels_of, "ct-body-lung@1.0.0", CT_PHANTOM, scan) == 2
    true_lung = truth == 2
    assert dice(fixed, true_lung) > 0.95
    assert dice(broken, true_lung) < 0.9
    assert broken.sum() < 0.8 * true_lung.sum()  # whole slices of lung lost: stripes
    lost_slices = [
        k
        for k in range(truth.shape[0])
        if true_lung[k].sum() > 500 and broken[k].sum() < 0.2 * true_lung[k].sum()
    ]
    kept_slices = [
        k
        for k in range(truth.shape[0])
        if true_lung[k].sum() > 500 and broken[k].sum() > 0.8 * true_lung[k].sum()
    ]
    assert lost_slices and kept_slices


@pytest.mark.parametrize("version", VERSIONS["ct-body-lung"])
def test_ct_metrics_were_measured(
    version: str,
    store: ModelStore,
    labels_of: dict[tuple[str, str], np.ndarray],
    ct_cases: dict,
) -> None:
    ref = f"ct-body-lung@{version}"
    recorded = metric_table(store.get(ref).manifest)
    assert {dataset for _, dataset in recorded} == set(ct_cases)
    for case, (scan, truth) in ct_cases.items():
        labels = run(store, labels_of, ref, case, scan)
        voxel_ml = scan.voxel_volume_ml or 0.0
        true_ml = float((truth == 2).sum()) * voxel_ml
        found_ml = float((labels == 2).sum()) * voxel_ml
        measured = {
            "lung Dice": dice(labels == 2, truth == 2),
            "lung volume (mL)": found_ml,
            "lung volume error (%)": 100.0 * (found_ml - true_ml) / true_ml,
            "body outline Dice": dice(labels > 0, truth > 0),
        }
        for name, value in measured.items():
            assert recorded.pop((name, case)) == pytest.approx(value, abs=TOLERANCE), name
    assert not recorded, f"metrics this test does not measure: {sorted(recorded)}"


# --------------------------------------------------------------------------- brain-tissue


@pytest.fixture(scope="module")
def mni() -> Scan:
    return one_scan(SAMPLE / "mni152-t1-2mm.nii.gz")


def held_out(n: int) -> np.ndarray:
    return np.arange(HELD_OUT_PHASE, n, HELD_OUT_EVERY)


def brain_dataset(n_held_out: int) -> str:
    return (
        f"MNI152 2009 template (sample_data/mni152-t1-2mm.nii.gz): {n_held_out} held-out "
        f"axial slices (z mod {HELD_OUT_EVERY} = {HELD_OUT_PHASE}), 2 mm, labels from the "
        "template's tissue maps"
    )


@pytest.fixture(scope="module")
def brain_labels(
    store: ModelStore, labels_of: dict[tuple[str, str], np.ndarray], mni: Scan
) -> dict[str, np.ndarray]:
    """Held-out slices labelled by 1.0.0 and by 1.0.0+int8."""
    z = held_out(mni.shape[0])
    return {
        v: run(store, labels_of, f"brain-tissue@{v}", "mni", mni)[z]
        for v in VERSIONS["brain-tissue"]
    }


def test_int8_agrees_with_fp32(brain_labels: dict[str, np.ndarray]) -> None:
    fp32, int8 = brain_labels["1.0.0"], brain_labels["1.0.0+int8"]
    assert np.mean(fp32 == int8) >= 0.90
    brain = (fp32 > 0) | (int8 > 0)
    assert np.mean(fp32[brain] == int8[brain]) >= 0.90
    for label in (1, 2, 3):
        assert (fp32 == label).any() and (int8 == label).any()


def test_int8_agreement_metrics_were_measured(
    store: ModelStore, mni: Scan, brain_labels: dict[str, np.ndarray]
) -> None:
    fp32, int8 = brain_labels["1.0.0"], brain_labels["1.0.0+int8"]
    dataset = brain_dataset(fp32.shape[0])
    recorded = metric_table(store.get("brain-tissue@1.0.0+int8").manifest)
    brain = (fp32 > 0) | (int8 > 0)
    measured = {
        "label agreement with 1.0.0 (all voxels)": float(np.mean(int8 == fp32)),
        "label agreement with 1.0.0 (brain voxels)": float(np.mean(int8[brain] == fp32[brain])),
    }
    for i, name in enumerate(BRAIN_NAMES[1:], start=1):
        measured[f"Dice {name} vs 1.0.0"] = dice(int8 == i, fp32 == i)
    for name, value in measured.items():
        assert recorded[name, dataset] == pytest.approx(value, abs=TOLERANCE), name


def _nilearn_data() -> Path | None:
    spec = find_spec("nilearn")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "datasets" / "data"


def test_brain_dice_metrics_were_measured(
    store: ModelStore, mni: Scan, brain_labels: dict[str, np.ndarray], tmp_path: Path
) -> None:
    data = _nilearn_data()
    if data is None:
        pytest.skip("needs nilearn's template tissue maps (pip install -e .[build])")
    # the label rule of the manifests' training_data, on the T1's own 2 mm grid
    t1_img = nib.load(SAMPLE / "mni152-t1-2mm.nii.gz")
    p = {
        t: resample_from_to(
            nib.load(data / f"mni_icbm152_{t}_tal_nlin_sym_09a_converted.nii.gz"), t1_img, order=1
        ).get_fdata()
        / 255.0
        for t in ("gm", "wm")
    }
    csf = np.clip(1.0 - p["gm"] - p["wm"], 0.0, 1.0)
    truth = (1 + np.argmax(np.stack([csf, p["gm"], p["wm"]]), axis=0)).astype(np.uint8)
    truth[np.asarray(t1_img.dataobj) == 0] = 0
    nib.save(nib.Nifti1Image(truth, t1_img.affine), tmp_path / "labels.nii.gz")
    truth_zyx = one_scan(tmp_path / "labels.nii.gz").array[held_out(mni.shape[0])]
    dataset = brain_dataset(truth_zyx.shape[0])
    for version, labels in brain_labels.items():
        recorded = metric_table(store.get(f"brain-tissue@{version}").manifest)
        for i, name in enumerate(BRAIN_NAMES[1:], start=1):
            value = dice(labels == i, truth_zyx == i)
            assert recorded[f"Dice {name}", dataset] == pytest.approx(value, abs=TOLERANCE)
        assert 0.7 < recorded["Dice grey matter", dataset] <= 1.0


def test_brain_tissue_runs_on_a_real_1mm_slice(store: ModelStore) -> None:
    """The dipy coronal slice (1 mm, real head): resampled to 2 mm, padded, mapped back."""
    scan = one_scan(SAMPLE / "dipy-t1-coronal-slice.nii.gz")
    labels = predict(scan, store.get("brain-tissue")).label_volume
    assert labels is not None and labels.shape == scan.shape
    assert set(np.unique(labels)) <= {0, 1, 2, 3} and (labels > 0).mean() > 0.1

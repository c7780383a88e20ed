"""Helpers shared by the benchmarks in bench/: machine facts, generated CT series, alternating
timings with medians, ratio lines against a target, and the model store to measure.

Not a benchmark itself (``make bench`` runs it too; it only prints the machine facts).
"""

from __future__ import annotations

import datetime as _dt
import gc
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SAMPLE_CT = ROOT / "sample_data" / "ct-chest-phantom"
MODEL_STORE = ROOT / "model_store"
SERIES_SEED = 20261129


# --------------------------------------------------------------------------- machine facts


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                return " ".join(value.split())
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_facts() -> str:
    """One line: CPU, cores, library versions, load average and date (for bench/README.md)."""
    import onnxruntime
    import pydicom

    try:
        import SimpleITK as sitk

        sitk_version = sitk.Version_VersionString()
    except ImportError:
        sitk_version = "not installed"
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{cpu_model()}, {cores} cores | Python {platform.python_version()}, numpy "
        f"{np.__version__}, pydicom {pydicom.__version__}, SimpleITK {sitk_version}, "
        f"onnxruntime {onnxruntime.__version__} | load average {load} | "
        f"{_dt.datetime.now().astimezone().isoformat(timespec='minutes')}"
    )


def header(title: str) -> None:
    print(title)
    print(f"machine: {machine_facts()}")


# --------------------------------------------------------------------------- timing


@dataclass
class Timings:
    """Seconds per run of each case: wall clock, and CPU time of this process (all threads).

    On a busy machine the wall clock includes time spent waiting for a core; the CPU time of a
    single-threaded case does not, so its ratio is the steadier estimate of the work done.
    """

    wall: dict[str, list[float]] = field(default_factory=dict)
    cpu: dict[str, list[float]] = field(default_factory=dict)

    def median_ms(self, name: str) -> float:
        return statistics.median(self.wall[name]) * 1000

    def ratio(self, a: str, b: str, *, clock: str = "wall") -> float:
        table = self.wall if clock == "wall" else self.cpu
        return statistics.median(table[a]) / statistics.median(table[b])

    def lines(self, width: int = 28) -> list[str]:
        out = []
        for name, wall in self.wall.items():
            w = [s * 1000 for s in wall]
            c = [s * 1000 for s in self.cpu[name]]
            out.append(
                f"  {name:<{width}} wall median {statistics.median(w):9.1f} ms  "
                f"min {min(w):9.1f} ms | cpu median {statistics.median(c):9.1f} ms  (n={len(w)})"
            )
        return out


def alternate(cases: dict[str, Callable[[], Any]], *, repeats: int, warmup: int = 1) -> Timings:
    """Run every case ``warmup`` times, then ``repeats`` rounds of A, B, C, A, B, C, ...

    Alternating spreads the machine's noise evenly over the cases; each result is dropped (and
    garbage collected) before the next run starts.
    """
    for _ in range(warmup):
        for fn in cases.values():
            fn()
            gc.collect()
    timings = Timings({name: [] for name in cases}, {name: [] for name in cases})
    for _ in range(repeats):
        for name, fn in cases.items():
            c0, t0 = time.process_time(), time.perf_counter()
            result = fn()
            timings.wall[name].append(time.perf_counter() - t0)
            timings.cpu[name].append(time.process_time() - c0)
            del result
            gc.collect()
    return timings


def median(values: list[float]) -> float:
    return statistics.median(values)


def ratio_line(
    what: str, ratio: float, *, at_most: float | None = None, below: bool = False
) -> str:
    """``what: 1.07x (target <= 1.15x): met`` -- ``below`` means strictly < 1 (faster)."""
    if below:
        verdict = "met" if ratio < 1.0 else "MISSED"
        target = "target < 1.00x, i.e. faster"
    else:
        assert at_most is not None
        verdict = "met" if ratio <= at_most else "MISSED"
        target = f"target <= {at_most:.2f}x"
    return f"{what}: {ratio:.3f}x ({target}): {verdict}"


# --------------------------------------------------------------------------- generated series


@contextmanager
def temp_dir(prefix: str = "medmodels-bench-") -> Iterator[Path]:
    """A temporary folder, deleted afterwards (also on errors and Ctrl-C)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def make_ct_series(
    folder: Path,
    *,
    rows: int = 512,
    cols: int = 512,
    slices: int = 300,
    pixel_mm: float = 0.7,
    slice_mm: float = 1.0,
    seed: int = SERIES_SEED,
) -> Path:
    """Write a seeded synthetic chest-like CT series into ``folder`` and return it.

    Uncompressed Explicit VR Little Endian, stored int16 (PixelRepresentation 1), rescale
    slope 1 and intercept -1024, axial (IOP 1\\0\\0\\0\\1\\0), IPP stepping ``slice_mm`` in z;
    file names are a seeded permutation of the slice order, so readers must sort by position.
    Content: air, an elliptic body (40 HU, texture) with two lungs (-850 HU) and a spine.
    """
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
    cy, cx = rows / 2, cols / 2
    body = ((xx - cx) / (0.42 * cols)) ** 2 + ((yy - cy) / (0.30 * rows)) ** 2 <= 1
    lung_l = ((xx - cx - 0.17 * cols) / (0.11 * cols)) ** 2 + (
        (yy - cy + 0.02 * rows) / (0.18 * rows)
    ) ** 2 <= 1
    lung_r = ((xx - cx + 0.17 * cols) / (0.11 * cols)) ** 2 + (
        (yy - cy + 0.02 * rows) / (0.18 * rows)
    ) ** 2 <= 1
    spine = ((xx - cx) / (0.04 * cols)) ** 2 + ((yy - cy - 0.2 * rows) / (0.05 * rows)) ** 2 <= 1
    hu = np.full((rows, cols), -1000, dtype=np.int16)
    hu[body] = 40
    hu[spine] = 700

    series_uid = generate_uid(entropy_srcs=[f"bench-series-{seed}-{rows}-{slices}"])
    study_uid = generate_uid(entropy_srcs=[f"bench-study-{seed}"])
    order = rng.permutation(slices)
    for k in range(slices):
        z = k * slice_mm
        taper = 1.0 - abs(k - slices / 2) / (slices * 0.75)  # lungs shrink towards both ends
        image = hu.copy()
        lungs = (lung_l | lung_r) & (
            ((xx - cx) / cols) ** 2 + ((yy - cy) / rows) ** 2 <= (0.4 * taper) ** 2
        )
        image[lungs] = -850
        image += rng.integers(-15, 16, size=(rows, cols), dtype=np.int16)
        stored = (image.astype(np.int32) + 1024).astype(np.int16)

        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        sop_uid = generate_uid(entropy_srcs=[series_uid, str(k)])
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = sop_uid
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.FrameOfReferenceUID = study_uid
        ds.PatientName = "BENCH^SYNTHETIC"  # fictitious: exercises de-identification
        ds.PatientID = "BENCH-0001"
        ds.PatientBirthDate = "19700101"
        ds.StudyDate = "20260101"
        ds.Modality = "CT"
        ds.SeriesNumber = 1
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [-cols * pixel_mm / 2, -rows * pixel_mm / 2, z]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [pixel_mm, pixel_mm]
        ds.SliceThickness = slice_mm
        ds.Rows, ds.Columns = rows, cols
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        ds.RescaleIntercept = -1024
        ds.RescaleSlope = 1
        ds.RescaleType = "HU"
        ds.PixelData = stored.tobytes()
        ds.save_as(folder / f"IM-{order[k] + 1:04d}.dcm", enforce_file_format=True)
    del pydicom
    return folder


# --------------------------------------------------------------------------- model store


def model_store(work: Path) -> tuple[Path, str]:
    """The store to measure (``model_store/``, the sample models) and a note saying so.

    Stops with the reason when a version does not load: rebuild the sample store with
    ``python tools/build_sample_models.py`` rather than benchmark a stand-in. ``work`` is
    unused and kept so every script calls this the same way.
    """
    from medmodels.errors import MedModelsError
    from medmodels.store import ModelStore

    store = ModelStore(MODEL_STORE)
    try:
        for name in store.models():
            for version in store.versions(name):
                store.get(f"{name}@{version}")
    except MedModelsError as exc:
        raise SystemExit(
            f"model_store/ does not load ({exc}); rebuild it with "
            "'python tools/build_sample_models.py'"
        ) from None
    return MODEL_STORE, "model_store/ (sample models)"


if __name__ == "__main__":
    header("bench/_common.py: shared helpers (no benchmark); machine facts:")

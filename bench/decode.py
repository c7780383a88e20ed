"""Decoding a DICOM series: ``medmodels.load_scans`` versus the bare libraries.

Target (DESIGN.md, Performance): <= 1.15x a plain ``pydicom.dcmread(...).pixel_array`` loop
with the same sort and rescale, and faster than SimpleITK's series reader.

For two series -- the sample CT (sample_data/ct-chest-phantom: 64 x 256x256, RLE Lossless) and a
generated 512x512x300 CT (uncompressed Explicit VR Little Endian, int16, intercept -1024, seeded,
written to a temp folder and deleted afterwards) -- times, alternating A, B, C, A, B, C, ...:

* ``medmodels``: ``load_scans([folder])`` (reads, checks, de-identifies, sorts, decodes, hashes);
* ``pydicom loop``: ``dcmread`` every file, sort by ImagePositionPatient along the slice normal,
  ``pixel_array`` x slope + intercept (int32 arithmetic, ``np.add(..., out=)``) into one
  preallocated int16 volume -- the lean loop a careful programmer writes;
* ``SimpleITK``: ``ImageSeriesReader`` (GetGDCMSeriesFileNames + Execute) + GetArrayFromImage;

checks that the three volumes are equal, and prints medians and the ratios.
Run: ``.venv/bin/python bench/decode.py [--repeats N]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from _common import (
    SAMPLE_CT,
    alternate,
    header,
    make_ct_series,
    ratio_line,
    temp_dir,
)

from medmodels.config import load_settings
from medmodels.scans import load_scans

SETTINGS = load_settings()


def with_medmodels(folder: Path) -> np.ndarray:
    result = load_scans([folder], settings=SETTINGS)
    assert len(result.scans) == 1, result.problems
    return result.scans[0].array


def with_pydicom(folder: Path) -> np.ndarray:
    datasets = [pydicom.dcmread(path) for path in sorted(folder.iterdir())]
    iop = np.asarray(datasets[0].ImageOrientationPatient, dtype=np.float64)
    normal = np.cross(iop[:3], iop[3:])
    datasets.sort(key=lambda ds: float(np.dot(np.asarray(ds.ImagePositionPatient, float), normal)))
    first = datasets[0]
    volume = np.empty((len(datasets), first.Rows, first.Columns), dtype=np.int16)
    for k, ds in enumerate(datasets):
        slope = np.int32(ds.get("RescaleSlope", 1))
        intercept = np.int32(ds.get("RescaleIntercept", 0))
        pixels = ds.pixel_array
        if slope != 1:
            pixels = pixels * slope
        # Computed in int32 and written straight into the int16 volume (no temporary array).
        np.add(pixels, intercept, out=volume[k], casting="unsafe")
    return volume


def with_simpleitk(folder: Path) -> np.ndarray:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder)))
    return sitk.GetArrayFromImage(reader.Execute())


def bench(label: str, folder: Path, repeats: int) -> list[str]:
    a, b, c = with_medmodels(folder), with_pydicom(folder), with_simpleitk(folder)
    same = np.array_equal(a, b) and np.array_equal(a, c.astype(a.dtype))
    print(
        f"\n{label}: {a.shape[0]} x {a.shape[1]}x{a.shape[2]}, {a.dtype}, {a.nbytes / 1e6:.0f} MB"
    )
    print(f"  volumes identical across the three readers: {same}")
    del a, b, c
    times = alternate(
        {
            "medmodels load_scans": lambda: with_medmodels(folder),
            "pydicom loop": lambda: with_pydicom(folder),
            "SimpleITK series reader": lambda: with_simpleitk(folder),
        },
        repeats=repeats,
    )
    print("\n".join(times.lines()))
    ours, plain, itk = "medmodels load_scans", "pydicom loop", "SimpleITK series reader"
    lines = [
        ratio_line(f"{label}: medmodels / pydicom", times.ratio(ours, plain), at_most=1.15),
        ratio_line(f"{label}: medmodels / SimpleITK", times.ratio(ours, itk), below=True),
    ]
    print("  " + "\n  ".join(lines))
    print(
        f"  (cpu-time ratios, steadier on a busy machine: / pydicom "
        f"{times.ratio(ours, plain, clock='cpu'):.3f}x, / SimpleITK "
        f"{times.ratio(ours, itk, clock='cpu'):.3f}x; SimpleITK may use several threads)"
    )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="alternating rounds per series")
    args = parser.parse_args()
    header("bench/decode.py: DICOM series decode, medmodels vs pydicom loop vs SimpleITK")
    lines = bench("sample CT (64 x 256x256, RLE)", SAMPLE_CT, args.repeats * 2)
    with temp_dir() as work:
        folder = make_ct_series(work / "ct-512x512x300")
        lines += bench("generated CT (300 x 512x512, uncompressed)", folder, args.repeats)
    print("\nsummary:")
    for line in lines:
        print("  " + line)


if __name__ == "__main__":
    main()

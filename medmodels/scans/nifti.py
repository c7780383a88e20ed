"""NIfTI-1/2 (``.nii``, ``.nii.gz`` once inflated): checked, reoriented, converted to a Scan.

The voxel axes are reoriented to the canonical order documented in
:mod:`medmodels.scans.types` (x right→left, y anterior→posterior, z inferior→superior, i.e.
nibabel axis codes ``('L', 'P', 'S')``) and the RAS affine is converted to LPS. Header
extensions (which may carry anything, including identifying text) are never read into the scan.
"""

from __future__ import annotations

import hashlib
import warnings

import nibabel as nib
import numpy as np
from nibabel import orientations

from medmodels.errors import UnreadableScanError
from medmodels.scans.limits import human_bytes
from medmodels.scans.types import Scan

_LPS = orientations.axcodes2ornt(("L", "P", "S"))
_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


_problem = UnreadableScanError.for_file


def is_nifti(head: bytes) -> bool:
    """True when ``head`` (the first 348+ bytes) is a NIfTI-1 or NIfTI-2 header."""
    if len(head) >= 348:
        for order in ("<", ">"):
            if int(np.frombuffer(head[:4], dtype=f"{order}i4")[0]) == 348 and head[344:348] in (
                b"n+1\x00",
                b"ni1\x00",
            ):
                return True
    if len(head) >= 540:
        for order in ("<", ">"):
            if (
                int(np.frombuffer(head[:4], dtype=f"{order}i4")[0]) == 540
                and head[4:8] == b"n+2\x00"
            ):
                return True
    return False


def load(name: str, data: bytes, *, max_image_bytes: int) -> Scan:
    """Turn one NIfTI file's bytes into a :class:`Scan`; raises UnreadableScanError."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            klass = (
                nib.Nifti2Image
                if data[:4] in (b"\x1c\x02\x00\x00", b"\x00\x00\x02\x1c")
                else nib.Nifti1Image
            )
            img = klass.from_bytes(data)
    except Exception:
        raise _problem(name, "damaged", "The NIfTI header is damaged and cannot be read.") from None
    header = img.header
    had_extensions = bool(getattr(header, "extensions", None))
    shape = tuple(int(s) for s in img.shape)
    notes: list[str] = []
    if len(shape) > 4 and any(s > 1 for s in shape[4:]):
        raise _problem(
            name,
            "unsupported",
            "The NIfTI image has more than 4 dimensions; upload a 3D (or 4D) image.",
        )
    dtype = header.get_data_dtype()
    if any(s <= 0 for s in shape) or dtype.kind not in "iuf" or dtype.itemsize > 8:
        raise _problem(name, "unsupported", "The NIfTI image has an unsupported size or data type.")
    volume_voxels = int(np.prod(shape[:3]))
    needed = volume_voxels * max(dtype.itemsize, 4)
    if needed > max_image_bytes:
        raise _problem(
            name,
            "image-too-large",
            f"The image declares {human_bytes(needed)} of voxels, more than the limit of "
            f"{human_bytes(max_image_bytes)} (MEDMODELS_MAX_IMAGE_MB).",
        )
    total = int(np.prod(shape)) * dtype.itemsize
    offset = int(header.get("vox_offset", 352))
    if len(data) < offset + total:
        raise _problem(
            name, "truncated", "The NIfTI file ends before all its voxels; it is truncated."
        )
    affine = img.affine
    if (
        affine is None
        or not np.all(np.isfinite(affine))
        or abs(np.linalg.det(affine[:3, :3])) < 1e-12
    ):
        raise _problem(
            name,
            "bad-geometry",
            "The NIfTI affine is missing, singular or not finite, so positions and volumes "
            "would be wrong. Fix the header (qform/sform) and upload again.",
        )
    if len(shape) == 4 and shape[3] > 1:
        notes.append(f"The NIfTI file holds {shape[3]} volumes (4D); only the first one is used.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dataobj = img.dataobj
            raw = np.asanyarray(dataobj[..., 0] if len(shape) >= 4 else dataobj[...])
    except Exception:
        raise _problem(name, "damaged", "The NIfTI voxel data cannot be read.") from None
    while raw.ndim > 3:
        raw = raw[..., 0]
    if raw.ndim == 2:
        raw = raw[..., np.newaxis]
    if had_extensions:
        notes.append("NIfTI header extensions were ignored.")
    # Reorient voxel axes to L, P, S and express the affine in LPS.
    try:
        source = orientations.io_orientation(affine)
        transform = orientations.ornt_transform(source, _target(source, raw.shape))
        data_lps = orientations.apply_orientation(raw, transform)
        affine_ras = affine @ orientations.inv_ornt_aff(transform, raw.shape)
    except ValueError:
        raise _problem(
            name,
            "bad-geometry",
            "The NIfTI affine does not map the voxel axes to distinct directions, so the image "
            "cannot be oriented. Fix the header (qform/sform) and upload again.",
        ) from None
    affine_lps = _RAS_TO_LPS @ affine_ras
    spacing = tuple(float(s) for s in np.linalg.norm(affine_lps[:3, :3], axis=0))
    array = np.ascontiguousarray(np.transpose(data_lps, (2, 1, 0)))
    array = _narrow(array)
    if not np.all(np.isfinite(array)):
        raise _problem(name, "damaged", "The NIfTI image contains NaN or infinite voxel values.")
    modality, guess_note = _guess_modality(array)
    notes.append(guess_note)
    kind = "volume" if array.shape[0] > 1 else "slice"
    digest = hashlib.blake2b(np.ascontiguousarray(array).data.cast("B"), digest_size=16)
    digest.update(repr((array.shape, str(array.dtype), spacing)).encode())
    summary = {
        "modality": modality,
        "shape": list(array.shape),
        "spacing_mm": [round(s, 4) for s in spacing],
        "slices": int(array.shape[0]),
        "files": 1,
        "format": "NIfTI-2" if isinstance(img, nib.Nifti2Image) else "NIfTI-1",
        "orientation": "".join(orientations.aff2axcodes(affine)),
    }
    return Scan(
        array=array,
        spacing_mm=spacing,  # type: ignore[arg-type]
        affine=affine_lps,
        modality=modality,
        kind=kind,  # type: ignore[arg-type]
        summary=summary,
        warnings=tuple(notes),
        removed=("NIfTI description and header extensions",)
        if had_extensions or bytes(header.get("descrip", b"")).strip(b"\x00 ")
        else (),
        source_format="NIfTI",
        file_count=1,
        fingerprint=digest.hexdigest(),
    )


def _target(source: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The canonical voxel orientation for an image of ``shape`` oriented as ``source``.

    Volumes and axial slices: ``L, P, S``. A single coronal or sagittal slice is laid out so that
    it displays like a radiograph: its singleton axis becomes z, rows run superior→inferior and
    columns right→left (coronal) or anterior→posterior (sagittal).
    """
    singleton = [i for i, n in enumerate(shape[:3]) if n == 1]
    if len(singleton) != 1:
        return _LPS
    world_axis = int(source[singleton[0], 0])  # 0 = R/L, 1 = A/P, 2 = S/I
    if world_axis == 1:
        return orientations.axcodes2ornt(("L", "I", "P"))
    if world_axis == 0:
        return orientations.axcodes2ornt(("P", "I", "L"))
    return _LPS


def _narrow(array: np.ndarray) -> np.ndarray:
    """int16 when the values are integers that fit, else float32."""
    if array.dtype.kind in "iu":
        if array.size == 0 or (int(array.min()) >= -32768 and int(array.max()) <= 32767):
            return array.astype(np.int16, copy=False)
        return array.astype(np.float32)
    array = array.astype(np.float32, copy=False)
    if (
        array.size
        and np.all(np.isfinite(array))
        and float(array.min()) >= -32768
        and float(array.max()) <= 32767
        and np.array_equal(array, np.round(array))
    ):
        return array.astype(np.int16)
    return array


def _guess_modality(array: np.ndarray) -> tuple[str, str]:
    """NIfTI records no modality: CT when the intensities look like Hounsfield units."""
    sample = array[:: max(1, array.shape[0] // 16)].astype(np.float32, copy=False)
    low = float(np.percentile(sample, 1))
    if low <= -500:
        return "CT", (
            "NIfTI files do not record the modality; CT was assumed because the intensities "
            "look like Hounsfield units."
        )
    return "MR", (
        "NIfTI files do not record the modality; MR was assumed because the intensities do "
        "not look like Hounsfield units."
    )

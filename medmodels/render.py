"""Slices and label overlays as images, with Pillow and numpy only (no Streamlit, no matplotlib).

The viewer of the app, the shared view and the history thumbnails all draw through here:

* :func:`presets` gives the window/level choices for a modality (CT: lung, soft tissue, bone,
  brain; other modalities: automatic from percentiles, and the DICOM window when the file had
  one); :func:`window_to_uint8` applies one;
* :func:`render_slice` draws one slice with a label overlay (translucent fill with a crisp
  outline, or the outline only) and an optional highlight mask (e.g. pixels where two versions
  disagree), corrects non-square pixels and scales small images up for display;
* :func:`mask_to_nifti` writes a label volume as NIfTI in the scan's geometry, so the mask
  lands on the scan in any viewer.

Arrays follow :mod:`medmodels.scans.types`: volumes are ``[z, y, x]``, spacing is ``(x, y, z)``.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from PIL import Image

OverlayStyle = Literal["fill", "outline"]

DIFF_COLOUR = "#ff00ff"
"""Colour of pixels where two label maps disagree (magenta: not used by the sample models)."""


@dataclass(frozen=True)
class WindowLevel:
    """A display window: values in ``center ± width/2`` map to black…white."""

    center: float
    width: float

    @property
    def low(self) -> float:
        """Value shown as black."""
        return self.center - self.width / 2

    @property
    def high(self) -> float:
        """Value shown as white."""
        return self.center + self.width / 2

    def __str__(self) -> str:
        return f"W {self.width:g} / L {self.center:g}"


CT_PRESETS: dict[str, WindowLevel] = {
    "Lung": WindowLevel(center=-600, width=1500),
    "Soft tissue": WindowLevel(center=40, width=400),
    "Bone": WindowLevel(center=400, width=1800),
    "Brain": WindowLevel(center=40, width=80),
}
"""The usual CT windows, in Hounsfield units."""


def auto_window(array: np.ndarray, low_pct: float = 1.0, high_pct: float = 99.0) -> WindowLevel:
    """A window from the ``low_pct``–``high_pct`` percentiles of ``array`` (sampled when large)."""
    flat = np.asarray(array).ravel()
    if flat.size > 2_000_000:
        flat = flat[:: flat.size // 1_000_000]
    finite = flat[np.isfinite(flat)] if flat.dtype.kind == "f" else flat
    if finite.size == 0:
        return WindowLevel(0.5, 1.0)
    lo, hi = (float(v) for v in np.percentile(finite, [low_pct, high_pct]))
    if hi <= lo:
        hi = lo + 1.0
    return WindowLevel(center=(lo + hi) / 2, width=hi - lo)


def dicom_window(summary: Mapping[str, Any]) -> WindowLevel | None:
    """The window the DICOM file recommends (WindowCenter/WindowWidth), if it had a usable one."""
    center = summary.get("window_center")
    width = summary.get("window_width")
    if isinstance(center, int | float) and isinstance(width, int | float) and width > 0:
        return WindowLevel(center=float(center), width=float(width))
    return None


def presets(
    modality: str, *, array: np.ndarray | None = None, summary: Mapping[str, Any] | None = None
) -> dict[str, WindowLevel]:
    """Window presets for a scan, the most useful first.

    CT: the fixed Hounsfield windows of :data:`CT_PRESETS`. Other modalities (MR, radiographs,
    photographs) have no absolute scale: "Auto" from the 1st–99th percentiles of ``array``, and
    "DICOM window" when ``summary`` carries one (it comes first then: the modality chose it).
    """
    if modality == "CT":
        return dict(CT_PRESETS)
    out: dict[str, WindowLevel] = {}
    from_file = dicom_window(summary or {})
    if from_file is not None:
        out["DICOM window"] = from_file
    out["Auto"] = auto_window(array) if array is not None else WindowLevel(0.5, 1.0)
    out["Full range"] = auto_window(array, 0.0, 100.0) if array is not None else WindowLevel(0.5, 1)
    return out


def nearest_preset(choices: Mapping[str, WindowLevel], target: WindowLevel) -> str:
    """The name of the preset closest to ``target`` (e.g. to the window a model applies)."""

    def distance(w: WindowLevel) -> float:
        return abs(w.low - target.low) + abs(w.high - target.high)

    return min(choices, key=lambda name: distance(choices[name]))


def window_to_uint8(plane: np.ndarray, window: WindowLevel) -> np.ndarray:
    """``plane`` mapped through ``window`` to 0–255 grey levels."""
    width = max(float(window.width), 1e-6)
    scaled = (np.asarray(plane, dtype=np.float32) - np.float32(window.low)) / np.float32(width)
    return (np.clip(np.nan_to_num(scaled, nan=0.0), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def parse_colour(colour: str) -> tuple[int, int, int]:
    """``'#rrggbb'`` → ``(r, g, b)``; raises ValueError for anything else."""
    text = colour.strip()
    if len(text) != 7 or not text.startswith("#"):
        raise ValueError(f"expected a colour as '#rrggbb'; got {colour!r}")
    return (int(text[1:3], 16), int(text[3:5], 16), int(text[5:7], 16))


def outline(mask: np.ndarray) -> np.ndarray:
    """The boundary pixels of a 2D boolean mask (pixels with a 4-neighbour outside it)."""
    m = np.asarray(mask, dtype=bool)
    if not m.any():
        return m
    padded = np.pad(m, 1, mode="constant", constant_values=False)
    interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:] & m
    return m & ~interior


def _blend(rgb: np.ndarray, where: np.ndarray, colour: tuple[int, int, int], alpha: float) -> None:
    if alpha <= 0 or not where.any():
        return
    c = np.asarray(colour, dtype=np.float32)
    region = rgb[where].astype(np.float32)
    rgb[where] = (region * (1.0 - alpha) + c * alpha + 0.5).astype(np.uint8)


def overlay(
    grey: np.ndarray,
    labels: np.ndarray | None,
    colours: Mapping[int, str],
    *,
    opacity: float = 0.4,
    style: OverlayStyle = "fill",
    highlight: np.ndarray | None = None,
    highlight_colour: str = DIFF_COLOUR,
) -> np.ndarray:
    """An RGB ``uint8`` image: ``grey`` with each label drawn in its colour.

    Label 0 (background) and labels without a colour are not drawn. ``style="fill"`` blends the
    label at ``opacity`` and draws its outline solid; ``"outline"`` draws the outline only.
    ``highlight`` (a boolean mask) is drawn last, solid, in ``highlight_colour``.
    """
    g = np.asarray(grey, dtype=np.uint8)
    rgb = np.repeat(g[:, :, np.newaxis], 3, axis=2)
    if labels is not None:
        lab = np.asarray(labels)
        if lab.shape != g.shape:
            raise ValueError(f"labels {lab.shape} and image {g.shape} differ in size")
        opacity = float(min(max(opacity, 0.0), 1.0))
        for index in np.unique(lab):
            index = int(index)
            if index == 0 or index not in colours:
                continue
            colour = parse_colour(colours[index])
            region = lab == index
            if style == "fill":
                _blend(rgb, region, colour, opacity)
            _blend(rgb, outline(region), colour, 1.0 if opacity > 0 else 0.0)
    if highlight is not None:
        h = np.asarray(highlight, dtype=bool)
        if h.shape != g.shape:
            raise ValueError(f"highlight {h.shape} and image {g.shape} differ in size")
        _blend(rgb, h, parse_colour(highlight_colour), 1.0)
    return rgb


def display_size(
    shape: tuple[int, int],
    spacing_xy: tuple[float, float] | None,
    *,
    min_side: int = 384,
    max_side: int = 1024,
) -> tuple[int, int]:
    """``(width, height)`` in screen pixels for an image of ``shape`` = (rows, columns): square
    physical pixels when the spacing is known, small images enlarged, huge ones reduced."""
    rows, cols = shape
    width, height = float(cols), float(rows)
    if spacing_xy is not None and spacing_xy[0] > 0 and spacing_xy[1] > 0:
        height *= spacing_xy[1] / spacing_xy[0]
    longest = max(width, height)
    scale = 1.0
    if longest < min_side:
        scale = min_side / longest
    elif longest > max_side:
        scale = max_side / longest
    return (max(1, round(width * scale)), max(1, round(height * scale)))


def render_slice(
    plane: np.ndarray,
    window: WindowLevel,
    *,
    labels: np.ndarray | None = None,
    colours: Mapping[int, str] | None = None,
    opacity: float = 0.4,
    style: OverlayStyle = "fill",
    highlight: np.ndarray | None = None,
    highlight_colour: str = DIFF_COLOUR,
    spacing_xy: tuple[float, float] | None = None,
    min_side: int = 384,
    max_side: int = 1024,
) -> Image.Image:
    """One 2D slice ``[y, x]`` with its overlay, as an RGB Pillow image sized for display."""
    grey = window_to_uint8(plane, window)
    rgb = overlay(
        grey,
        labels,
        colours or {},
        opacity=opacity,
        style=style,
        highlight=highlight,
        highlight_colour=highlight_colour,
    )
    image = Image.fromarray(rgb, mode="RGB")
    size = display_size(grey.shape, spacing_xy, min_side=min_side, max_side=max_side)
    if size != image.size:
        enlarge = size[0] >= image.size[0] and size[1] >= image.size[1]
        # Enlarging: nearest keeps outlines and pixels crisp. Reducing: average neighbours.
        image = image.resize(
            size, Image.Resampling.NEAREST if enlarge else Image.Resampling.BILINEAR
        )
    return image


def to_png(image: Image.Image) -> bytes:
    """PNG bytes of ``image`` (no metadata)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False, compress_level=6)
    return buffer.getvalue()


def foreground_counts(labels: np.ndarray) -> np.ndarray:
    """Foreground (non-zero) voxels per slice of a ``[z, y, x]`` label volume."""
    lab = np.asarray(labels)
    return np.count_nonzero(lab.reshape(lab.shape[0], -1), axis=1)


def best_slice(labels: np.ndarray | None, n_slices: int) -> int:
    """The slice to show first: the one with the most foreground, else the middle one."""
    if labels is not None and labels.ndim == 3 and labels.shape[0] == n_slices:
        counts = foreground_counts(labels)
        if counts.any():
            return int(np.argmax(counts))
    return max(0, (n_slices - 1) // 2)


def differing(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Where two label maps of the same shape disagree (boolean)."""
    if a.shape != b.shape:
        raise ValueError(f"label maps of different sizes cannot be compared: {a.shape}, {b.shape}")
    return np.asarray(a) != np.asarray(b)


def legend_items(labels: Iterable[Any]) -> list[tuple[str, str]]:
    """``(name, colour)`` of the labels drawn on the image (index 0, the background, is not).

    ``labels`` are manifest labels or prediction labels: anything with ``index``, ``name`` and
    ``colour``."""
    return [(lab.name, lab.colour) for lab in sorted(labels, key=lambda x: x.index) if lab.index]


def mask_to_nifti(
    labels: np.ndarray,
    *,
    affine_lps: np.ndarray | None,
    spacing_mm: tuple[float, float, float] | None,
    compress: bool = True,
) -> bytes:
    """A ``[z, y, x]`` label volume as NIfTI-1 bytes (``.nii.gz`` unless ``compress=False``) in
    the scan's geometry: voxel axes back to ``(x, y, z)``, the LPS affine converted to RAS.

    Without an affine (PNG/JPEG, radiographs) the voxel size is ``spacing_mm`` (else 1 mm) and
    the axes are laid out so the mask displays like the image.
    """
    import nibabel as nib  # imported here: rendering PNGs does not need it

    data = np.ascontiguousarray(np.transpose(np.asarray(labels, dtype=np.uint8), (2, 1, 0)))
    lps_to_ras = np.diag([-1.0, -1.0, 1.0, 1.0])
    if affine_lps is not None:
        affine = lps_to_ras @ np.asarray(affine_lps, dtype=float)
    else:
        sx, sy, sz = spacing_mm or (1.0, 1.0, 1.0)
        affine = lps_to_ras @ np.diag([sx, sy, sz, 1.0])
    image = nib.Nifti1Image(data, affine)
    image.header.set_sform(affine, code=1)
    image.header.set_qform(affine, code=1)
    image.header.set_xyzt_units("mm")
    raw = image.to_bytes()
    return gzip.compress(raw, compresslevel=6, mtime=0) if compress else raw

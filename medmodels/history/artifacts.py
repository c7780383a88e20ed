"""De-identified artifacts of a logged prediction, under ``<home>/artifacts/<prediction id>/``:

* ``key_slice.png`` — the key slice in grey (the slice with the most labelled voxels for a
  segmentation, the middle slice otherwise) in the viewer's default window, drawn by
  :mod:`medmodels.render` at 256–512 pixels with square physical pixels;
* ``key_slice_overlay.png`` — the same slice with the labels drawn in their colours
  (segmentation only);
* ``labels.npz`` — the label volume (``labels``, uint8 [z, y, x]) with ``label_names``,
  ``label_indices`` and ``spacing_mm`` (x, y, z), compressed.

Nothing else is written: PNGs carry no text chunks, and nothing derived from a file header or a
file name goes in. A folder is written under a temporary name and renamed, so it is complete or
absent. Folders older than ``Settings.artifact_retention_days`` are removed by
:func:`purge_expired`; deleting a prediction deletes its folder.
"""

from __future__ import annotations

import contextlib
import functools
import shutil
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from medmodels import render
from medmodels.inference.predict import Prediction
from medmodels.scans.types import Scan

ARTIFACTS_DIR = "artifacts"
KEY_SLICE = "key_slice.png"
KEY_SLICE_OVERLAY = "key_slice_overlay.png"
LABELS = "labels.npz"
THUMB_MIN_SIDE = 256
THUMB_MAX_SIDE = 512


def artifacts_root(home: Path) -> Path:
    """The folder holding one sub-folder per prediction."""
    return Path(home) / ARTIFACTS_DIR


def artifacts_dir(home: Path, prediction_id: str) -> Path:
    """The artifacts folder of one prediction (it may not exist)."""
    return artifacts_root(home) / str(uuid.UUID(str(prediction_id)))


def list_artifacts(home: Path, prediction_id: str) -> dict[str, Path]:
    """File name → path of the artifacts that exist for ``prediction_id``."""
    folder = artifacts_dir(home, prediction_id)
    if not folder.is_dir():
        return {}
    return {p.name: p for p in sorted(folder.iterdir()) if p.is_file()}


def key_slice_index(scan: Scan, prediction: Prediction) -> int:
    """The slice with the most labelled (non-zero) voxels, else the middle slice."""
    return render.best_slice(prediction.label_volume, scan.shape[0])


def _window(scan: Scan, plane: np.ndarray) -> render.WindowLevel:
    """The viewer's default window for the scan (CT: the first Hounsfield preset)."""
    choices = render.presets(scan.modality, array=plane, summary=scan.summary)
    return next(iter(choices.values()))


def write_artifacts(home: Path, prediction_id: str, scan: Scan, prediction: Prediction) -> Path:
    """Write the artifacts of one prediction and return their folder."""
    final = artifacts_dir(home, prediction_id)
    root = final.parent
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".tmp-{final.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        z = key_slice_index(scan, prediction)
        plane = scan.array[z]
        window = _window(scan, plane)
        spacing_xy = scan.spacing_mm[:2] if scan.spacing_mm else None
        draw = functools.partial(
            render.render_slice,
            plane,
            window,
            spacing_xy=spacing_xy,
            min_side=THUMB_MIN_SIDE,
            max_side=THUMB_MAX_SIDE,
        )
        (tmp / KEY_SLICE).write_bytes(render.to_png(draw()))
        volume = prediction.label_volume
        if volume is not None and volume.shape == scan.array.shape:
            colours = {lab.index: lab.colour for lab in prediction.labels}
            image = draw(labels=volume[z], colours=colours)
            (tmp / KEY_SLICE_OVERLAY).write_bytes(render.to_png(image))
            np.savez_compressed(
                tmp / LABELS,
                labels=volume.astype(np.uint8, copy=False),
                label_names=np.array([lab.name for lab in prediction.labels], dtype=str),
                label_indices=np.array([lab.index for lab in prediction.labels], np.int32),
                spacing_mm=np.array(scan.spacing_mm or (np.nan,) * 3, np.float64),
                key_slice=np.int32(z),
            )
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def delete_artifacts(home: Path, prediction_id: str) -> bool:
    """Remove the artifacts folder of ``prediction_id``; whether there was one."""
    folder = artifacts_dir(home, prediction_id)
    if not folder.exists():
        return False
    shutil.rmtree(folder)
    return True


def _uuid(name: str) -> str | None:
    try:
        return str(uuid.UUID(name))
    except ValueError:
        return None


def purge_expired(
    home: Path,
    retention_days: int,
    created: dict[str, datetime],
    *,
    now: datetime | None = None,
) -> list[str]:
    """Remove artifact folders older than ``retention_days`` (by the prediction's creation time
    in ``created``, id → UTC time), folders of predictions no longer in the history, and
    unfinished temporary folders, the last two when more than a day old. Returns removed ids."""
    root = artifacts_root(home)
    if not root.is_dir():
        return []
    moment = now or datetime.now(UTC)
    day_ago = time.time() - 86400
    removed: list[str] = []
    for entry in root.iterdir():
        with contextlib.suppress(FileNotFoundError):
            if entry.name.startswith(".tmp-"):
                if entry.stat().st_mtime < day_ago:
                    shutil.rmtree(entry, ignore_errors=True)
                continue
            pid = _uuid(entry.name)
            if pid is None or not entry.is_dir():
                continue
            when = created.get(pid)
            if when is None:
                expired = entry.stat().st_mtime < day_ago
            else:
                when = when if when.tzinfo else when.replace(tzinfo=UTC)
                expired = retention_days > 0 and when < moment - timedelta(days=retention_days)
            if expired:
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(pid)
    return removed


def artifact_ids(home: Path) -> list[str]:
    """The prediction ids that have an artifacts folder."""
    root = artifacts_root(home)
    if not root.is_dir():
        return []
    return [pid for e in root.iterdir() if (pid := _uuid(e.name)) and e.is_dir()]

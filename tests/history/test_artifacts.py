"""Artifacts: what is written, that it carries nothing but pixels, switching it off, retention."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from PIL import Image

from medmodels.config import Settings, load_settings
from medmodels.history import artifacts as art
from medmodels.history.db import Database, open_database
from medmodels.history.log import (
    delete_prediction,
    get_prediction,
    purge_artifacts,
    record_prediction,
)

from .helpers import insert, make_prediction, make_scan


def _segmentation() -> tuple[np.ndarray, np.ndarray]:
    array = np.full((3, 8, 8), -1000, np.int16)
    array[:, 2:6, 2:6] = 200
    labels = np.zeros((3, 8, 8), np.uint8)
    labels[2, 2:6, 2:6] = 1  # the most foreground is on slice 2
    labels[1, 3:4, 3:4] = 1
    return array, labels


def test_artifacts_hold_the_key_slice_and_the_label_volume(db: Database) -> None:
    array, labels = _segmentation()
    pid = record_prediction(db, make_prediction(label_volume=labels), make_scan(array))
    files = art.list_artifacts(db.home, pid)
    assert set(files) == {art.KEY_SLICE, art.KEY_SLICE_OVERLAY, art.LABELS}
    with np.load(files[art.LABELS]) as npz:
        np.testing.assert_array_equal(npz["labels"], labels)
        assert list(npz["label_names"]) == ["background", "lung"]
        assert int(npz["key_slice"]) == 2
        np.testing.assert_allclose(npz["spacing_mm"], [0.7, 0.7, 2.5])
        assert set(npz.files) == {
            "labels",
            "label_names",
            "label_indices",
            "spacing_mm",
            "key_slice",
        }
    for name in (art.KEY_SLICE, art.KEY_SLICE_OVERLAY):
        data = files[name].read_bytes()
        for chunk in (b"tEXt", b"iTXt", b"zTXt", b"eXIf"):
            assert chunk not in data, f"{name} carries a {chunk!r} chunk"
        with Image.open(files[name]) as image:
            assert 256 <= max(image.size) <= 512
    with Image.open(files[art.KEY_SLICE_OVERLAY]) as overlay:
        rgb = np.asarray(overlay.convert("RGB"))
    assert (rgb[..., 0] > rgb[..., 2] + 50).any()  # the red label is drawn
    assert get_prediction(db, pid)["artifacts_ms"] > 0  # timed apart from the insert


def test_classification_gets_only_the_plain_key_slice(db: Database) -> None:
    pid = record_prediction(db, make_prediction(task="classification"), make_scan())
    assert set(art.list_artifacts(db.home, pid)) == {art.KEY_SLICE}


def test_artifacts_can_be_switched_off(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path / "home", save_artifacts=False)
    db = open_database(settings)
    try:
        pid = record_prediction(db, make_prediction(), make_scan())
        assert art.list_artifacts(db.home, pid) == {}
        assert not (Path(settings.home) / "artifacts").exists()
        pid2 = record_prediction(db, make_prediction(), make_scan(), artifacts=True)
        assert art.list_artifacts(db.home, pid2)
    finally:
        db.close()


def test_retention_removes_old_artifacts_and_orphans_but_keeps_rows(settings: Settings) -> None:
    db = open_database(settings.model_copy(update={"artifact_retention_days": 30}))
    try:
        fresh = record_prediction(db, make_prediction(), make_scan())  # purges (nothing yet)
        old_time = datetime.now(UTC).replace(tzinfo=None) - timedelta(days=40)
        old = insert(db, old_time)
        art.write_artifacts(db.home, old, make_scan(), make_prediction())
        orphan = "0" * 8 + "-0000-0000-0000-" + "0" * 12
        art.write_artifacts(db.home, orphan, make_scan(), make_prediction())
        young_orphan = "1" * 8 + "-0000-0000-0000-" + "0" * 12
        art.write_artifacts(db.home, young_orphan, make_scan(), make_prediction())
        day_old = time.time() - 2 * 86400
        os.utime(art.artifacts_dir(db.home, orphan), (day_old, day_old))
        removed = purge_artifacts(db)
        assert sorted(removed) == sorted([old, orphan])
        assert art.artifact_ids(db.home) and set(art.artifact_ids(db.home)) == {
            fresh,
            young_orphan,
        }
        with db.cursor() as cur:
            assert cur.execute("SELECT count(*) FROM predictions").fetchone() == (2,)
        # later, the fresh one expires too
        later = datetime.now(UTC) + timedelta(days=31)
        assert purge_artifacts(db, now=later) == [fresh]
    finally:
        db.close()


def test_retention_zero_keeps_artifacts_until_the_prediction_is_deleted(db: Database) -> None:
    assert db.settings.artifact_retention_days > 0
    zero = db.settings.model_copy(update={"artifact_retention_days": 0})
    pid = insert(db, datetime(2000, 1, 1))
    art.write_artifacts(db.home, pid, make_scan(), make_prediction())
    assert (
        art.purge_expired(db.home, zero.artifact_retention_days, {pid: datetime(2000, 1, 1)}) == []
    )
    delete_prediction(db, pid)
    assert art.list_artifacts(db.home, pid) == {}

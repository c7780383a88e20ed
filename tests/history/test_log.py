"""Recording, feedback, deletion and every query, on hand-built rows with known answers."""

from __future__ import annotations

import json
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pytest

from medmodels.errors import HistoryError
from medmodels.history.db import Database
from medmodels.history.log import (
    HistoryFilter,
    add_feedback,
    alias_timeline,
    alias_used,
    compare_versions,
    count,
    delete_prediction,
    export,
    get_prediction,
    input_stats,
    recent,
    record_prediction,
    record_rejection,
    resolve_id,
    version_stats,
)
from medmodels.store import ModelStore

from .helpers import insert, make_prediction, make_scan

T0 = datetime(2026, 3, 2, 9, 0)  # a Monday


def day(n: int, hour: int = 0) -> datetime:
    return T0 + timedelta(days=n, hours=hour)


def test_input_stats_known_values() -> None:
    array = np.array([0] * 50 + [100] * 50, np.int16).reshape(1, 10, 10)
    stats = input_stats(array)
    assert (stats.mean, stats.std, stats.p1, stats.p50, stats.p99) == (50, 50, 0, 50, 100)
    big = np.zeros((40, 256, 256), np.float32)  # 2.6 M voxels: estimated on a strided sample
    big[::2] = 10.0
    assert input_stats(big).mean == pytest.approx(5.0, abs=0.5)
    assert input_stats(np.full((1, 2, 2), np.nan, np.float32)).mean is None


def test_record_prediction_stores_typed_columns(db: Database) -> None:
    array = np.array([0] * 50 + [100] * 50, np.int16).reshape(1, 10, 10)
    scan = make_scan(array, spacing=(0.5, 0.6, 3.0), manufacturer="Acme")
    prediction = make_prediction(volume_ml=12.5)
    pid = record_prediction(db, prediction, scan, alias="production", artifacts=False)
    record = get_prediction(db, pid)
    assert record["id"] == pid and record["status"] == "ok" and record["source"] == "cli"
    assert record["alias"] == "production" and record["version"] == "1.0.0"
    assert (record["shape_z"], record["shape_y"], record["shape_x"]) == (1, 10, 10)
    assert (record["spacing_x_mm"], record["spacing_y_mm"], record["spacing_z_mm"]) == (
        0.5,
        0.6,
        3.0,
    )
    assert record["slice_thickness_mm"] == 2.5 and record["slice_count"] == 1
    assert record["manufacturer"] == "Acme" and record["manufacturer_model"] == "Model X"
    assert record["modality"] == "CT" and record["body_part"] == "CHEST"
    assert record["intensity_mean"] == 50 and record["intensity_p99"] == 100
    assert record["total_ms"] == 10.0 and record["infer_ms"] == 3.0
    assert record["output_value"] == 12.5  # foreground volume
    assert [(lab["name"], lab["volume_ml"]) for lab in record["labels"]] == [
        ("background", 50.0),
        ("lung", 12.5),
    ]
    assert record["created_at"].tzinfo is UTC
    assert abs(record["created_at"] - datetime.now(UTC)) < timedelta(minutes=1)
    assert record["feedback"] == [] and record["verdict"] is None and record["artifacts"] == {}
    assert record["host_id"] and len(record["host_id"]) == 16

    cls = make_prediction(task="classification", probability=0.3)
    row = get_prediction(db, record_prediction(db, cls, scan, artifacts=False))
    assert row["top_label"] == "normal" and row["top_probability"] == pytest.approx(0.7)
    assert row["output_value"] == pytest.approx(0.3)  # probability of the positive label
    assert row["decision"] is False


def test_record_rejection_keeps_only_codes_and_technical_facts(db: Database) -> None:
    pid = record_rejection(db, model="lung-mask", version="1.0.0", reason_code="truncated")
    row = get_prediction(db, pid)
    assert row["status"] == "rejected" and row["reason_code"] == "truncated"
    assert row["modality"] is None and row["total_ms"] is None
    with_scan = get_prediction(
        db,
        record_rejection(
            db, model="lung-mask", reason_code="scan-mismatch", scan=make_scan(modality="MR")
        ),
    )
    assert with_scan["modality"] == "MR" and with_scan["series_hash"]
    failed = record_rejection(db, model="m", reason_code="inference-error", status="failed")
    assert get_prediction(db, failed)["status"] == "failed"
    with pytest.raises(ValueError, match="never free text"):
        record_rejection(db, model="m", reason_code="Patient Smith's file was bad")
    with pytest.raises(ValueError):
        record_rejection(db, model="m", reason_code="x", status="ok")  # type: ignore[arg-type]


def test_feedback_latest_wins_and_is_validated(db: Database) -> None:
    pid = insert(db, day(0))
    add_feedback(db, pid, "disagree", reason="boundary", corrected_label="lung", note=" too big ")
    add_feedback(db, pid, "agree")
    record = get_prediction(db, pid[:8])  # a prefix is enough
    assert [f["verdict"] for f in record["feedback"]] == ["disagree", "agree"]
    assert record["feedback"][0]["note"] == "too big"
    assert record["verdict"] == "agree"
    assert recent(db)[0]["verdict"] == "agree"
    add_feedback(db, pid, "unsure", reason="image-quality")
    assert recent(db)[0]["verdict"] == "unsure"
    assert recent(db)[0]["feedback_reason"] == "image-quality"
    with pytest.raises(HistoryError, match="verdict"):
        add_feedback(db, pid, "maybe")
    with pytest.raises(HistoryError, match="not on the list"):
        add_feedback(db, pid, "disagree", reason="because")
    with pytest.raises(HistoryError, match="background, lung"):
        add_feedback(db, pid, "disagree", corrected_label="liver")
    with pytest.raises(HistoryError, match="longer than"):
        add_feedback(db, pid, "agree", note="x" * 2000)
    with pytest.raises(HistoryError, match="no prediction"):
        add_feedback(db, "00000000-0000-0000-0000-000000000000", "agree")


def test_resolve_id_prefixes(db: Database) -> None:
    pid = insert(db, day(0))
    assert resolve_id(db, pid) == pid
    assert resolve_id(db, pid[:6].upper()) == pid
    with pytest.raises(HistoryError, match="not a prediction id"):
        resolve_id(db, "abc")
    with pytest.raises(HistoryError, match="no prediction"):
        resolve_id(db, "ffffffff")


def test_delete_removes_row_feedback_and_artifacts(db: Database) -> None:
    labels = np.zeros((2, 4, 4), np.uint8)
    labels[1, 1:3, 1:3] = 1
    pid = record_prediction(db, make_prediction(label_volume=labels), make_scan())
    keep = insert(db, day(0))
    add_feedback(db, pid, "agree")
    folder = Path(db.home) / "artifacts" / pid
    assert folder.is_dir() and set(get_prediction(db, pid)["artifacts"]) == {
        "key_slice.png",
        "key_slice_overlay.png",
        "labels.npz",
    }
    assert delete_prediction(db, pid[:8]) == pid
    assert not folder.exists()
    assert [r["id"] for r in recent(db)] == [keep]
    with db.cursor() as cur:
        assert cur.execute("SELECT count(*) FROM feedback").fetchone() == (0,)
    with pytest.raises(HistoryError, match="no prediction"):
        delete_prediction(db, pid)


@pytest.fixture
def filled(db: Database) -> dict[str, str]:
    """Six rows over five days: two models, two versions, statuses, modalities, verdicts."""
    ids = {
        "a": insert(db, day(0), version="1.0.0"),
        "b": insert(db, day(1), version="1.0.0", scan=make_scan(modality="MR")),
        "c": insert(db, day(2), version="1.1.0"),
        "d": insert(db, day(3), version="1.1.0", status="rejected", reason_code="truncated"),
        "e": insert(db, day(4), model="other", version="2.0.0", source="app"),
        "f": insert(db, day(4, 1), version="1.1.0", alias="production"),
    }
    add_feedback(db, ids["a"], "disagree")
    add_feedback(db, ids["a"], "agree")
    add_feedback(db, ids["c"], "disagree")
    return ids


def _ids(rows: list[dict[str, object]], ids: dict[str, str]) -> str:
    names = {v: k for k, v in ids.items()}
    return "".join(names[str(r["id"])] for r in rows)


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (HistoryFilter(), "fedcba"),
        (HistoryFilter(model="lung-mask"), "fdcba"),
        (HistoryFilter(model="lung-mask", version="1.1.0"), "fdc"),
        (HistoryFilter(status="rejected"), "d"),
        (HistoryFilter(modality="MR"), "b"),
        (HistoryFilter(verdict="agree"), "a"),
        (HistoryFilter(verdict="disagree"), "c"),
        (HistoryFilter(verdict="none"), "fedb"),
        (HistoryFilter(source="app"), "e"),
        (HistoryFilter(alias="production"), "f"),
        (HistoryFilter(since=date(2026, 3, 3), until=date(2026, 3, 4)), "cb"),
        (HistoryFilter(since=day(1), until=day(2)), "cb"),
        (HistoryFilter(since=day(1, 1), until=day(2)), "c"),
        (HistoryFilter(since=datetime(2026, 3, 5, 10, tzinfo=UTC)), "fe"),
    ],
)
def test_recent_filters(
    db: Database, filled: dict[str, str], filters: HistoryFilter, expected: str
) -> None:
    assert _ids(recent(db, filters), filled) == expected
    assert count(db, filters) == len(expected)


def test_recent_pages(db: Database, filled: dict[str, str]) -> None:
    pages = [recent(db, limit=4, offset=0), recent(db, limit=4, offset=4)]
    assert [_ids(p, filled) for p in pages] == ["fedc", "ba"]
    assert recent(db, limit=4, offset=8) == []
    with pytest.raises(HistoryError, match="status"):
        recent(db, HistoryFilter(status="good"))


def test_version_stats_known_answers(db: Database) -> None:
    ids = []
    for k, total in enumerate((10.0, 20.0, 30.0, 40.0)):
        ids.append(
            insert(
                db,
                day(k),
                version="1.0.0",
                total_ms=total,
                infer_ms=total / 2,
                output_value=float(k + 1),
                artifacts_ms=5.0,
            )
        )
    insert(
        db,
        day(5),
        version="1.0.0",
        status="rejected",
        reason_code="truncated",
        total_ms=None,
        output_value=None,
    )
    insert(db, day(6), version="1.1.0", total_ms=7.0)
    insert(db, day(6), model="zzz", version="0.1.0")
    add_feedback(db, ids[0], "disagree")
    add_feedback(db, ids[0], "agree")
    add_feedback(db, ids[1], "disagree")
    add_feedback(db, ids[2], "unsure")

    stats = version_stats(db, "lung-mask")
    assert [s.version for s in stats] == ["1.1.0", "1.0.0"]
    old = stats[1]
    assert (old.predictions, old.ok, old.rejected, old.failed) == (5, 4, 1, 0)
    assert old.rejection_rate == pytest.approx(0.2)
    assert old.p50_ms["total"] == pytest.approx(25.0)
    assert old.p95_ms["total"] == pytest.approx(38.5)  # 30 + 0.85 × 10
    assert old.p50_ms["infer"] == pytest.approx(12.5)
    assert old.p50_ms["artifacts"] == 5.0
    assert (old.rated, old.agree, old.disagree, old.unsure) == (3, 1, 1, 1)
    assert old.agreement_rate == pytest.approx(0.5)
    assert old.mean_output == pytest.approx(2.5)
    assert old.first_used == day(0).replace(tzinfo=UTC)
    assert old.last_used == day(5).replace(tzinfo=UTC)
    new = stats[0]
    assert new.predictions == 1 and new.p95_ms["total"] == 7.0 and new.agreement_rate is None
    assert new.p50_ms["artifacts"] is None
    assert [s.model for s in version_stats(db)] == ["lung-mask", "lung-mask", "zzz"]


def test_compare_versions_on_the_same_series(db: Database) -> None:
    def seg(series: str, version: str, volume: float, when: datetime) -> None:
        insert(db, when, version=version, volume_ml=volume, series_hash=series)

    seg("s1", "1.0.0", 100.0, day(0))  # superseded by the later run of the same version
    seg("s1", "1.0.0", 10.0, day(1))
    seg("s1", "1.1.0", 10.5, day(1))  # within 10 %: agree
    seg("s2", "1.0.0", 10.0, day(2))
    seg("s2", "1.1.0", 20.0, day(2))  # disagree
    seg("s3", "1.0.0", 5.0, day(3))  # only one version saw it
    insert(db, day(3), version="1.1.0", series_hash="s3", status="rejected", reason_code="x")
    result = compare_versions(db, "lung-mask", "1.0.0", "1.1.0")
    assert (result.pairs, result.disagreements) == (2, 1)
    assert result.disagreement_rate == 0.5
    assert result.mean_output_difference == pytest.approx(5.25)
    assert result.mean_abs_output_difference == pytest.approx(5.25)
    assert result.label_volume_difference_ml == {"lung": pytest.approx(5.25)}
    assert (
        compare_versions(db, "lung-mask", "1.0.0", "1.1.0", volume_tolerance=0.5).disagreements == 0
    )

    for series, p_a, p_b in (("c1", 0.9, 0.8), ("c2", 0.9, 0.2), ("c3", 0.3, 0.1)):
        insert(
            db,
            day(4),
            model="cls",
            task="classification",
            version="1",
            probability=p_a,
            series_hash=series,
        )
        insert(
            db,
            day(4),
            model="cls",
            task="classification",
            version="2",
            probability=p_b,
            series_hash=series,
        )
    cls = compare_versions(db, "cls", "1", "2")
    assert (cls.pairs, cls.disagreements) == (3, 1)
    assert cls.mean_output_difference == pytest.approx((-0.1 - 0.7 - 0.2) / 3)
    assert cls.label_volume_difference_ml == {}
    empty = compare_versions(db, "nothing", "1", "2")
    assert empty.pairs == 0 and empty.disagreement_rate is None


def _store_with_alias_log(root: Path, events: list[tuple[datetime, str | None, str]]) -> ModelStore:
    model = root / "lung-mask"
    for version in ("1.0.0", "1.1.0"):
        (model / version).mkdir(parents=True)
    lines = [
        json.dumps(
            {
                "time": when.replace(tzinfo=UTC).isoformat(),
                "alias": "production",
                "from": old,
                "to": new,
            }
        )
        for when, old, new in events
    ]
    (model / "alias_log.jsonl").write_text("\n".join(lines) + "\n")
    return ModelStore(root)


def test_alias_timeline_joins_alias_moves_with_predictions(db: Database, tmp_path: Path) -> None:
    store = _store_with_alias_log(
        tmp_path / "store", [(day(1), None, "1.0.0"), (day(3), "1.0.0", "1.1.0")]
    )
    insert(db, day(0), version="1.0.0")  # before production existed
    insert(db, day(2), version="1.0.0", alias="production")
    insert(db, day(2, 1), version="1.0.0", alias="production")
    insert(db, day(2, 2), version="1.1.0")  # asked for 1.1.0 explicitly
    insert(db, day(4), version="1.1.0", alias="production")
    insert(db, day(4, 1), version="1.0.0", alias="production")  # a stale app session
    insert(db, day(4, 2), version="1.1.0", alias="production", status="rejected")
    periods = alias_timeline(db, store, "lung-mask")
    assert [(p.version, p.predictions, p.via_alias, p.via_alias_other) for p in periods] == [
        (None, 1, 0, 0),
        ("1.0.0", 3, 2, 0),
        ("1.1.0", 2, 2, 1),
    ]
    assert periods[1].served == {"1.0.0": 2, "1.1.0": 1}
    assert periods[1].start == day(1).replace(tzinfo=UTC)
    assert periods[1].end == day(3).replace(tzinfo=UTC) and periods[2].end is None
    assert alias_timeline(db, store, "lung-mask", alias="staging")[0].predictions == 6


def test_alias_used(tmp_path: Path) -> None:
    store = _store_with_alias_log(tmp_path / "store", [])
    assert alias_used(store, "lung-mask@1.0.0") is None
    assert alias_used(store, "lung-mask@staging") == "staging"
    assert alias_used(store, "lung-mask") is None  # no production alias set
    (tmp_path / "store" / "lung-mask" / "aliases.json").write_text('{"production": "1.0.0"}')
    assert alias_used(store, "lung-mask") == "production"


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_export_round_trip(db: Database, filled: dict[str, str], tmp_path: Path, fmt: str) -> None:
    filters = HistoryFilter(model="lung-mask")
    path = tmp_path / "out" / f"history.{fmt}"
    assert export(db, path, format=fmt, filters=filters) == 5  # type: ignore[arg-type]
    reader = "read_csv" if fmt == "csv" else "read_parquet"
    con = duckdb.connect()
    try:
        back = con.execute(f"SELECT * FROM {reader}(?)", [str(path)]).fetchall()
        names = [d[0] for d in con.description]
    finally:
        con.close()
    expected = recent(db, filters)
    assert len(back) == len(expected)
    for row, want in zip(back, expected, strict=True):
        got = dict(zip(names, row, strict=True))
        assert str(got["id"]) == want["id"]
        for key in ("status", "model", "version", "modality", "verdict", "reason_code"):
            assert got[key] == want[key], key
        for key in ("output_value", "total_ms", "intensity_mean", "spacing_x_mm"):
            assert got[key] == pytest.approx(want[key]), key
        assert json.loads(got["labels"]) == want["labels"]
    assert "note" not in names
    with pytest.raises(HistoryError, match="csv or parquet"):
        export(db, path, format="xlsx")  # type: ignore[arg-type]


def test_concurrent_logging_loses_no_rows(db: Database) -> None:
    threads, per_thread = 8, 200
    prediction, scan = make_prediction(), make_scan()
    ids: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(threads)

    def work() -> None:
        start.wait()
        try:
            mine = [
                record_prediction(db, prediction, scan, artifacts=False, source="app")
                for _ in range(per_thread)
            ]
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
            return
        with lock:
            ids.extend(mine)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert errors == []
    assert len(set(ids)) == threads * per_thread
    assert count(db) == threads * per_thread
    with db.cursor() as cur:
        (stored,) = cur.execute("SELECT count(DISTINCT id) FROM predictions").fetchone() or (0,)
    assert stored == threads * per_thread

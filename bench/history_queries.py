"""History queries over 1,000,000 synthetic predictions against the same SQL run directly.

Target (DESIGN.md, Performance): each query the history page runs takes ≤ 2× the same SQL
typed directly into DuckDB. Fills a fresh database (in a temporary home) with 1,000,000
predictions (3 models × 4 versions, 5 % rejected, 100,000 feedback rows, 50,000 repeated
series), then times each library call and its hand-written SQL equivalent on a bare cursor
(median of 7 runs each, alternating, after one warm-up) and prints the ratio.
Run: ``.venv/bin/python bench/history_queries.py [rows]``.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from medmodels.config import load_settings  # noqa: E402
from medmodels.history import log  # noqa: E402
from medmodels.history.db import Database, open_database  # noqa: E402
from medmodels.history.drift import drift  # noqa: E402
from medmodels.store import ModelStore  # noqa: E402

START = datetime(2026, 1, 5)
FILL = """
INSERT INTO predictions (id, created_at, status, reason_code, source, model, version, alias,
    task, model_sha256, manifest_sha256, onnxruntime_version, provider, host_id,
    load_ms, preprocess_ms, infer_ms, postprocess_ms, total_ms, artifacts_ms,
    modality, kind, source_format, manufacturer, manufacturer_model, body_part,
    shape_z, shape_y, shape_x, slice_count, spacing_x_mm, spacing_y_mm, spacing_z_mm,
    slice_thickness_mm, intensity_mean, intensity_std, intensity_p1, intensity_p50,
    intensity_p99, series_hash, top_label, top_probability, decision, threshold,
    output_value, labels, warnings)
SELECT uuid(),
    TIMESTAMP '2026-01-05' + to_seconds(i * 20),
    CASE WHEN i % 20 = 0 THEN 'rejected' ELSE 'ok' END,
    CASE WHEN i % 20 = 0 THEN 'scan-mismatch' END,
    CASE WHEN i % 3 = 0 THEN 'cli' ELSE 'app' END,
    'model-' || (i % 3), '1.' || ((i // 7) % 4) || '.0',
    CASE WHEN i % 2 = 0 THEN 'production' END,
    'segmentation', repeat('a', 64), repeat('b', 64), '1.32.0', 'CPUExecutionProvider',
    'host' || (i % 4),
    random() * 5, 20 + random() * 40, 80 + random() * 60, 30 + random() * 30,
    150 + random() * 100, 20 + random() * 20,
    CASE WHEN i % 10 = 0 THEN 'MR' ELSE 'CT' END, 'volume', 'DICOM',
    ['Acme', 'Bolt', 'Crux'][1 + i % 3], 'Model ' || (i % 5), 'CHEST',
    64 + i % 64, 512, 512, 64 + i % 64, 0.6 + (i % 5) * 0.1, 0.6 + (i % 5) * 0.1,
    [1.0, 2.5, 5.0][1 + i % 3], [1.0, 2.5, 5.0][1 + i % 3],
    -600 + random() * 200, 400 + random() * 100, -1000, -700 + random() * 100, 300,
    'h' || (i % 50000), NULL, NULL, NULL, NULL,
    1500 + random() * 1000,
    [{'idx': 0, 'name': 'background', 'probability': NULL, 'voxels': 1000000,
      'volume_ml': 40000.0},
     {'idx': 1, 'name': 'lung', 'probability': NULL, 'voxels': 20000,
      'volume_ml': 1500 + random() * 1000}],
    []::VARCHAR[]
FROM range(?) t(i)
"""
FEEDBACK = """
INSERT INTO feedback (prediction_id, created_at, verdict, reason)
SELECT id, created_at + INTERVAL 1 HOUR,
    ['agree', 'disagree', 'unsure'][1 + (hash(id) % 3)::INTEGER],
    NULL
FROM predictions USING SAMPLE 10 PERCENT (reservoir, 42)
"""

DIRECT_RECENT = """
SELECT p.*, lf.verdict FROM predictions p
LEFT JOIN (SELECT * FROM feedback QUALIFY row_number() OVER
           (PARTITION BY prediction_id ORDER BY seq DESC) = 1) lf ON lf.prediction_id = p.id
WHERE p.model = 'model-1' AND p.status = 'ok'
ORDER BY p.created_at DESC, p.id LIMIT 50 OFFSET 100
"""
DIRECT_COUNT = """
SELECT count(*) FROM predictions p
LEFT JOIN (SELECT * FROM feedback QUALIFY row_number() OVER
           (PARTITION BY prediction_id ORDER BY seq DESC) = 1) lf ON lf.prediction_id = p.id
WHERE p.model = 'model-1' AND p.status = 'ok'
"""
DIRECT_STATS = """
SELECT p.model, p.version, count(*),
    count(*) FILTER (WHERE p.status = 'ok'), count(*) FILTER (WHERE p.status = 'rejected'),
    count(*) FILTER (WHERE p.status = 'failed'),
    quantile_cont(load_ms, [0.5, 0.95]) FILTER (WHERE p.status = 'ok'),
    quantile_cont(preprocess_ms, [0.5, 0.95]) FILTER (WHERE p.status = 'ok'),
    quantile_cont(infer_ms, [0.5, 0.95]) FILTER (WHERE p.status = 'ok'),
    quantile_cont(postprocess_ms, [0.5, 0.95]) FILTER (WHERE p.status = 'ok'),
    quantile_cont(total_ms, [0.5, 0.95]) FILTER (WHERE p.status = 'ok'),
    quantile_cont(artifacts_ms, [0.5, 0.95]) FILTER (WHERE p.status = 'ok'),
    count(lf.verdict), count(*) FILTER (WHERE lf.verdict = 'agree'),
    count(*) FILTER (WHERE lf.verdict = 'disagree'),
    count(*) FILTER (WHERE lf.verdict = 'unsure'),
    avg(p.output_value) FILTER (WHERE p.status = 'ok'), min(p.created_at), max(p.created_at)
FROM predictions p
LEFT JOIN (SELECT * FROM feedback QUALIFY row_number() OVER
           (PARTITION BY prediction_id ORDER BY seq DESC) = 1) lf ON lf.prediction_id = p.id
GROUP BY p.model, p.version
"""
DIRECT_COMPARE = """
WITH latest AS (
    SELECT version, series_hash, output_value FROM predictions
    WHERE model = 'model-1' AND status = 'ok' AND version IN ('1.0.0', '1.1.0')
    QUALIFY row_number() OVER (PARTITION BY version, series_hash
                               ORDER BY created_at DESC, id) = 1)
SELECT count(*), count(*) FILTER (WHERE abs(b.output_value - a.output_value)
                                  > 0.1 * greatest(a.output_value, b.output_value)),
       avg(b.output_value - a.output_value)
FROM latest a JOIN latest b USING (series_hash)
WHERE a.version = '1.0.0' AND b.version = '1.1.0'
"""
DIRECT_COMPARE_LABELS = """
WITH latest AS (
    SELECT version, series_hash, labels FROM predictions
    WHERE model = 'model-1' AND status = 'ok' AND version IN ('1.0.0', '1.1.0')
    QUALIFY row_number() OVER (PARTITION BY version, series_hash
                               ORDER BY created_at DESC, id) = 1),
va AS (SELECT series_hash, unnest(labels, recursive := true) FROM latest WHERE version = '1.0.0'),
vb AS (SELECT series_hash, unnest(labels, recursive := true) FROM latest WHERE version = '1.1.0')
SELECT va.name, avg(vb.volume_ml - va.volume_ml)
FROM va JOIN vb ON va.series_hash = vb.series_hash AND va.name = vb.name
WHERE va.idx <> 0 GROUP BY va.name
"""
REF = "created_at >= TIMESTAMP '2026-01-05' AND created_at < TIMESTAMP '2026-02-02'"
BASE = "FROM predictions WHERE model = 'model-1' AND status = 'ok'"


def direct_drift(db: Database) -> Callable[[], None]:
    """The reference count, the decile edges and the grouped bin counts, typed directly."""

    def go() -> None:
        with db.cursor() as cur:
            cur.execute(f"SELECT count(*) {BASE} AND {REF}").fetchall()
            (edges,) = cur.execute(
                f"SELECT quantile_cont(intensity_mean, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8,"
                f" 0.9]) {BASE} AND {REF}"
            ).fetchone()
            bins = " + ".join(
                f"(intensity_mean > {e!r})::INT + (intensity_mean >= {e!r})::INT" for e in edges
            )
            cur.execute(
                f"""SELECT grouping(r), grouping(version), r, week, version, bin, count(*) FROM (
                    SELECT {REF} AS r, date_trunc('week', created_at)::DATE AS week, version,
                        {bins} AS bin {BASE} AND intensity_mean IS NOT NULL)
                GROUP BY GROUPING SETS ((r, bin), (week, version, bin), (week, bin))"""
            ).fetchall()

    return go


def paired(
    ours: Callable[[], object], direct: Callable[[], object], runs: int = 7
) -> tuple[float, float]:
    """Median ms of each, run alternately (after one warm-up each) so noise hits both alike."""
    ours()
    direct()
    a, b = [], []
    for _ in range(runs):
        for fn, out in ((ours, a), (direct, b)):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    return statistics.median(a) * 1000, statistics.median(b) * 1000


def run_sql(db: Database, *sqls: str) -> Callable[[], None]:
    def go() -> None:
        with db.cursor() as cur:
            for sql in sqls:
                cur.execute(sql).fetchall()

    return go


def alias_store(root: Path) -> ModelStore:
    folder = root / "model-1"
    for v in range(4):
        (folder / f"1.{v}.0").mkdir(parents=True)
    events = []
    for k, version in enumerate(["1.0.0", "1.1.0", "1.2.0", "1.3.0", "1.1.0"]):
        when = (START + timedelta(days=30 * k)).replace(tzinfo=UTC)
        events.append({"time": when.isoformat(), "alias": "production", "to": version})
    (folder / "alias_log.jsonl").write_text("\n".join(json.dumps(e) for e in events) + "\n")
    return ModelStore(root)


def direct_timeline() -> str:
    cuts = [START + timedelta(days=30 * k) for k in range(5)]
    ends = [*cuts[1:], datetime(9999, 1, 1)]
    bounds = [(datetime(1, 1, 1), cuts[0]), *zip(cuts, ends, strict=True)]
    values = ", ".join(
        f"({i}, TIMESTAMP '{a}', TIMESTAMP '{b}')" for i, (a, b) in enumerate(bounds)
    )
    return f"""SELECT idx, p.version, count(*), count(*) FILTER (WHERE p.alias = 'production')
        FROM (VALUES {values}) periods(idx, t0, t1) JOIN predictions p
        ON p.created_at >= t0 AND p.created_at < t1
        WHERE p.model = 'model-1' AND p.status = 'ok' GROUP BY idx, p.version"""


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    home = Path(tempfile.mkdtemp(prefix="medmodels-bench-"))
    db = open_database(load_settings(home=home))
    t0 = time.perf_counter()
    with db.cursor() as cur:
        cur.execute("SELECT setseed(0.42)")
        cur.execute(FILL, [rows])
        cur.execute(FEEDBACK)
        cur.execute("CHECKPOINT")
    print(f"filled {rows:,} predictions in {time.perf_counter() - t0:.1f} s ({home})")
    store = alias_store(home / "store")
    flt = log.HistoryFilter(model="model-1", status="ok")
    out = home / "export"
    out.mkdir()
    cases: list[tuple[str, Callable[[], object], Callable[[], object]]] = [
        (
            "recent (filtered page)",
            lambda: log.recent(db, flt, limit=50, offset=100),
            run_sql(db, DIRECT_RECENT),
        ),
        ("count (filtered)", lambda: log.count(db, flt), run_sql(db, DIRECT_COUNT)),
        ("version_stats", lambda: log.version_stats(db), run_sql(db, DIRECT_STATS)),
        (
            "compare_versions",
            lambda: log.compare_versions(db, "model-1", "1.0.0", "1.1.0"),
            run_sql(db, DIRECT_COMPARE, DIRECT_COMPARE_LABELS),
        ),
        (
            "drift (intensity)",
            lambda: drift(
                db,
                "model-1",
                reference_start=START,
                reference_end=START + timedelta(days=28),
                features=["intensity_mean"],
            ),
            direct_drift(db),
        ),
        (
            "alias_timeline",
            lambda: log.alias_timeline(db, store, "model-1"),
            run_sql(db, direct_timeline()),
        ),
        (
            "export parquet",
            lambda: log.export(db, out / "a.parquet", format="parquet", filters=flt),
            run_sql(
                db,
                f"COPY ({DIRECT_RECENT.split('LIMIT')[0]}) TO '{out / 'b.parquet'}' "
                "(FORMAT parquet)",
            ),
        ),
    ]
    print(f"{'query':24s} {'library ms':>11s} {'direct ms':>10s} {'ratio':>6s}")
    worst = 0.0
    for name, ours, direct in cases:
        a, b = paired(ours, direct)
        worst = max(worst, a / b)
        print(f"{name:24s} {a:11.1f} {b:10.1f} {a / b:6.2f}")
    print(f"worst ratio {worst:.2f} ({'within' if worst <= 2 else 'OVER'} the 2× target)")
    db.close()


if __name__ == "__main__":
    main()

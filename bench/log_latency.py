"""Logging one prediction: p95 over 2,000 inserts against the same INSERT run directly in DuckDB.

Target (DESIGN.md, Performance): p95 ≤ 5 ms per logged prediction. Prints, for 2,000 inserts
each, the p50/p95 of

* ``write_row``: the library's insert of one prepared row (one statement, one transaction);
* ``direct``: the same INSERT statement and values through a bare DuckDB cursor;
* ``record_prediction``: the whole library call without artifacts (row building, intensity
  statistics of a small scan, series hash, insert);

then, separately, the intensity statistics of a 512×512×300 CT and the artifacts of a
256×256×64 segmentation (both outside the 5 ms budget: they are not the insert). The ratio
printed is library p95 / direct p95. Run: ``.venv/bin/python bench/log_latency.py``.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from medmodels.config import load_settings  # noqa: E402
from medmodels.history import artifacts as art  # noqa: E402
from medmodels.history import log  # noqa: E402
from medmodels.history.db import open_database  # noqa: E402
from tests.history.helpers import make_prediction, make_scan  # noqa: E402

N = 2000


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(0.95 * (len(ordered) - 1))]


def timed(fn: Callable[[], object], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def main() -> None:
    home = Path(tempfile.mkdtemp(prefix="medmodels-bench-"))
    db = open_database(load_settings(home=home))
    prediction, scan = make_prediction(), make_scan()
    rows = [log.prediction_row(db, prediction, scan) for _ in range(3 * N + 200)]
    it = iter(rows)

    def library() -> None:
        log.write_row(db, next(it))

    sql = log._insert_sql(tuple(rows[0]))

    def direct() -> None:
        row = next(it)
        with db.cursor() as cur:
            cur.execute(sql, list(row.values()))

    for _ in range(100):  # warm up both paths
        library()
        direct()
    lib, raw = [], []
    for _ in range(N // 100):  # interleave in blocks so machine noise hits both alike
        lib += timed(library, 100)
        raw += timed(direct, 100)
    full = timed(lambda: log.record_prediction(db, prediction, scan, artifacts=False), N)

    print(f"logging one prediction, {N} inserts each (ms)")
    for name, samples in (("write_row", lib), ("direct INSERT", raw), ("record_prediction", full)):
        p50, p95 = percentiles(samples)
        print(f"  {name:18s} p50 {p50:6.2f}  p95 {p95:6.2f}")
    ratio = percentiles(lib)[1] / percentiles(raw)[1]
    p95 = percentiles(full)[1]
    print(f"ratio write_row / direct (p95): {ratio:.2f}")
    print(f"record_prediction p95 {p95:.2f} ms: {'within' if p95 <= 5 else 'OVER'} the 5 ms target")

    ct = np.random.default_rng(0).normal(0, 400, (300, 512, 512)).astype(np.int16)
    stats_ms = timed(lambda: log.input_stats(ct), 10)
    print(f"intensity statistics of a 512×512×300 CT: median {statistics.median(stats_ms):.1f} ms")
    labels = np.zeros((64, 256, 256), np.uint8)
    labels[20:40, 60:200, 40:120] = 1
    seg_scan = make_scan(np.zeros((64, 256, 256), np.int16))
    seg = make_prediction(label_volume=labels)
    ids = [str(log.prediction_row(db, seg, seg_scan)["id"]) for _ in range(10)]
    art_ms = []
    for pid in ids:
        t0 = time.perf_counter()
        art.write_artifacts(home, pid, seg_scan, seg)
        art_ms.append((time.perf_counter() - t0) * 1000)
    print(f"artifacts of a 256×256×64 segmentation: median {statistics.median(art_ms):.1f} ms")
    db.close()


if __name__ == "__main__":
    main()

"""Overhead of reading uploads in the limited decode worker (issue 7, section 1).

``DecodePool.load`` (a warm worker process: the path goes in, the pickled ``LoadResult`` comes
back through a pipe) versus ``load_scans`` in this process, alternating A, B, A, B, ... on

* the sample CT series (sample_data/ct-chest-phantom, 64 x 256x256, RLE): the figure asked for;
* a generated 512x512x300 CT (as in bench/decode.py, temp folder): what moving a 157 MB volume
  back costs.

Prints medians, the overhead in ms and the ratio (no target: the isolation is a safety feature;
the figure says what it costs). Run: ``.venv/bin/python bench/decode_worker.py``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from _common import SAMPLE_CT, alternate, header, make_ct_series, temp_dir

from medmodels.config import load_settings
from medmodels.scans import DecodePool, load_scans

SETTINGS = load_settings()


def bench(label: str, pool: DecodePool, folder: Path, repeats: int) -> str:
    isolated = pool.load([folder])
    local = load_scans([folder], settings=SETTINGS)
    assert isolated.scans and local.scans, (isolated.problems, local.problems)
    same = np.array_equal(isolated.scans[0].array, local.scans[0].array)
    mb = local.scans[0].array.nbytes / 1e6
    print(f"\n{label} ({mb:.0f} MB decoded; same volume from both: {same})")
    times = alternate(
        {
            "DecodePool.load (warm)": lambda: pool.load([folder]),
            "load_scans in-process": lambda: load_scans([folder], settings=SETTINGS),
        },
        repeats=repeats,
    )
    print("\n".join(times.lines()))
    worker, inproc = "DecodePool.load (warm)", "load_scans in-process"
    extra = times.median_ms(worker) - times.median_ms(inproc)
    line = (
        f"{label}: worker / in-process {times.ratio(worker, inproc):.3f}x, "
        f"overhead {extra:+.1f} ms (median wall; no target)"
    )
    print("  " + line)
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15, help="rounds for the sample CT")
    args = parser.parse_args()
    header("bench/decode_worker.py: DecodePool.load (warm worker) vs in-process load_scans")
    pool = DecodePool(SETTINGS, workers=1)
    try:
        lines = [bench("sample CT (64 x 256x256, RLE)", pool, SAMPLE_CT, args.repeats)]
        with temp_dir() as work:
            folder = make_ct_series(work / "ct-512x512x300")
            lines.append(
                bench("generated CT (300 x 512x512)", pool, folder, max(3, args.repeats // 3))
            )
    finally:
        pool.close()
    print("\nsummary:")
    for line in lines:
        print("  " + line)


if __name__ == "__main__":
    main()

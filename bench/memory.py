"""Peak memory of loading and predicting on a 512x512x300 CT, as a multiple of the volume.

Target (DESIGN.md, Performance): peak RSS <= 4x the decoded volume's bytes (int16: 300 x 512 x
512 x 2 = 157 MB). A seeded series (uncompressed, as in bench/decode.py) is written to a temp
folder; then, each in a fresh child process (peak RSS = VmHWM from /proc/self/status, which
never goes down, so every figure is the peak of everything up to that point):

* ``medmodels``: imports -> ``load_scans(folder)`` (load-only peak) -> ``predict`` with
  ``ct-body-lung@production`` (load + predict peak, the figure against the target);
* ``pydicom loop``: the plain loop of bench/decode.py, for comparison.

Each peak is given as a multiple of the volume's bytes, both as is (the whole process) and above
the baseline after imports (what the data costs; the libraries alone take ~100-200 MB).
Run: ``.venv/bin/python bench/memory.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from _common import header, make_ct_series, model_store, ratio_line, temp_dir

SHAPE = (300, 512, 512)
VOLUME_BYTES = SHAPE[0] * SHAPE[1] * SHAPE[2] * 2


def status_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def child(kind: str, folder: str, store: str) -> None:
    """Runs in the child process; prints one JSON line of facts."""
    facts: dict[str, float] = {}
    if kind == "medmodels":
        from medmodels.config import load_settings
        from medmodels.inference import predict
        from medmodels.scans import load_scans
        from medmodels.store import ModelStore

        settings = load_settings()
        model = ModelStore(store).get("ct-body-lung@production")
        facts["after_imports"] = status_bytes("VmHWM")
        scan = load_scans([Path(folder)], settings=settings).raise_if_empty().scans[0]
        assert scan.shape == SHAPE, scan.shape
        facts["after_load"] = status_bytes("VmHWM")
        prediction = predict(scan, model)
        facts["after_predict"] = status_bytes("VmHWM")
        facts["predict_ms"] = prediction.timings_ms["total"]
    else:
        import decode  # bench/decode.py, same folder

        facts["after_imports"] = status_bytes("VmHWM")
        volume = decode.with_pydicom(Path(folder))
        assert volume.shape == SHAPE
        facts["after_load"] = status_bytes("VmHWM")
    print(json.dumps(facts))


def run_child(kind: str, folder: Path, store: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(folder), str(store)],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    header("bench/memory.py: peak RSS of load + predict on a 512x512x300 CT (child processes)")
    print(f"decoded volume: {SHAPE} int16 = {VOLUME_BYTES / 1e6:.0f} MB")
    with temp_dir() as work:
        store, note = model_store(work)
        print(f"store: {note}")
        folder = make_ct_series(work / "ct-512x512x300")
        ours = run_child("medmodels", folder, store)
        plain = run_child("pydicom", folder, store)

    def x(value: float) -> str:
        return f"{value / 1e6:7.0f} MB = {value / VOLUME_BYTES:5.2f}x"

    base, base_plain = ours["after_imports"], plain["after_imports"]
    print(f"  medmodels after imports (+ model manifest)    {x(base)}")
    print(
        f"  medmodels load_scans peak                     {x(ours['after_load'])}"
        f"   above imports {x(ours['after_load'] - base)}"
    )
    print(
        f"  medmodels load + predict peak                 {x(ours['after_predict'])}"
        f"   above imports {x(ours['after_predict'] - base)}"
        f"   (predict {ours['predict_ms']:.0f} ms)"
    )
    print(f"  pydicom loop after imports                    {x(base_plain)}")
    print(
        f"  pydicom loop peak                             {x(plain['after_load'])}"
        f"   above imports {x(plain['after_load'] - base_plain)}"
    )
    lines = [
        ratio_line(
            "load + predict peak RSS / volume bytes",
            ours["after_predict"] / VOLUME_BYTES,
            at_most=4,
        ),
        f"load-only peak RSS / volume bytes: {ours['after_load'] / VOLUME_BYTES:.2f}x "
        f"({(ours['after_load'] - base) / VOLUME_BYTES:.2f}x above imports; pydicom loop "
        f"{(plain['after_load'] - base_plain) / VOLUME_BYTES:.2f}x above imports)",
    ]
    print("\nsummary:")
    for line in lines:
        print("  " + line)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(*sys.argv[2:5])
    else:
        main()

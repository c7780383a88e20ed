"""Inference: ``medmodels.inference.predict`` versus a bare ``InferenceSession.run``.

Target (DESIGN.md, Performance): the inference stage <= 1.05x a bare ``InferenceSession.run``
on the same tensor. For every version of every model in the store, on its reference scan (the
sample the hardware sheets use: CT phantom or MNI152), times, alternating A, B, A, B, ...:

* ``predict``: the whole call with a warm session; its ``timings_ms`` give the ``infer`` stage
  (the time inside onnxruntime) and ``total - load`` (end to end minus session loading);
* ``bare run``: ``session.run`` on the same preprocessed tensor, in the same batches (16 slices
  for slice models with a dynamic batch axis), with the very session predict uses (same options
  and threads), timed by the wall clock around the whole loop.

The ratio against the target is the median over rounds of (infer stage / bare run) of the same
round, which cancels slow drifts of a busy machine better than a ratio of medians. Then, with
no target, the end-to-end overhead: ``total - load - infer`` of the same predict call
(preprocessing, activation, mapping back, postprocessing) in ms, and end to end / bare run.
Run: ``.venv/bin/python bench/inference.py [--repeats N]``.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import time
from typing import Any

import numpy as np
from _common import ROOT, header, model_store, ratio_line, temp_dir

from medmodels.config import load_settings
from medmodels.errors import MedModelsError
from medmodels.inference import predict
from medmodels.inference.runtime import get_session
from medmodels.sheets.reference import choose_reference
from medmodels.store import ModelStore, ModelVersion

# Sample scans found from any working directory.
SETTINGS = load_settings().model_copy(update={"sample_data": ROOT / "sample_data"})
# The module (the package re-exports the function under the same name).
predict_module = importlib.import_module("medmodels.inference.predict")


def batches(model: ModelVersion, tensor: np.ndarray) -> list[np.ndarray]:
    """The batches predict feeds to onnxruntime (same rule as predict._run)."""
    spec = model.manifest.input
    first = spec.shape[0] if spec.shape else None
    step = first if isinstance(first, int) and first > 0 else predict_module.BATCH_SLICES
    if spec.dimensionality == "volume3d":
        step = tensor.shape[0]
    return [tensor[i : i + step] for i in range(0, tensor.shape[0], step)]


def bench_version(model: ModelVersion, repeats: int, budget_s: float) -> dict[str, Any]:
    reference, scan = choose_reference(model.manifest, SETTINGS)
    session, _ = get_session(model.model_path, model.model_sha256)
    tensor = predict_module._preprocess(scan, model.manifest).tensor
    feeds = batches(model, tensor)
    input_name, output_name = model.manifest.input.name, model.manifest.output.names[0]

    def bare() -> float:
        t0 = time.perf_counter()
        for batch in feeds:
            session.run([output_name], {input_name: batch})
        return (time.perf_counter() - t0) * 1000

    t0 = time.perf_counter()
    predict(scan, model)  # warm-up (the session is already cached above)
    bare()
    if not repeats:  # as many rounds as fit in the budget, 5 to 25
        repeats = max(5, min(25, int(budget_s / (time.perf_counter() - t0))))
    infer, end_to_end, pre, post, runs = [], [], [], [], []
    paired, paired_e2e, overhead = [], [], []
    for _ in range(repeats):
        timings = predict(scan, model).timings_ms
        runs.append(bare())
        infer.append(timings["infer"])
        end_to_end.append(timings["total"] - timings["load"])
        pre.append(timings["preprocess"])
        post.append(timings["postprocess"])
        paired.append(infer[-1] / runs[-1])
        paired_e2e.append(end_to_end[-1] / runs[-1])
        overhead.append(end_to_end[-1] - infer[-1])
    med = statistics.median
    return {
        "ref": model.ref,
        "reference": reference.name,
        "tensor": "x".join(map(str, tensor.shape)),
        "batches": len(feeds),
        "infer": med(infer),
        "bare": med(runs),
        "bare_min": min(runs),
        "infer_min": min(infer),
        "paired": med(paired),
        "paired_e2e": med(paired_e2e),
        "overhead": med(overhead),
        "e2e": med(end_to_end),
        "pre": med(pre),
        "post": med(post),
        "n": repeats,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=0, help="rounds per version (0: auto)")
    parser.add_argument("--budget-s", type=float, default=100.0, help="time budget for auto")
    args = parser.parse_args()
    header("bench/inference.py: predict's infer stage vs bare InferenceSession.run")
    with temp_dir() as work:
        root, note = model_store(work)
        store = ModelStore(root)
        print(f"store: {note}")
        refs = [f"{m}@{v}" for m in store.models() for v in store.versions(m)]
        budget = args.budget_s / max(len(refs), 1)
        print(
            f"rounds per version: {args.repeats or f'auto (~{budget:.0f} s each, 5 to 25)'}; "
            "each round is one predict then one bare run"
        )
        lines = []
        for ref in refs:
            try:
                model = store.get(ref)
            except MedModelsError as exc:  # e.g. a store being rebuilt while this runs
                line = f"{ref}: SKIPPED, the store refused it: {exc}"
                print(f"\n{line}")
                lines.append(line)
                continue
            r = bench_version(model, args.repeats, budget)
            print(
                f"\n{r['ref']} on {r['reference']} (tensor {r['tensor']}, {r['batches']} "
                f"run(s) per prediction, n={r['n']}):\n"
                f"  bare InferenceSession.run   median {r['bare']:8.1f} ms  "
                f"min {r['bare_min']:8.1f}\n"
                f"  predict infer stage         median {r['infer']:8.1f} ms  "
                f"min {r['infer_min']:8.1f}  (ratio of medians {r['infer'] / r['bare']:.3f}x)\n"
                f"  predict end to end - load   median {r['e2e']:8.1f} ms  (preprocess "
                f"{r['pre']:.1f} ms, postprocess {r['post']:.1f} ms)"
            )
            line = ratio_line(
                f"{r['ref']}: infer stage / bare run (median of paired rounds)",
                r["paired"],
                at_most=1.05,
            )
            overhead = (
                f"{r['ref']}: end-to-end overhead {r['overhead']:.1f} ms of pre/post-processing "
                f"per prediction; end to end / bare run {r['paired_e2e']:.2f}x (no target)"
            )
            print(f"  {line}\n  {overhead}")
            lines += [line, overhead]
        print("\nsummary:")
        for line in lines:
            print("  " + line)


if __name__ == "__main__":
    main()

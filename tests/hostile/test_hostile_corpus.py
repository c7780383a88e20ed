"""The hostile-input corpus (``make_corpus.py``), loaded in-process and in the limited decode
worker the app uses: every case is refused with its code, or loads with the right warning,
within the limits, and nothing returned echoes a header value."""

from __future__ import annotations

import os
import time
import tracemalloc
from collections import Counter
from pathlib import Path

import make_corpus
import numpy as np
import pytest
from conftest import PHI_TOKENS, all_warnings, check_result, walk_text
from make_corpus import BOMB_IDS, BOMB_PEAK_BYTES, CASE_IDS, LIMITS, XSS_TOKENS, Case

from medmodels.config import Settings, load_settings
from medmodels.errors import MedModelsError, UnreadableScanError
from medmodels.scans import DecodePool, LoadResult, load_scans

SETTINGS: Settings = load_settings(**LIMITS)
NEVER_ECHOED = (*PHI_TOKENS, *XSS_TOKENS, "Traceback", 'File "')


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Case]]:
    root = tmp_path_factory.mktemp("hostile")
    return root, make_corpus.build(root)


@pytest.fixture(scope="module")
def pool():
    p = DecodePool(SETTINGS, workers=1)
    yield p
    p.close()


def assert_echoes_nothing(result: LoadResult, case: Case) -> None:
    """No header value (PHI marker, XSS fragment, UID) in anything the load returned."""
    texts = [walk_text(result)]
    texts += [scan.describe() for scan in result.scans]
    texts += [repr(scan) for scan in result.scans]
    if not result.scans:
        with pytest.raises(UnreadableScanError) as info:
            result.raise_if_empty()
        assert isinstance(info.value, MedModelsError)
        texts += [str(info.value), repr(info.value), walk_text(info.value.problems)]
    text = "\n".join(texts)
    for token in (*NEVER_ECHOED, *case.secrets):
        assert token not in text, f"{case.id}: {token!r} reached the result"


def assert_as_expected(result: LoadResult, case: Case) -> None:
    check_result(result)  # scans are valid, every code is from the contract
    found = [p.code for p in result.problems]
    unexpected = sorted(set(found) - case.allowed)
    assert not unexpected, f"{case.id}: unexpected codes {unexpected} in {result.problems[:5]}"
    missing = sorted(case.required - set(found))
    assert not missing, f"{case.id}: expected codes {missing}, got {sorted(set(found))}"
    low, high = case.scans if isinstance(case.scans, tuple) else (case.scans, case.scans)
    assert low <= len(result.scans) <= high, [s.describe() for s in result.scans]
    if not result.scans:
        assert result.problems, f"{case.id}: nothing loaded and nothing reported"
    if case.warning:
        assert any(case.warning in w.lower() for w in all_warnings(result)), all_warnings(result)
    if case.extra.get("per_file"):
        assert sorted(p.name.rsplit("/", 1)[-1] for p in result.problems) == sorted(
            name for name, _ in case.files
        )
    if "unsafe" in case.extra:
        assert found.count("unsafe-path") == case.extra["unsafe"], result.problems
        np.testing.assert_array_equal(result.scans[0].array, case.extra["expected"])
    if "shapes" in case.extra:
        assert {s.shape for s in result.scans} == case.extra["shapes"]


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_case_in_process_and_in_the_worker(
    case_id: str, corpus: tuple[Path, dict[str, Case]], pool: DecodePool
) -> None:
    root, cases = corpus
    case = cases[case_id]
    start = time.perf_counter()
    direct = load_scans(root / case_id, settings=SETTINGS)
    elapsed = time.perf_counter() - start
    assert elapsed < 10, f"{case_id} took {elapsed:.1f} s in-process"
    assert_as_expected(direct, case)
    assert_echoes_nothing(direct, case)

    worker = pool.call(os.getpid)
    isolated = pool.load(root / case_id)
    # Nothing in the corpus may crash or stall the worker: those would be decoder-crashed or
    # decoder-timeout problems (not in the contract's codes, so check_result refuses them).
    assert_as_expected(isolated, case)
    assert_echoes_nothing(isolated, case)
    assert pool.call(os.getpid) == worker, f"{case_id} cost the worker its life"
    assert Counter(p.code for p in isolated.problems) == Counter(p.code for p in direct.problems)
    assert [s.shape for s in isolated.scans] == [s.shape for s in direct.scans]
    for a, b in zip(isolated.scans, direct.scans, strict=True):
        np.testing.assert_array_equal(a.array, b.array)
        assert a.summary == b.summary and a.warnings == b.warnings


@pytest.mark.parametrize("case_id", BOMB_IDS)
def test_bombs_stay_within_the_memory_bound(
    case_id: str, corpus: tuple[Path, dict[str, Case]]
) -> None:
    root, cases = corpus
    uploads = [(name, (root / case_id / name).read_bytes()) for name, _ in cases[case_id].files]
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        result = load_scans(uploads, settings=SETTINGS)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert_as_expected(result, cases[case_id])
    assert peak < BOMB_PEAK_BYTES, f"{case_id} allocated {peak / 2**20:.0f} MiB"


def test_the_corpus_is_small_and_made_at_test_time(corpus: tuple[Path, dict[str, Case]]) -> None:
    root, cases = corpus
    assert (root / "corpus.json").is_file()
    assert set(cases) == set(CASE_IDS) and len(CASE_IDS) >= 30
    on_disk = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    assert on_disk < 8 * 2**20
    here = Path(__file__).parent
    committed = [p for p in here.rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc")]
    assert not committed, f"binaries next to the corpus script: {committed}"

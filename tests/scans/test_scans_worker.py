"""The limited decode worker: same result as in-process, and a crash, hang or bomb costs one
worker, never the calling process."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import worker_tasks

from medmodels.config import load_settings
from medmodels.errors import UnreadableScanError
from medmodels.scans import DecodePool, load_scans

ROOT = Path(__file__).resolve().parents[2]
PHANTOM_ZIP = ROOT / "sample_data" / "ct-chest-phantom.zip"


@pytest.fixture
def pool():
    p = DecodePool(load_settings(decode_timeout_s=20, decode_memory_mb=1024), workers=1)
    yield p
    p.close()


def test_worker_result_equals_in_process(pool: DecodePool) -> None:
    direct = load_scans([PHANTOM_ZIP])
    isolated = pool.load([PHANTOM_ZIP])
    assert len(isolated.scans) == 1
    np.testing.assert_array_equal(isolated.scans[0].array, direct.scans[0].array)
    assert isolated.scans[0].spacing_mm == direct.scans[0].spacing_mm
    assert isolated.scans[0].removed == direct.scans[0].removed
    # uploaded-file objects cross the process boundary as (name, bytes)
    data = PHANTOM_ZIP.read_bytes()
    from_pair = pool.load([("phantom.zip", data)])
    np.testing.assert_array_equal(from_pair.scans[0].array, direct.scans[0].array)


def test_a_crashing_decoder_costs_one_worker_and_the_next_upload_works(pool: DecodePool) -> None:
    first = pool.call(worker_tasks.pid)
    with pytest.raises(UnreadableScanError) as info:
        pool.call(worker_tasks.crash)
    assert info.value.code == "decoder-crashed"
    assert "crashed" in str(info.value)
    second = pool.call(worker_tasks.pid)
    assert second != first  # a fresh worker replaced the dead one
    assert len(pool.load([PHANTOM_ZIP]).scans) == 1


def test_a_hanging_decoder_is_stopped_after_the_timeout() -> None:
    pool = DecodePool(load_settings(decode_timeout_s=1.5), workers=1)
    try:
        with pytest.raises(UnreadableScanError) as info:
            pool.call(worker_tasks.hang)
        assert info.value.code == "decoder-timeout"
        assert "1.5 s" in str(info.value)
        assert len(pool.load([PHANTOM_ZIP]).scans) == 1
    finally:
        pool.close()


def test_a_bomb_hits_the_memory_limit_in_the_worker(pool: DecodePool) -> None:
    with pytest.raises(MemoryError):
        pool.call(worker_tasks.allocate, 4096)  # the worker is capped at 1 GiB
    assert pool.call(worker_tasks.allocate, 16) == 16 * 1024 * 1024


def test_load_turns_a_dead_worker_into_a_problem(pool: DecodePool) -> None:
    result = pool.load([("x.dcm", b"\x00" * 10)])
    assert [p.code for p in result.problems] == ["unknown-format"]

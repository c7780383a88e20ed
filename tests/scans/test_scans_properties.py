"""Properties (hypothesis): file order never matters; damaged input never raises."""

from __future__ import annotations

from functools import cache

import numpy as np
from conftest import PROBLEM_CODES, check_scan, encode, load, make_ct_dataset, make_ct_series
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

N = 6


@cache
def _series():
    return make_ct_series(n=N, rows=6, cols=5)


@cache
def _file() -> bytes:
    return encode(make_ct_dataset(rows=12, cols=10))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(order=st.permutations(range(N)))
def test_any_file_order_gives_the_same_array(order):
    series = _series()
    files = [(f"n{j}.dcm", series[i]) for j, i in enumerate(order)]
    result = load(files)
    assert not result.problems
    assert len(result.scans) == 1
    np.testing.assert_array_equal(result.scans[0].array, series.expected)


def _assert_handled(result) -> None:
    # load() already checked every scan and that every problem code is from the contract
    assert result.scans or result.problems
    for p in result.problems:
        assert p.code in PROBLEM_CODES
    for s in result.scans:
        check_scan(s)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cut=st.integers(min_value=0, max_value=len(_file()) - 1))
def test_truncation_never_raises(cut):
    result = load([("t.dcm", _file()[:cut])])
    _assert_handled(result)
    if cut == 0:
        assert [p.code for p in result.problems] == ["empty"]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    edits=st.lists(
        st.tuples(st.integers(min_value=128, max_value=len(_file()) - 1), st.integers(0, 255)),
        min_size=1,
        max_size=8,
    )
)
# A once-failing case (the transfer syntax becomes 1.2.840.10008.1.2.9), always checked.
@example(edits=[(_file().index(b"1.2.840.10008.1.2.1\x00") + 18, ord("9"))])
def test_corrupted_bytes_never_raise(edits):
    data = bytearray(_file())
    for offset, value in edits:
        data[offset] = value
    _assert_handled(load([("c.dcm", bytes(data))]))

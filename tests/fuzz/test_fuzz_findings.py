"""What the fuzz harness (fuzz_load.py) found, kept as small regression tests."""

from __future__ import annotations

import io
import struct
import zipfile

import pytest
from conftest import check_result, make_ct_series, make_zip

from medmodels.scans import load_scans


def _empty_zip() -> bytes:
    buf = io.BytesIO()
    zipfile.ZipFile(buf, "w").close()
    return buf.getvalue()


def _zip_with_an_empty_central_directory() -> bytes:
    """A zip whose local files are intact but whose end record lists no entries (found by
    fuzz_load.py: a splice over the central directory of the synthetic series zip)."""
    data = bytearray(make_zip({f"{i}.dcm": d for i, d in enumerate(make_ct_series(n=3))}))
    end = data.rfind(b"PK\x05\x06")
    struct.pack_into("<HHI", data, end + 8, 0, 0, 0)  # entries here, entries in all, CD size
    return bytes(data)


@pytest.mark.parametrize(
    "make", [_empty_zip, _zip_with_an_empty_central_directory], ids=["empty", "no-directory"]
)
def test_a_zip_that_lists_no_entries_is_reported(make) -> None:
    result = load_scans([("upload.zip", make())])
    check_result(result)
    assert not result.scans
    assert [p.name for p in result.problems] == ["upload.zip"]
    assert result.problems[0].code in {"empty", "damaged"}

"""Bad and hostile uploads: every one becomes a FileProblem with a stable code, never a crash."""

from __future__ import annotations

import gzip
import io
import random
import struct
import tracemalloc
import zipfile

import numpy as np
import pytest
from conftest import (
    MPEG2_MPML,
    codes,
    encode,
    fake_encapsulated,
    load,
    make_ct_dataset,
    make_ct_series,
    make_nifti,
    make_zip,
    named,
    says_what_to_do,
    zeros_gzip,
)
from pydicom.encaps import encapsulate
from pydicom.uid import DeflatedExplicitVRLittleEndian

from medmodels.errors import MedModelsError, UnreadableScanError

BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"


def one_problem(result, allowed: set[str]):
    assert not result.scans, [s.describe() for s in result.scans]
    assert len(result.problems) == 1, result.problems
    problem = result.problems[0]
    assert problem.code in allowed, problem
    return problem


def random_bytes(n: int, seed: int = 0) -> bytes:
    data = bytearray(random.Random(seed).randbytes(n))
    data[:4] = b"\x13\x37\x42\x42"  # not a magic number of any supported format
    return bytes(data)


# --- not an image, empty, truncated ----------------------------------------------------------


def test_random_bytes_are_unknown_format():
    p = one_problem(load([("x.dcm", random_bytes(4000))]), {"unknown-format"})
    assert p.name == "x.dcm"
    assert says_what_to_do(p.reason), p.reason


def test_text_file_is_unknown_format():
    one_problem(load([("notes.txt", b"Patient looked fine.\n" * 20)]), {"unknown-format"})


def test_random_bytes_after_preamble_and_dicm_are_damaged():
    data = b"\x00" * 128 + b"DICM" + random_bytes(3000, seed=1)
    one_problem(load([("x.dcm", data)]), {"damaged", "truncated"})


def test_preamble_and_dicm_only_is_damaged_or_truncated():
    one_problem(load([("x.dcm", b"\x00" * 128 + b"DICM")]), {"damaged", "truncated"})


def test_empty_file():
    p = one_problem(load([("empty.dcm", b"")]), {"empty"})
    assert p.name == "empty.dcm"


def test_empty_upload_raises_with_code_empty():
    result = load([])
    assert not result.scans and not result.problems
    with pytest.raises(UnreadableScanError) as info:
        result.raise_if_empty()
    assert info.value.code == "empty"


def _offsets_of(data: bytes) -> dict[str, int]:
    """Cut points inside the header (in a value) and inside the pixel data."""
    name_at = data.index(b"Qwyzzle")
    pixel_tag = data.rindex(b"\xe0\x7f\x10\x00")
    return {
        "in-file-meta": 140,
        "in-patient-name": name_at + 3,
        "in-pixel-header": pixel_tag + 6,
        "in-pixel-data": pixel_tag + 12 + 20,
        "last-byte": len(data) - 1,
    }


@pytest.mark.parametrize(
    "where", ["in-file-meta", "in-patient-name", "in-pixel-header", "in-pixel-data", "last-byte"]
)
def test_truncated_dicom(where):
    data = encode(make_ct_dataset(rows=16, cols=16))
    cut = _offsets_of(data)[where]
    p = one_problem(load([("cut.dcm", data[:cut])]), {"truncated", "damaged"})
    assert p.name == "cut.dcm"


def test_truncated_compressed_dicom():
    from pydicom.uid import RLELossless

    data = encode(make_ct_dataset(rows=16, cols=16, transfer_syntax=RLELossless))
    one_problem(load([("cut.dcm", data[:-40])]), {"truncated", "damaged"})


def test_dicom_without_preamble_is_unknown_format_with_advice():
    data = encode(make_ct_dataset(), preamble=False)
    assert data[128:132] != b"DICM"
    p = one_problem(load([("old.dcm", data)]), {"unknown-format"})
    assert says_what_to_do(p.reason), p.reason


def test_non_image_object_is_no_pixel_data():
    ds = make_ct_dataset()
    del ds.PixelData
    for keyword in ("Rows", "Columns", "ImagePositionPatient", "ImageOrientationPatient"):
        delattr(ds, keyword)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = BASIC_TEXT_SR
    ds.Modality = "SR"
    one_problem(load([("report.dcm", encode(ds))]), {"no-pixel-data"})


def test_image_object_without_pixel_data():
    # The contract says no-pixel-data; the loader may also call a CT object that ends right
    # before its pixel data truncated (the two cannot be told apart).
    ds = make_ct_dataset()
    del ds.PixelData
    one_problem(load([("nopix.dcm", encode(ds))]), {"no-pixel-data", "truncated"})


def test_compressed_without_a_decoder():
    ds = make_ct_dataset()
    fake_encapsulated(ds, MPEG2_MPML)
    p = one_problem(load([("video.dcm", encode(ds))]), {"no-decoder"})
    assert says_what_to_do(p.reason), p.reason


def test_pixel_data_shorter_than_declared():
    ds = make_ct_dataset(rows=8, cols=8)
    ds.Rows = 512
    ds.Columns = 512
    one_problem(load([("short.dcm", encode(ds))]), {"truncated", "damaged"})


def test_lying_dimensions_are_refused_before_decoding():
    ds = make_ct_dataset(rows=8, cols=8)
    ds.Rows = 65535
    ds.Columns = 65535
    ds.NumberOfFrames = 10000
    data = encode(ds)
    tracemalloc.start()
    try:
        result = load([("huge.dcm", data)])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    one_problem(result, {"image-too-large", "truncated"})
    assert peak < 64 * 2**20, f"allocated {peak / 2**20:.0f} MiB for a lying header"


def test_image_over_max_image_mb():
    # 1024 x 1024 x 16 bit = 2 MiB of pixels, over a 1 MiB limit
    ds = make_ct_dataset(rows=1024, cols=1024, stored=np.zeros((1024, 1024), np.int32))
    p = one_problem(load([("big.dcm", encode(ds))], max_image_mb=1), {"image-too-large"})
    assert "MEDMODELS_MAX_IMAGE_MB" in p.reason or says_what_to_do(p.reason)


def _nested_sequence_file(depth: int) -> bytes:
    """A valid file with a private sequence nested ``depth`` deep (undefined lengths)."""
    ds = make_ct_dataset()
    pixel = ds.PixelData
    del ds.PixelData
    head = encode(ds)
    creator = b"\xdf\x7f\x10\x00LO" + struct.pack("<H", 8) + b"MMTEST  "
    sq_open = b"\xdf\x7f\x00\x10SQ\x00\x00\xff\xff\xff\xff"
    item_open = b"\xfe\xff\x00\xe0\xff\xff\xff\xff"
    inner = b"\xdf\x7f\x10\x00LO" + struct.pack("<H", 8) + b"MMTEST  "
    item_close = b"\xfe\xff\x0d\xe0\x00\x00\x00\x00"
    sq_close = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
    nested = b""
    for _ in range(depth):
        nested = sq_open + item_open + inner + nested + item_close + sq_close
    pixels = b"\xe0\x7f\x10\x00OW\x00\x00" + struct.pack("<I", len(pixel)) + pixel
    return head + creator + nested + pixels


def test_moderately_nested_sequences_load():
    result = load([("nested.dcm", _nested_sequence_file(20))])
    assert len(result.scans) == 1, result.problems


def test_deeply_nested_sequences_do_not_crash():
    result = load([("deep.dcm", _nested_sequence_file(5000))])
    # either parsed (the sequence is not needed) or refused as damaged; never a RecursionError
    if not result.scans:
        assert codes(result) and codes(result)[0] in {"damaged", "unsupported"}


# --- limits --------------------------------------------------------------------------------------


def test_gzip_bomb_is_stopped():
    bomb = zeros_gzip(200 * 2**20)  # ~200 KB inflating to 200 MiB
    assert len(bomb) < 300_000
    tracemalloc.start()
    try:
        result = load([("scan.nii.gz", bomb)], max_decompressed_mb=1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    one_problem(result, {"bomb"})
    assert peak < 64 * 2**20, f"inflated {peak / 2**20:.0f} MiB before stopping"


def test_small_gzip_bomb_over_max_decompressed_mb():
    bomb = zeros_gzip(3 * 2**20)  # a few KB
    assert len(bomb) < 10_000
    one_problem(load([("x.gz", bomb)], max_decompressed_mb=1), {"bomb"})


def test_zip_bomb_single_entry_over_the_ratio():
    entry = b"\x00" * (20 * 2**20)
    archive = make_zip({"a.dcm": entry})
    assert len(archive) < 100_000
    result = load([("bomb.zip", archive)])
    assert "bomb" in codes(result)
    assert not result.scans


def test_zip_entries_together_over_max_decompressed_mb():
    # incompressible entries: no ratio problem, but together they inflate past 1 MiB
    entries = {f"r{i}.bin": random.Random(i).randbytes(400_000) for i in range(4)}
    result = load([("big.zip", make_zip(entries))], max_decompressed_mb=1)
    assert "bomb" in codes(result)


def test_deflated_transfer_syntax_bomb():
    ds = make_ct_dataset()
    block = ds.private_block(0x0013, "MMTEST PADDING", create=True)
    block.add_new(0x01, "OB", b"\x00" * (20 * 2**20))
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    data = encode(ds)
    assert len(data) < 200_000
    result = load([("dfl.dcm", data)], max_decompressed_mb=4)
    assert codes(result) == ["bomb"]


def test_too_many_files():
    series = make_ct_series(n=3)
    result = load(named(series), max_files=2)
    assert "too-many-files" in codes(result)
    assert not any(s.shape[0] == 3 for s in result.scans)


def test_too_many_zip_entries():
    series = make_ct_series(n=3)
    archive = make_zip([(f"{i}.dcm", d) for i, d in enumerate(series)])
    result = load([("s.zip", archive)], max_zip_entries=2)
    assert "too-many-entries" in codes(result)


def test_single_file_over_max_upload_mb():
    ds = make_ct_dataset(rows=1024, cols=1024, stored=np.zeros((1024, 1024), np.int32))
    result = load([("big.dcm", encode(ds))], max_upload_mb=1)
    assert "too-large" in codes(result)
    assert not result.scans


def test_upload_summed_over_max_upload_mb():
    ds = make_ct_dataset(rows=640, cols=640, stored=np.zeros((640, 640), np.int32))
    data = encode(ds)  # ~0.8 MiB each
    assert len(data) < 2**20
    result = load([("a.dcm", data), ("b.dcm", data)], max_upload_mb=1)
    assert "too-large" in codes(result)


# --- archives --------------------------------------------------------------------------------


def test_zip_with_unsafe_paths_keeps_the_good_entries():
    good = make_ct_series(n=3)
    evil = make_ct_series(n=3)  # another series: must not be loaded
    archive = make_zip(
        [
            ("series/0.dcm", good[0]),
            ("../evil.dcm", evil[0]),
            ("series/1.dcm", good[1]),
            ("/etc/evil.dcm", evil[1]),
            ("C:/evil.dcm", evil[2]),
            ("series/../../evil2.dcm", evil[2]),
            ("series/2.dcm", good[2]),
        ]
    )
    result = load([("upload.zip", archive)])
    assert codes(result) == ["unsafe-path"] * 4, result.problems
    assert len(result.scans) == 1
    np.testing.assert_array_equal(result.scans[0].array, good.expected)


def test_nested_zip():
    inner = make_zip({"a.dcm": make_ct_series(n=1)[0]})
    result = load([("outer.zip", make_zip({"inner.zip": inner}))])
    assert codes(result) == ["nested-archive"]
    assert not result.scans


def test_nested_gzip():
    nii = make_nifti(np.arange(24, dtype=np.int16).reshape(2, 3, 4), np.eye(4))
    twice = gzip.compress(gzip.compress(nii))
    assert codes(load([("x.nii.gz.gz", twice)])) == ["nested-archive"]


def test_zip_of_a_gzipped_nifti_loads_or_is_reported():
    nii_gz = make_nifti(np.arange(24, dtype=np.int16).reshape(2, 3, 4), np.eye(4), gz=True)
    result = load([("x.zip", make_zip({"x.nii.gz": nii_gz}))])
    assert result.scans or codes(result) == ["nested-archive"]


def test_zip_with_a_folder_entry_and_junk_reports_the_junk_only():
    series = make_ct_series(n=2)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("series/", b"")
        zf.writestr("series/a.dcm", series[0])
        zf.writestr("series/b.dcm", series[1])
        zf.writestr("series/readme.txt", b"hello " * 50)
    result = load([("s.zip", buf.getvalue())])
    assert [s.shape[0] for s in result.scans] == [2]
    assert codes(result) == ["unknown-format"]


def test_corrupt_zip_is_damaged():
    archive = make_zip({"a.dcm": make_ct_series(n=1)[0]})
    one_problem(load([("x.zip", archive[: len(archive) // 2])]), {"damaged", "truncated"})


# --- every problem is reported -----------------------------------------------------------------


def test_mixed_upload_reports_every_bad_file():
    good = make_ct_series(n=3)
    truncated = encode(make_ct_dataset())[:300]
    archive = make_zip({"a.dcm": good[0], "b.dcm": good[1], "c.dcm": good[2]})
    result = load(
        [
            ("empty.dcm", b""),
            ("noise.dcm", random_bytes(2000)),
            ("cut.dcm", truncated),
            ("series.zip", archive),
        ]
    )
    assert len(result.scans) == 1
    assert result.scans[0].shape[0] == 3
    assert len(result.problems) == 3
    assert sorted(p.name for p in result.problems) == ["cut.dcm", "empty.dcm", "noise.dcm"]
    assert codes(result)[0] == "empty" or "empty" in codes(result)


def test_raise_if_empty_lists_every_problem():
    result = load(
        [
            ("empty.dcm", b""),
            ("noise.dcm", random_bytes(2000)),
            ("cut.dcm", encode(make_ct_dataset())[:300]),
        ]
    )
    with pytest.raises(UnreadableScanError) as info:
        result.raise_if_empty()
    err = info.value
    assert isinstance(err, MedModelsError) and isinstance(err, ValueError)
    assert len(err.problems) == 3
    for name in ("empty.dcm", "noise.dcm", "cut.dcm"):
        assert name in str(err)


def test_raise_if_empty_returns_the_result_when_a_scan_loaded():
    result = load([*named(make_ct_series(n=2)), ("empty.dcm", b"")])
    assert result.raise_if_empty() is result


# --- corrupt content inside otherwise well-formed containers ---------------------------------
# Found by fuzzing (tests/scans/test_scans_properties.py); each must become a problem.


def test_corrupt_gzip_stream_is_damaged():
    nii = make_nifti(
        np.random.default_rng(0).integers(0, 999, (8, 8, 8)).astype(np.int16), np.eye(4)
    )
    data = bytearray(gzip.compress(nii, mtime=0))
    for i in range(20, 60, 3):
        data[i] ^= 0x5A
    result = load([("x.nii.gz", bytes(data))])
    assert codes(result) in (["damaged"], ["truncated"])


def test_corrupt_zip_entry_is_damaged_and_the_rest_loads():
    series = make_ct_series(n=3, rows=16, cols=16)
    bad = encode(make_ct_dataset(rows=16, cols=16))
    archive = bytearray(
        make_zip([("bad.dcm", bad), *[(f"{i}.dcm", d) for i, d in enumerate(series)]])
    )
    # the first entry's compressed data starts after its 30-byte local header and its name
    start = 30 + len("bad.dcm")
    for i in range(start + 10, start + 60, 3):
        archive[i] ^= 0x5A
    result = load([("x.zip", bytes(archive))])
    assert codes(result) in (["damaged"], ["truncated"])
    assert [s.shape[0] for s in result.scans] == [3]


def test_unknown_transfer_syntax_uid_is_reported():
    data = encode(make_ct_dataset())
    explicit_le = b"1.2.840.10008.1.2.1\x00"
    assert data.count(explicit_le) == 1
    data = data.replace(explicit_le, b"1.2.3.4.5.6.7.8.9.10")  # same length, not a syntax
    one_problem(load([("x.dcm", data)]), {"damaged", "no-decoder", "unsupported"})


def test_unknown_vr_in_header_is_damaged():
    data = bytearray(encode(make_ct_dataset()))
    at = data.index(b"\x28\x00\x30\x00DS")  # PixelSpacing
    data[at + 4 : at + 6] = b"QS"
    result = load([("x.dcm", bytes(data))])
    assert result.scans or codes(result) == ["damaged"]


def test_corrupt_rle_segments_are_damaged_not_a_codec_panic():
    from pydicom.uid import RLELossless

    ds = make_ct_dataset(rows=8, cols=8, transfer_syntax=RLELossless)
    seg = bytes([0x81, 0x00]) * 4  # each pair repeats a byte 128 times: far more than 64
    header = struct.pack("<16I", 2, 64, 64 + len(seg), *([0] * 13))
    ds.PixelData = encapsulate([header + seg + seg])
    one_problem(load([("x.dcm", encode(ds))]), {"damaged", "truncated"})


def test_zip_entry_with_unsupported_compression_method():
    archive = bytearray(make_zip({"a.dcm": make_ct_series(n=1)[0]}, compression=zipfile.ZIP_STORED))
    # compression method 99 (AES) in both the local header (offset 8) and the central directory
    archive[8:10] = struct.pack("<H", 99)
    central = archive.index(b"PK\x01\x02")
    archive[central + 10 : central + 12] = struct.pack("<H", 99)
    result = load([("x.zip", bytes(archive))])
    assert codes(result) and codes(result)[0] in {"damaged", "unsupported", "no-decoder"}


def test_zip_entry_needing_a_newer_zip_version():
    archive = bytearray(make_zip({"a.dcm": make_ct_series(n=1)[0]}))
    # "version needed to extract" 9.1 in the local header and the central directory
    archive[4:6] = struct.pack("<H", 91)
    central = archive.index(b"PK\x01\x02")
    archive[central + 6 : central + 8] = struct.pack("<H", 91)
    result = load([("x.zip", bytes(archive))])
    assert codes(result) and codes(result)[0] in {"damaged", "unsupported", "no-decoder"}


def test_element_with_impossible_length_is_damaged():
    data = encode(make_ct_dataset(rows=8, cols=8))
    rows = b"\x28\x00\x10\x00US\x02\x00" + struct.pack("<H", 8)
    assert data.count(rows) == 1
    data = data.replace(rows, b"\x28\x00\x10\x00US\x01\x00\x08")  # 1 byte for a 2-byte US
    one_problem(load([("x.dcm", data)]), {"damaged", "truncated"})


def test_transfer_syntax_with_a_wrong_vr_is_damaged():
    # found by fuzzing: (0002,0010) read as FD with 20 bytes, not a multiple of 8
    data = encode(make_ct_dataset())
    tag = b"\x02\x00\x10\x00UI"
    assert data.count(tag) == 1
    data = data.replace(tag, b"\x02\x00\x10\x00FD")
    one_problem(load([("x.dcm", data)]), {"damaged", "truncated", "unknown-format"})

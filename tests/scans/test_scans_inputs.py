"""What ``load_scans`` accepts: paths, folders, bytes, (name, bytes) pairs, file-like objects;
formats are detected by content, never by the file name."""

from __future__ import annotations

import io

import numpy as np
from conftest import load, make_ct_series, make_nifti, make_png, make_zip, named


class UploadedFile:
    """What Streamlit's ``UploadedFile`` offers: a name, ``read()`` and ``getvalue()``."""

    def __init__(self, name: str, data: bytes):
        self.name = name
        self._data = data

    def getvalue(self) -> bytes:
        return self._data

    def read(self, size: int = -1) -> bytes:
        return self._data if size < 0 else self._data[:size]


def _volume(result, n: int):
    assert not result.problems, result.problems
    assert [s.shape[0] for s in result.scans] == [n]
    return result.scans[0]


def test_paths_as_str_and_path(tmp_path):
    series = make_ct_series(tmp_path, n=3)
    scan = _volume(load([str(series[0]), series[1], str(series[2])]), 3)
    np.testing.assert_array_equal(scan.array, series.expected)


def test_folder_is_walked_recursively(tmp_path):
    a = make_ct_series(tmp_path / "study" / "a" / "deeper", n=3)
    make_ct_series(tmp_path / "study" / "b", n=2)
    result = load([tmp_path / "study"])
    assert not result.problems
    assert sorted(s.shape[0] for s in result.scans) == [2, 3]
    vol = next(s for s in result.scans if s.shape[0] == 3)
    np.testing.assert_array_equal(vol.array, a.expected)


def test_bare_bytes():
    series = make_ct_series(n=3)
    _volume(load(list(series)), 3)


def test_name_bytes_pairs():
    series = make_ct_series(n=3)
    _volume(load(named(series)), 3)


def test_file_like_objects():
    series = make_ct_series(n=3)
    files = [UploadedFile(f"s{i}.dcm", d) for i, d in enumerate(series)]
    _volume(load(files), 3)


def test_bytesio_with_a_name():
    series = make_ct_series(n=2)
    files = []
    for i, d in enumerate(series):
        f = io.BytesIO(d)
        f.name = f"s{i}.dcm"
        files.append(f)
    _volume(load(files), 2)


def test_mixed_kinds_of_input(tmp_path):
    series = make_ct_series(tmp_path / "dir", n=4)
    data = [p.read_bytes() for p in series]
    result = load(
        [
            series[0],
            ("one.dcm", data[1]),
            UploadedFile("two.dcm", data[2]),
            data[3],
        ]
    )
    scan = _volume(result, 4)
    np.testing.assert_array_equal(scan.array, series.expected)


def test_zip_upload_as_file_like():
    series = make_ct_series(n=3)
    archive = make_zip([(f"x/{i}.dcm", d) for i, d in enumerate(series)])
    _volume(load([UploadedFile("upload.zip", archive)]), 3)


def test_dicom_named_png_is_read_as_dicom():
    series = make_ct_series(n=2)
    scan = _volume(load([("scan.png", series[0]), ("other.jpg", series[1])]), 2)
    assert scan.source_format == "DICOM"


def test_nifti_named_dcm_is_read_as_nifti():
    data = np.arange(60, dtype=np.int16).reshape(3, 4, 5)
    result = load([("x.dcm", make_nifti(data, np.eye(4)))])
    assert not result.problems
    assert result.scans[0].source_format == "NIfTI"


def test_gzipped_nifti_without_extension():
    data = np.arange(60, dtype=np.int16).reshape(3, 4, 5)
    result = load([("upload", make_nifti(data, np.eye(4), gz=True))])
    assert not result.problems
    assert result.scans[0].source_format == "NIfTI"


def test_png_named_dcm_is_read_as_png():
    img = np.arange(30, dtype=np.uint8).reshape(5, 6)
    result = load([("x.dcm", make_png(img))])
    assert not result.problems
    assert result.scans[0].source_format == "PNG"


def test_zip_without_zip_extension():
    series = make_ct_series(n=2)
    archive = make_zip([(f"{i}", d) for i, d in enumerate(series)])
    _volume(load([("upload.bin", archive)]), 2)


def test_same_series_twice_has_the_same_fingerprint():
    series = make_ct_series(n=3)
    a = load(named(series)).scans[0]
    b = load(list(reversed(named(series)))).scans[0]
    assert a.fingerprint and a.fingerprint == b.fingerprint
    for uid in series.uids:
        assert uid not in a.fingerprint

"""PNG and JPEG: one image, no spacing, values as stored (grey) or greyscale of RGB."""

from __future__ import annotations

import numpy as np
from conftest import codes, load, make_jpeg, make_png


def gradient(h: int = 12, w: int = 20) -> np.ndarray:
    return (np.arange(h * w).reshape(h, w) % 251).astype(np.uint8)


def only_scan(result):
    assert not result.problems, result.problems
    assert len(result.scans) == 1
    return result.scans[0]


def test_grey_png():
    img = gradient()
    scan = only_scan(load([("xray.png", make_png(img))]))
    assert scan.kind == "image"
    assert scan.source_format == "PNG"
    assert scan.spacing_mm is None
    assert scan.voxel_volume_ml is None
    assert scan.shape == (1, 12, 20)
    assert scan.array.dtype == np.int16
    np.testing.assert_array_equal(scan.array[0], img)
    assert "spacing unknown" in scan.describe()


def test_16bit_png_keeps_values():
    img = (np.arange(12 * 20).reshape(12, 20) * 250).astype(np.uint16)  # up to 59750
    scan = only_scan(load([("deep.png", make_png(img))]))
    assert scan.array.dtype == np.float32  # does not fit int16
    np.testing.assert_array_equal(scan.array[0], img)


def test_rgb_png_of_grey_content_gives_those_values():
    img = gradient()
    rgb = np.stack([img, img, img], axis=-1)
    scan = only_scan(load([("photo.png", make_png(rgb))]))
    assert scan.kind == "image"
    assert scan.shape == (1, 12, 20)
    np.testing.assert_array_equal(scan.array[0], img)


def test_rgb_png_of_colour_content_is_one_image():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(10, 14, 3), dtype=np.uint8)
    scan = only_scan(load([("photo.png", make_png(rgb))]))
    assert scan.shape == (1, 10, 14)


def test_grey_jpeg():
    img = np.repeat(np.linspace(0, 255, 32, dtype=np.uint8)[None, :], 24, axis=0)
    scan = only_scan(load([("xray.jpg", make_jpeg(img))]))
    assert scan.kind == "image"
    assert scan.source_format == "JPEG"
    assert scan.spacing_mm is None
    assert scan.shape == (1, 24, 32)
    assert np.abs(scan.array[0].astype(float) - img).mean() < 3


def test_rgb_jpeg():
    img = np.repeat(np.linspace(0, 255, 32, dtype=np.uint8)[None, :], 24, axis=0)
    rgb = np.stack([img, img, img], axis=-1)
    scan = only_scan(load([("photo.jpeg", make_jpeg(rgb))]))
    assert scan.shape == (1, 24, 32)
    assert np.abs(scan.array[0].astype(float) - img).mean() < 3


def test_truncated_png():
    data = make_png(np.random.default_rng(1).integers(0, 256, (64, 64), dtype=np.uint8))
    assert codes(load([("cut.png", data[: len(data) // 2])])) in (["truncated"], ["damaged"])


def test_png_declaring_a_huge_size_is_refused():
    import struct
    import zlib

    data = bytearray(make_png(gradient()))
    # IHDR starts at byte 8: length(4) "IHDR"(4) width(4) height(4) ...; fix its CRC after
    data[16:24] = struct.pack(">II", 100_000, 100_000)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    result = load([("huge.png", bytes(data))], max_image_mb=64)
    assert codes(result) and codes(result)[0] in {"image-too-large", "damaged", "truncated"}

"""Plain PNG and JPEG images (e.g. an exported radiograph): 2D, greyscale, spacing unknown."""

from __future__ import annotations

import hashlib
import io
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

from medmodels.errors import UnreadableScanError
from medmodels.scans.limits import human_bytes
from medmodels.scans.types import Scan

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"


_problem = UnreadableScanError.for_file


def load(name: str, data: bytes, *, max_image_bytes: int) -> Scan:
    """Turn PNG/JPEG bytes into a greyscale ``image`` Scan with unknown spacing."""
    fmt = "PNG" if data.startswith(PNG_MAGIC) else "JPEG"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img = Image.open(io.BytesIO(data))
            width, height = img.size
            bands = len(img.getbands())
            if width * height * max(bands, 1) * 4 > max_image_bytes:
                raise _problem(
                    name,
                    "image-too-large",
                    f"The image is {width}×{height} pixels "
                    f"({human_bytes(width * height * 4)} decoded), more than the limit of "
                    f"{human_bytes(max_image_bytes)} (MEDMODELS_MAX_IMAGE_MB).",
                )
            had_metadata = bool(img.info.get("exif")) or any(
                isinstance(v, str) for v in img.info.values()
            )
            img.load()
    except UnreadableScanError:
        raise
    except Image.DecompressionBombError:
        raise _problem(
            name,
            "image-too-large",
            f"The {fmt} image declares far more pixels than any scan; it was refused.",
        ) from None
    except (UnidentifiedImageError, SyntaxError):
        raise _problem(name, "damaged", f"The {fmt} image is damaged and cannot be read.") from None
    except (OSError, ValueError):
        raise _problem(name, "truncated", f"The {fmt} image is truncated or damaged.") from None
    notes: list[str] = []
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(img, dtype=np.float32)
    else:
        if img.mode not in ("L", "1"):
            rgb = np.asarray(img.convert("RGB"))
            if not (
                np.array_equal(rgb[..., 0], rgb[..., 1])
                and np.array_equal(rgb[..., 1], rgb[..., 2])
            ):
                notes.append("The colour image was converted to greyscale.")
        array = np.asarray(img.convert("L"), dtype=np.int16)
    if (
        array.dtype == np.float32
        and array.size
        and float(array.max()) <= 32767
        and float(array.min()) >= -32768
    ):
        array = array.astype(np.int16)
    array = np.ascontiguousarray(array[np.newaxis])
    notes.append(f"{fmt} images carry no pixel spacing, so sizes in mm or mL cannot be given.")
    digest = hashlib.blake2b(np.ascontiguousarray(array).data.cast("B"), digest_size=16)
    digest.update(repr((array.shape, str(array.dtype))).encode())
    return Scan(
        array=array,
        spacing_mm=None,
        affine=None,
        modality="OT",
        kind="image",
        summary={
            "modality": "OT",
            "shape": list(array.shape),
            "spacing_mm": None,
            "slices": 1,
            "files": 1,
            "format": fmt,
        },
        warnings=tuple(notes),
        removed=(f"{fmt} metadata (EXIF/text)",) if had_metadata else (),
        source_format=fmt,
        file_count=1,
        fingerprint=digest.hexdigest(),
    )

"""The manifest: a model version's card and I/O contract, stored as ``manifest.json``.

The manifest is what inference, the app and the sheets rely on. It holds

* identity: ``name``, SemVer ``version`` (``1.0.0+int8`` for a variant, with ``derived_from``),
  title, summary, task, authors, licence, created date and this version's changelog;
* ``card``: intended use, limitations, training data, metrics, warnings;
* ``input``: modalities, dimensionality, ONNX input name, shape, dtype, intensity units, the
  preprocessing steps (a closed list, applied in order) and the accepted pixel spacing;
* ``output``: ONNX output names, activation, labels with colours, classification threshold and the
  postprocessing steps (a closed list, applied in order);
* ``files``: the SHA-256 of every file in the version folder except ``manifest.json`` itself.

Axis conventions for ``input.shape``: ``image2d`` and ``slice2d`` models take
``(batch, channels, rows, columns)``; ``volume3d`` models take
``(batch, channels, slices, rows, columns)``. A dynamic axis is a name (``"N"``) or ``null``.

Intensity units (``input.units``), a closed list:

* ``HU``: CT Hounsfield units (air -1000, water 0);
* ``MR-arbitrary``: MR scanner values, no absolute scale (normalise per image);
* ``0-255``: 8-bit greyscale such as a photograph, screenshot or exported radiograph;
* ``0-1``: values already scaled to [0, 1];
* ``raw``: stored detector values with no physical meaning (radiographs, ultrasound).

Unknown fields are refused everywhere, so a typo never passes silently. ``schema_version``
(always 1 for now) lets a later release recognise and migrate older manifests.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import tempfile
import types
import typing
from dataclasses import dataclass
from datetime import date
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal, Self, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.functional_validators import BeforeValidator

from medmodels.errors import ManifestError

MANIFEST_FILE = "manifest.json"
MODEL_FILE = "model.onnx"
README_FILE = "README.md"

# --------------------------------------------------------------------------------------------
# SemVer

_SEMVER_RE = re.compile(
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?"
)


def _identifier_key(ident: str) -> tuple[int, int, str]:
    # SemVer: numeric identifiers compare numerically and sort before alphanumeric ones.
    if ident.isdigit():
        return (0, int(ident), ident)
    return (1, 0, ident)


@functools.total_ordering
@dataclass(frozen=True)
class SemVer:
    """A parsed SemVer 2.0 version; orders by precedence, then build metadata (plain first)."""

    major: int
    minor: int
    patch: int
    prerelease: tuple[str, ...] = ()
    build: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> SemVer:
        """Parse ``text`` or raise ValueError saying what a version looks like."""
        match = _SEMVER_RE.fullmatch(text) if isinstance(text, str) else None
        if match is None:
            raise ValueError(
                f"expected a SemVer 2.0 version like 1.2.0, 1.2.0-rc.1 or 1.0.0+int8; got {text!r}"
            )
        major, minor, patch, pre, build = match.groups()
        return cls(
            int(major),
            int(minor),
            int(patch),
            tuple(pre.split(".")) if pre else (),
            tuple(build.split(".")) if build else (),
        )

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += "-" + ".".join(self.prerelease)
        if self.build:
            text += "+" + ".".join(self.build)
        return text

    def precedence(self) -> tuple[Any, ...]:
        """The SemVer precedence key (build metadata ignored)."""
        pre: tuple[Any, ...] = (
            (0, tuple(_identifier_key(i) for i in self.prerelease)) if self.prerelease else (1,)
        )
        return (self.major, self.minor, self.patch, pre)

    def sort_key(self) -> tuple[Any, ...]:
        """Precedence, then build metadata, with the plain version before its builds."""
        build = (1, tuple(_identifier_key(i) for i in self.build)) if self.build else (0,)
        return (*self.precedence(), build)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, SemVer):
            return NotImplemented
        return self.sort_key() < other.sort_key()


def is_version(text: str) -> bool:
    """Whether ``text`` is a valid SemVer 2.0 version."""
    return isinstance(text, str) and _SEMVER_RE.fullmatch(text) is not None


def sort_versions(versions: typing.Iterable[str], *, newest_first: bool = True) -> list[str]:
    """Sort version strings by SemVer (ties in precedence by build metadata, plain first)."""
    return sorted(versions, key=lambda v: SemVer.parse(v).sort_key(), reverse=newest_first)


# --------------------------------------------------------------------------------------------
# Field types with readable errors

_NAME_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,62}[a-z0-9]")
_COLOUR_RE = re.compile(r"#[0-9a-fA-F]{6}")
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_MODALITY_RE = re.compile(r"[A-Z][A-Z0-9]{1,15}")


def is_model_name(text: str) -> bool:
    """Whether ``text`` is a valid model name (also a safe folder name)."""
    return isinstance(text, str) and _NAME_RE.fullmatch(text) is not None


def _check_name(value: Any) -> Any:
    if not is_model_name(value):
        raise ValueError(
            "expected 2-64 lowercase letters, digits or dashes, starting and ending with a "
            f"letter or digit (e.g. 'lung-mask'); got {value!r}"
        )
    return value


def _check_version(value: Any) -> Any:
    SemVer.parse(value)
    return value


def _check_colour(value: Any) -> Any:
    if not isinstance(value, str) or not _COLOUR_RE.fullmatch(value):
        raise ValueError(f"expected a colour as '#rrggbb' (e.g. '#ff0000'); got {value!r}")
    return value.lower()


def _check_modality(value: Any) -> Any:
    if not isinstance(value, str) or not _MODALITY_RE.fullmatch(value):
        raise ValueError(
            f"expected a DICOM modality code in capitals like 'CT' or 'MR'; got {value!r}"
        )
    return value


ModelName = Annotated[str, BeforeValidator(_check_name)]
Version = Annotated[str, BeforeValidator(_check_version)]
Colour = Annotated[str, BeforeValidator(_check_colour)]
Modality = Annotated[str, BeforeValidator(_check_modality)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
PositiveFloat = Annotated[float, Field(gt=0)]

Task = Literal["classification", "segmentation"]
Dimensionality = Literal["image2d", "slice2d", "volume3d"]
Units = Literal["HU", "MR-arbitrary", "0-255", "0-1", "raw"]
DType = Literal["float32", "float16", "float64", "uint8", "int8", "int16", "int32", "int64"]
Activation = Literal["none", "softmax", "sigmoid"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


# --------------------------------------------------------------------------------------------
# Card


class Metric(_Strict):
    """One reported performance figure, e.g. Dice 0.91 on a named test set."""

    name: Text
    value: float
    dataset: Text
    note: str | None = None


class Card(_Strict):
    """The model card: what the model is for, what it is not for, and how well it did."""

    intended_use: Text
    limitations: list[Text] = Field(min_length=1)
    training_data: Text
    metrics: list[Metric] = Field(default_factory=list)
    warnings: list[Text] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_metrics(self) -> Self:
        seen: set[tuple[str, str]] = set()
        for metric in self.metrics:
            key = (metric.name, metric.dataset)
            if key in seen:
                raise ValueError(
                    f"metric {metric.name!r} on {metric.dataset!r} is listed twice; keep one"
                )
            seen.add(key)
        return self


# --------------------------------------------------------------------------------------------
# Preprocessing steps (closed list, discriminated on ``op``)


class Window(_Strict):
    """Intensity window: clip to ``center ± width/2`` and scale to [0, 1]."""

    op: Literal["window"] = "window"
    center: float
    width: PositiveFloat


class Clip(_Strict):
    """Clip values to [min, max] without rescaling."""

    op: Literal["clip"] = "clip"
    min: float
    max: float

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.min >= self.max:
            raise ValueError(f"expected min < max; got min={self.min}, max={self.max}")
        return self


class ZScore(_Strict):
    """Subtract the mean and divide by the standard deviation.

    With ``mean``/``std`` unset they are computed per image, over voxels above ``mask_above``
    when that is set (e.g. to ignore the background of an MR scan).
    """

    op: Literal["zscore"] = "zscore"
    mean: float | None = None
    std: PositiveFloat | None = None
    mask_above: float | None = None

    @model_validator(mode="after")
    def _both_or_neither(self) -> Self:
        if (self.mean is None) != (self.std is None):
            raise ValueError("give both mean and std, or neither to compute them per image")
        return self


class MinMax(_Strict):
    """Scale each image to [0, 1] by its own minimum and maximum."""

    op: Literal["minmax"] = "minmax"


class ScaleOffset(_Strict):
    """Linear map ``x * scale + offset``."""

    op: Literal["scale_offset"] = "scale_offset"
    scale: float
    offset: float = 0.0


class ResampleSpacing(_Strict):
    """Resample to ``spacing_mm`` = (x, y) or (x, y, z) in mm with spline ``order`` 0-3."""

    op: Literal["resample_spacing"] = "resample_spacing"
    spacing_mm: list[PositiveFloat] = Field(min_length=2, max_length=3)
    order: int = Field(1, ge=0, le=3)


class ResizePad(_Strict):
    """Bring each image or slice to ``rows`` × ``cols`` by resizing or by centre pad/crop."""

    op: Literal["resize_pad"] = "resize_pad"
    rows: int = Field(gt=0)
    cols: int = Field(gt=0)
    mode: Literal["resize", "pad"] = "resize"


class ChannelRepeat(_Strict):
    """Repeat the single channel ``n`` times (for models trained on RGB)."""

    op: Literal["channel_repeat"] = "channel_repeat"
    n: int = Field(ge=1)


PreStep = Annotated[
    Union[Window, Clip, ZScore, MinMax, ScaleOffset, ResampleSpacing, ResizePad, ChannelRepeat],  # noqa: UP007
    Field(discriminator="op"),
]
"""One preprocessing step; the ``op`` field says which."""

PREPROCESSING_OPS: tuple[str, ...] = (
    "window",
    "clip",
    "zscore",
    "minmax",
    "scale_offset",
    "resample_spacing",
    "resize_pad",
    "channel_repeat",
)


# --------------------------------------------------------------------------------------------
# Postprocessing steps (closed list, discriminated on ``op``)


class Argmax(_Strict):
    """Label map from the channel with the highest score."""

    op: Literal["argmax"] = "argmax"


class Threshold(_Strict):
    """Foreground where the (single-channel) score is at least ``value``."""

    op: Literal["threshold"] = "threshold"
    value: float


class KeepLargest(_Strict):
    """Keep the ``n`` largest connected components of each label (or only of ``labels``)."""

    op: Literal["keep_largest"] = "keep_largest"
    n: int = Field(1, ge=1)
    labels: list[int] | None = None


class FillHoles(_Strict):
    """Fill enclosed holes in each label (or only in ``labels``)."""

    op: Literal["fill_holes"] = "fill_holes"
    labels: list[int] | None = None


class RemoveSmall(_Strict):
    """Drop connected components smaller than ``min_ml`` millilitres."""

    op: Literal["remove_small"] = "remove_small"
    min_ml: PositiveFloat


PostStep = Annotated[
    Union[Argmax, Threshold, KeepLargest, FillHoles, RemoveSmall],  # noqa: UP007
    Field(discriminator="op"),
]
"""One postprocessing step; the ``op`` field says which."""

POSTPROCESSING_OPS: tuple[str, ...] = (
    "argmax",
    "threshold",
    "keep_largest",
    "fill_holes",
    "remove_small",
)


# --------------------------------------------------------------------------------------------
# Input and output specs


def _check_shape(value: Any) -> Any:
    if not isinstance(value, list | tuple) or not value:
        raise ValueError('expected a list of axis sizes, e.g. ["N", 1, 256, 256]')
    for i, dim in enumerate(value):
        ok = dim is None or (isinstance(dim, str) and dim != "")
        ok = ok or (isinstance(dim, int) and not isinstance(dim, bool) and dim > 0)
        if not ok:
            raise ValueError(
                f"axis {i}: expected a positive integer, or a name or null for a dynamic axis; "
                f"got {dim!r}"
            )
    return list(value)


def _check_spacing_range(value: Any) -> Any:
    ok = (
        isinstance(value, list | tuple)
        and len(value) == 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        and all(0 < v < float("inf") for v in value)
    )
    if not ok:
        raise ValueError(f"expected two positive numbers [min, max]; got {value!r}")
    if value[0] > value[1]:
        raise ValueError(f"expected [min, max] with min <= max; got {list(value)!r}")
    return tuple(float(v) for v in value)


Shape = Annotated[list[int | str | None], BeforeValidator(_check_shape)]
SpacingRange = Annotated[tuple[float, float], BeforeValidator(_check_spacing_range)]


class InputSpec(_Strict):
    """What the model takes: the scans it accepts and how to turn one into its input tensor."""

    modalities: list[Modality] = Field(min_length=1)
    dimensionality: Dimensionality
    name: Text
    shape: Shape
    dtype: DType = "float32"
    units: Units
    preprocessing: list[PreStep] = Field(default_factory=list)
    spacing_range_mm: SpacingRange | None = None

    @field_validator("shape")
    @classmethod
    def _rank(cls, shape: list[int | str | None], info: ValidationInfo) -> list[int | str | None]:
        dimensionality = info.data.get("dimensionality")
        if dimensionality is None:
            return shape
        rank = 5 if dimensionality == "volume3d" else 4
        if len(shape) != rank:
            axes = (
                "(batch, channels, slices, rows, columns)"
                if rank == 5
                else "(batch, channels, rows, columns)"
            )
            raise ValueError(f"a {dimensionality} model takes {rank} axes {axes}; got {len(shape)}")
        return shape


class Label(_Strict):
    """One output class or segmentation label, with the colour the viewer draws it in."""

    index: int = Field(ge=0)
    name: Text
    colour: Colour


class OutputSpec(_Strict):
    """What the model returns and how to turn it into labels or a mask."""

    names: list[Text] = Field(min_length=1)
    activation: Activation = "none"
    labels: list[Label] = Field(min_length=1)
    threshold: float | None = Field(None, gt=0, lt=1)
    postprocessing: list[PostStep] = Field(default_factory=list)

    @field_validator("labels")
    @classmethod
    def _sorted_unique(cls, labels: list[Label]) -> list[Label]:
        indices = [label.index for label in labels]
        names = [label.name for label in labels]
        if len(set(indices)) != len(indices):
            raise ValueError("label indices must be unique")
        if len(set(names)) != len(names):
            raise ValueError("label names must be unique")
        return sorted(labels, key=lambda label: label.index)

    @field_validator("names")
    @classmethod
    def _unique_names(cls, names: list[str]) -> list[str]:
        if len(set(names)) != len(names):
            raise ValueError("output names must be unique")
        return names


def _check_files(value: Any) -> Any:
    if not isinstance(value, dict):
        raise ValueError("expected an object mapping file name to SHA-256 hex")
    for key, digest in value.items():
        parts = PurePosixPath(key).parts if isinstance(key, str) else ()
        bad_name = (
            not parts
            or key.startswith("/")
            or "\\" in key
            or any(p in ("..", ".") for p in parts)
            or key == MANIFEST_FILE
        )
        if bad_name:
            raise ValueError(
                f"{key!r}: expected a relative path inside the version folder (not "
                "manifest.json, no '..', forward slashes)"
            )
        if not isinstance(digest, str) or not _SHA256_RE.fullmatch(digest):
            raise ValueError(f"{key!r}: expected 64 lowercase hex digits (SHA-256)")
    return dict(sorted(value.items()))


Files = Annotated[dict[str, str], BeforeValidator(_check_files)]


# --------------------------------------------------------------------------------------------
# The manifest


class Manifest(_Strict):
    """The contract of one model version: identity, card, input/output spec and file hashes."""

    schema_version: Literal[1] = 1
    name: ModelName
    version: Version
    title: Text
    summary: Text
    task: Task
    authors: list[Text] = Field(min_length=1)
    licence: Text
    derived_from: Version | None = None
    created: date
    changelog: Text
    card: Card
    input: InputSpec
    output: OutputSpec
    files: Files = Field(default_factory=dict)

    @field_validator("derived_from")
    @classmethod
    def _not_own_parent(cls, parent: str | None, info: ValidationInfo) -> str | None:
        if parent is not None and parent == info.data.get("version"):
            raise ValueError("a version cannot be derived from itself")
        return parent

    @property
    def ref(self) -> str:
        """``name@version``."""
        return f"{self.name}@{self.version}"

    @property
    def semver(self) -> SemVer:
        """The parsed version."""
        return SemVer.parse(self.version)

    # -- reading -------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Any, *, source: str = MANIFEST_FILE) -> Manifest:
        """Validate plain data (e.g. parsed JSON); ManifestError names each bad field."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ManifestError(_describe(exc, source)) from None

    @classmethod
    def from_json(cls, text: str | bytes, *, source: str = MANIFEST_FILE) -> Manifest:
        """Parse and validate manifest JSON text."""
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ManifestError(
                f"{source}: not valid JSON ({exc}); fix the syntax or publish again"
            ) from None
        if not isinstance(data, dict):
            raise ManifestError(f"{source}: expected a JSON object at the top level")
        return cls.from_dict(data, source=source)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Manifest:
        """Read ``manifest.json`` (or the one inside a version folder)."""
        path = Path(path)
        if path.is_dir():
            path = path / MANIFEST_FILE
        source = "/".join(path.parts[-3:])
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise ManifestError(
                f"{source}: not found; every version folder needs a manifest.json "
                "(publish writes it)"
            ) from None
        except OSError as exc:
            raise ManifestError(f"{source}: cannot be read ({exc.strerror})") from None
        return cls.from_json(raw, source=source)

    # -- writing -------------------------------------------------------------------------

    def to_data(self) -> dict[str, Any]:
        """Plain JSON-ready data (unset optional fields left out)."""
        return self.model_dump(mode="json", exclude_none=True)

    def to_json(self) -> str:
        """Pretty, stable JSON: fields in declaration order, files sorted, two-space indent."""
        return json.dumps(self.to_data(), indent=2, ensure_ascii=False) + "\n"

    def canonical_json(self) -> bytes:
        """Compact JSON with sorted keys; the input of :meth:`sha256`."""
        text = json.dumps(self.to_data(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return text.encode("utf-8")

    def sha256(self) -> str:
        """SHA-256 of the canonical JSON: equal for equal manifests, whatever the formatting."""
        return hashlib.sha256(self.canonical_json()).hexdigest()

    def dump(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`to_json` to ``path`` atomically (temp file + rename)."""
        atomic_write_text(Path(path), self.to_json())

    def with_files(self, files: dict[str, str]) -> Manifest:
        """A copy with ``files`` replaced (validated)."""
        return Manifest.from_dict({**self.to_data(), "files": files})


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temp file in the same folder and ``os.replace``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; the store is read by the app's user too
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------------------------
# Readable validation errors

_STEP_LISTS = {"preprocessing", "postprocessing"}


def _loc_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for i, part in enumerate(loc):
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        # pydantic puts the union tag after a step's index: preprocessing.0.window.width
        if i >= 2 and isinstance(loc[i - 1], int) and loc[i - 2] in _STEP_LISTS:
            continue
        out += f".{part}" if out else str(part)
    return out


def _unwrap(tp: Any) -> Any:
    while True:
        origin = typing.get_origin(tp)
        if origin is Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (list, dict, tuple):
            tp = typing.get_args(tp)[-1]
        elif origin in (Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tuple(args)
            tp = args[0]
        else:
            return tp


def _allowed_fields(loc: tuple[int | str, ...]) -> list[str]:
    """Field names allowed at the model that holds ``loc[-1]`` (best effort)."""
    tp: Any = Manifest
    for part in loc[:-1]:
        tp = _unwrap(tp)
        if isinstance(part, int):
            continue
        if isinstance(tp, tuple):  # a union of step models: the loc names the tag
            tp = next(
                (
                    m
                    for m in tp
                    if getattr(m, "model_fields", {}).get("op")
                    and m.model_fields["op"].default == part
                ),
                None,
            )
            if tp is None:
                return []
            continue
        if isinstance(tp, type) and issubclass(tp, BaseModel) and part in tp.model_fields:
            tp = tp.model_fields[part].annotation
        else:
            return []
    tp = _unwrap(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return list(tp.model_fields)
    return []


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _message(err: Any) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind == "extra_forbidden":
        allowed = _allowed_fields(tuple(err["loc"]))
        hint = f" (allowed: {', '.join(allowed)})" if allowed else ""
        return f"unknown field; remove it or check its spelling{hint}"
    if kind == "missing":
        return "required field is missing"
    if kind == "union_tag_invalid":
        expected = str(ctx.get("expected_tags", "")).replace("'", "")
        return f"unknown step {ctx.get('tag')!r}; expected one of: {expected}"
    if kind == "union_tag_not_found":
        ops = POSTPROCESSING_OPS if "postprocessing" in err["loc"] else PREPROCESSING_OPS
        return f"each step needs an 'op', one of: {', '.join(ops)}"
    if kind == "value_error":
        return str(ctx.get("error", err["msg"]))
    if kind == "literal_error":
        return f"expected {ctx.get('expected')}; got {_short(err.get('input'))}"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "too_short":
        return f"expected at least {ctx.get('min_length')} item(s)"
    if kind == "too_long":
        return f"expected at most {ctx.get('max_length')} item(s)"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"expected an object; got {_short(err.get('input'))}"
    msg = err["msg"]
    return f"{msg[0].lower()}{msg[1:]}; got {_short(err.get('input'))}"


def _describe(exc: ValidationError, source: str) -> str:
    lines = []
    for err in exc.errors():
        where = _loc_path(tuple(err["loc"]))
        what = _message(err)
        lines.append(f"{where}: {what}" if where else what)
    if len(lines) == 1:
        return f"{source}: {lines[0]}"
    return f"{source}: {len(lines)} problems:\n" + "\n".join(f"  {line}" for line in lines)

"""Manifest validation (readable errors), SemVer ordering, JSON round trip and the card."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from medmodels.errors import ManifestError
from medmodels.store import Manifest, SemVer, Window, is_version, render_card, sort_versions

from .helpers import make_manifest, manifest_data


def error_of(data: dict[str, Any]) -> str:
    with pytest.raises(ManifestError) as info:
        Manifest.from_dict(data)
    return str(info.value)


def test_valid_manifest_parses_into_typed_steps() -> None:
    m = make_manifest()
    assert m.ref == "lung-mask@1.0.0"
    assert isinstance(m.input.preprocessing[0], Window)
    assert m.input.spacing_range_mm == (0.4, 1.5)
    assert m.output.labels[1].colour == "#ff0000"


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"name": "Lung Mask"}, "manifest.json: name: expected 2-64 lowercase letters"),
        ({"name": "x"}, "name: expected 2-64"),
        ({"version": "1.0"}, "version: expected a SemVer 2.0 version"),
        ({"version": "01.0.0"}, "version: expected a SemVer 2.0 version"),
        ({"derived_from": "latest"}, "derived_from: expected a SemVer 2.0 version"),
        ({"task": "detection"}, "task: expected 'classification' or 'segmentation'"),
        ({"input": {"spacing_range_mm": [1.0]}}, "input.spacing_range_mm: expected two positive"),
        ({"input": {"spacing_range_mm": [0, 1]}}, "input.spacing_range_mm: expected two positive"),
        ({"input": {"shape": [1, 1, 64]}}, "input.shape: a slice2d model takes 4 axes"),
        ({"input": {"shape": [1, 1, 0, 4]}}, "input.shape: axis 2: expected a positive integer"),
        ({"input": {"units": "kelvin"}}, "input.units: expected 'HU'"),
        ({"output": {"threshold": 1.5}}, "output.threshold:"),
        ({"card": {"limitations": []}}, "card.limitations: expected at least 1 item"),
        ({"files": {"../model.onnx": "0" * 64}}, "files: '../model.onnx': expected a relative"),
        ({"files": {"model.onnx": "xyz"}}, "expected 64 lowercase hex digits"),
    ],
)
def test_bad_field_names_the_field_and_what_is_expected(
    changes: dict[str, Any], expected: str
) -> None:
    assert expected in error_of(manifest_data(**changes))


def test_bad_colour() -> None:
    data = manifest_data()
    data["output"]["labels"][1]["colour"] = "red"
    assert error_of(data) == (
        "manifest.json: output.labels[1].colour: expected a colour as '#rrggbb' "
        "(e.g. '#ff0000'); got 'red'"
    )


def test_unknown_field_is_refused_and_allowed_fields_listed() -> None:
    message = error_of(manifest_data(card={"intended_usage": "typo"}))
    assert "card.intended_usage: unknown field" in message
    assert "allowed: intended_use, limitations" in message
    assert "notes: unknown field" in error_of(manifest_data(notes="x"))


def test_unknown_preprocessing_op_lists_the_closed_list() -> None:
    data = manifest_data()
    data["input"]["preprocessing"].append({"op": "blur", "sigma": 2})
    message = error_of(data)
    assert "input.preprocessing[1]: unknown step 'blur'" in message
    assert "window, clip, zscore, minmax, scale_offset, resample_spacing" in message


def test_step_parameters_are_checked() -> None:
    data = manifest_data()
    data["input"]["preprocessing"] = [
        {"op": "window", "center": 40, "width": 400, "level": 3},
        {"op": "clip", "min": 5, "max": 1},
        {"op": "zscore", "mean": 0.0},
    ]
    data["output"]["postprocessing"] = [{"value": 0.5}]
    message = error_of(data)
    assert message.startswith("manifest.json: 4 problems:")
    assert "input.preprocessing[0].level: unknown field" in message
    assert "input.preprocessing[1]: expected min < max" in message
    assert "input.preprocessing[2]: give both mean and std" in message
    assert "output.postprocessing[0]: each step needs an 'op', one of: argmax" in message


def test_duplicate_labels_and_self_derivation_are_refused() -> None:
    data = manifest_data()
    data["output"]["labels"][1]["index"] = 0
    assert "output.labels: label indices must be unique" in error_of(data)
    assert "derived_from: a version cannot be derived from itself" in error_of(
        manifest_data(derived_from="1.0.0")
    )


def test_load_reports_bad_json_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="not found"):
        Manifest.load(tmp_path / "manifest.json")
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ManifestError, match="not valid JSON"):
        Manifest.load(tmp_path)


def test_dump_load_round_trip_is_stable(tmp_path: Path) -> None:
    m = make_manifest(files={"model.onnx": "b" * 64, "README.md": "a" * 64})
    m.dump(tmp_path / "manifest.json")
    text = (tmp_path / "manifest.json").read_text()
    assert list(json.loads(text)["files"]) == ["README.md", "model.onnx"]  # sorted
    again = Manifest.load(tmp_path / "manifest.json")
    assert again == m
    assert again.to_json() == text
    assert again.sha256() == m.sha256()
    assert make_manifest(title="Other").sha256() != m.sha256()


def test_semver_parse_and_order_with_prerelease_and_build() -> None:
    v = SemVer.parse("1.2.3-rc.1+int8.2")
    assert (v.major, v.minor, v.patch, v.prerelease, v.build) == (
        1,
        2,
        3,
        ("rc", "1"),
        ("int8", "2"),
    )
    assert str(v) == "1.2.3-rc.1+int8.2"
    assert not is_version("1.2") and not is_version("v1.2.3") and is_version("1.0.0+fp16")
    ordered = [
        "0.9.0",
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
        "1.0.0+fp16",
        "1.0.0+int8",
        "1.0.1",
        "1.10.0",
    ]
    assert sort_versions(reversed(ordered), newest_first=False) == ordered
    assert sort_versions(ordered) == list(reversed(ordered))
    # Build metadata does not change precedence, only breaks the tie.
    assert SemVer.parse("1.0.0+int8").precedence() == SemVer.parse("1.0.0").precedence()
    assert SemVer.parse("1.0.0") < SemVer.parse("1.0.0+int8") < SemVer.parse("1.0.1-rc.1")


def test_render_card_has_every_section() -> None:
    text = render_card(make_manifest(files={"model.onnx": "c" * 64}))
    for part in (
        "# Lung mask",
        "Research use only — not for diagnosis",
        "## Intended use",
        "- Not tested on children.",
        "## Training data",
        "| Dice | 0.9 | phantoms-test |  |",
        "| HD95 | 4 | phantoms-test | mm |",
        "## Warnings",
        "`image` float32 [N, 1, dynamic, dynamic]",
        "`window` (center=-600.0, width=1500.0)",
        "`argmax` → `keep_largest` (n=2)",
        "| 1 | lung | `#ff0000` |",
        "## Changelog",
        "First version.",
        "Licence: Apache-2.0",
        "Authors: Test Author",
        "`" + "c" * 64 + "`",
    ):
        assert part in text, part

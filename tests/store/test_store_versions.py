"""Looking versions up, verifying their bytes, moving aliases, and diffing versions."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from medmodels.errors import AliasError, IntegrityError, ManifestError, ModelNotFoundError
from medmodels.store import ModelStore, diff, is_alias_name


def writable_copy(store: ModelStore, dest: Path) -> ModelStore:
    """A copy of ``store`` whose files may be changed (published files are read-only)."""
    shutil.copytree(store.root, dest)
    for path in dest.rglob("*"):
        if path.is_file():
            path.chmod(0o644)
    return ModelStore(dest)


# -- lookup ------------------------------------------------------------------------------------


def test_listing_and_resolution_order(published: ModelStore) -> None:
    assert published.models() == ["lung-mask"]
    assert published.versions("lung-mask") == ["1.1.0", "1.0.0"]
    # bare name: newest version while there is no production alias...
    assert published.get("lung-mask").version == "1.1.0"
    published.set_alias("lung-mask", "production", "1.0.0")
    # ...then the production alias
    assert published.get("lung-mask").version == "1.0.0"
    assert published.get("lung-mask@production").version == "1.0.0"
    assert published.get("lung-mask@1.1.0").version == "1.1.0"
    published.set_alias("lung-mask", "staging", "1.1.0")
    assert published.get("lung-mask@staging").version == "1.1.0"
    assert published.resolve("lung-mask@staging") == ("lung-mask", "1.1.0")


def test_lookup_errors_list_the_choices(published: ModelStore) -> None:
    published.set_alias("lung-mask", "production", "1.1.0")
    with pytest.raises(ModelNotFoundError) as info:
        published.get("lung-mask@9.0.0")
    assert str(info.value) == "lung-mask@9.0.0; available: 1.0.0, 1.1.0; aliases: production"
    with pytest.raises(ModelNotFoundError, match=r"lung-mask@canary; available: 1\.0\.0, 1\.1\.0"):
        published.get("lung-mask@canary")
    with pytest.raises(ModelNotFoundError, match="brain-seg: no such model; available: lung-mask"):
        published.get("brain-seg")
    with pytest.raises(ModelNotFoundError, match="no such model; available: lung-mask"):
        published.get("../etc@1.0.0")
    with pytest.raises(ModelNotFoundError, match=r"store at .* is empty"):
        ModelStore(published.root / "nothing").get("lung-mask")


def test_get_reports_a_bad_manifest(published: ModelStore, tmp_path: Path) -> None:
    copy = writable_copy(published, tmp_path / "copy")
    path = copy.root / "lung-mask" / "1.0.0" / "manifest.json"
    data = json.loads(path.read_text())
    data["output"]["activation"] = "relu"
    path.write_text(json.dumps(data))
    with pytest.raises(
        ManifestError, match=r"lung-mask/1\.0\.0/manifest\.json: output\.activation"
    ):
        copy.get("lung-mask@1.0.0")


# -- integrity ---------------------------------------------------------------------------------


def test_one_flipped_byte_refuses_the_version(published: ModelStore, tmp_path: Path) -> None:
    copy = writable_copy(published, tmp_path / "copy")
    model = copy.root / "lung-mask" / "1.0.0" / "model.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0x01
    model.write_bytes(bytes(data))
    with pytest.raises(IntegrityError) as info:
        copy.get("lung-mask@1.0.0")
    message = str(info.value)
    assert "model.onnx has changed" in message
    assert "Restore the folder from a backup" in message and "publish the model again" in message
    report = copy.verify("lung-mask@1.0.0")
    assert not report.ok
    assert {f.name: f.status for f in report.files} == {
        "README.md": "ok",
        "manifest.json": "ok",
        "model.onnx": "changed",
    }
    assert copy.get("lung-mask@1.1.0").version == "1.1.0"  # other versions unaffected
    assert published.verify("lung-mask@1.0.0").ok  # the original is intact


def test_change_after_a_cached_get_is_still_caught(published: ModelStore, tmp_path: Path) -> None:
    copy = writable_copy(published, tmp_path / "copy")
    copy.get("lung-mask@1.0.0")
    readme = copy.root / "lung-mask" / "1.0.0" / "README.md"
    readme.write_text(readme.read_text() + "edited\n")
    with pytest.raises(IntegrityError, match=r"README\.md has changed"):
        copy.get("lung-mask@1.0.0")


def test_unlisted_missing_and_symlinked_files_are_refused(
    published: ModelStore, tmp_path: Path
) -> None:
    copy = writable_copy(published, tmp_path / "copy")
    folder = copy.root / "lung-mask" / "1.0.0"
    (folder / "extra.bin").write_bytes(b"weights?")
    with pytest.raises(IntegrityError, match=r"extra\.bin is not listed in manifest\.json"):
        copy.get("lung-mask@1.0.0")
    (folder / "extra.bin").unlink()
    (folder / "README.md").unlink()
    (folder / "README.md").symlink_to(tmp_path / "elsewhere.md")
    with pytest.raises(IntegrityError, match=r"README\.md is a symlink or special file"):
        copy.get("lung-mask@1.0.0")
    (folder / "README.md").unlink()
    with pytest.raises(IntegrityError, match=r"README\.md is missing"):
        copy.get("lung-mask@1.0.0")


def test_repeated_gets_use_the_hash_cache(published: ModelStore) -> None:
    fresh = ModelStore(published.root)
    first = fresh.get("lung-mask@1.0.0")
    cached = dict(fresh._hashes)
    assert len(cached) == 2  # model.onnx and README.md
    again = fresh.get("lung-mask@1.0.0")
    assert again.model_sha256 == first.model_sha256 and fresh._hashes == cached


# -- aliases -----------------------------------------------------------------------------------


def test_alias_set_move_remove_and_history(published: ModelStore) -> None:
    first = published.set_alias("lung-mask", "production", "1.0.0", reason="launch", actor="ana")
    assert first is not None and (first.from_version, first.to_version) == (None, "1.0.0")
    assert published.set_alias("lung-mask", "production", "1.0.0") is None  # not a move
    second = published.set_alias("lung-mask", "production", "1.1.0", reason="better Dice")
    published.set_alias("lung-mask", "staging", "1.1.0")
    assert published.aliases("lung-mask") == {"production": "1.1.0", "staging": "1.1.0"}
    removed = published.remove_alias("lung-mask", "staging", reason="trial over")
    assert removed.to_version is None and published.aliases("lung-mask") == {"production": "1.1.0"}
    assert [
        (e.alias, e.from_version, e.to_version) for e in published.alias_history("lung-mask")
    ] == [
        ("production", None, "1.0.0"),
        ("production", "1.0.0", "1.1.0"),
        ("staging", None, "1.1.0"),
        ("staging", "1.1.0", None),
    ]
    production = published.alias_history("lung-mask", "production")
    assert [e.reason for e in production] == ["launch", "better Dice"]
    assert production[0].actor == "ana" and production[0].time.tzinfo is not None
    # The log is JSON lines with the documented keys; aliases.json is the current mapping.
    log = (published.root / "lung-mask" / "alias_log.jsonl").read_text().splitlines()
    assert set(json.loads(log[0])) == {"time", "alias", "from", "to", "reason", "actor"}
    saved = json.loads((published.root / "lung-mask" / "aliases.json").read_text())
    assert saved == {"production": "1.1.0"}
    assert second is not None and second.time >= first.time


def test_alias_at_answers_which_version_was_live(published: ModelStore) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    first = published.set_alias("lung-mask", "production", "1.0.0")
    second = published.set_alias("lung-mask", "production", "1.1.0")
    assert first is not None and second is not None and second.time > first.time
    between = first.time + (second.time - first.time) / 2
    assert published.alias_at("lung-mask", "production", before) is None
    assert published.alias_at("lung-mask", "production", between) == "1.0.0"
    assert published.alias_at("lung-mask", "production", second.time) == "1.1.0"
    naive = (second.time + timedelta(hours=1)).replace(tzinfo=None)  # naive = UTC
    assert published.alias_at("lung-mask", "production", naive) == "1.1.0"


def test_rollback_moves_back_one_step(published: ModelStore) -> None:
    published.set_alias("lung-mask", "production", "1.0.0")
    with pytest.raises(AliasError, match="no earlier version to go back to"):
        published.rollback("lung-mask", "production", reason="oops")
    published.set_alias("lung-mask", "production", "1.1.0")
    event = published.rollback("lung-mask", "production", reason="Dice dropped", actor="bo")
    assert (event.from_version, event.to_version, event.reason) == (
        "1.1.0",
        "1.0.0",
        "Dice dropped",
    )
    assert published.get("lung-mask").version == "1.0.0"
    assert len(published.alias_history("lung-mask", "production")) == 3
    with pytest.raises(AliasError, match="never been set"):
        published.rollback("lung-mask", "staging", reason="x")


def test_alias_names_and_targets_are_checked(published: ModelStore) -> None:
    assert is_alias_name("production") and is_alias_name("ward-3-trial")
    for bad in ("1.0.0", "v2", "Prod", "-x", "", "a" * 65, "prod/uction"):
        assert not is_alias_name(bad), bad
        with pytest.raises(AliasError, match="cannot name an alias"):
            published.set_alias("lung-mask", bad, "1.0.0")
    with pytest.raises(ModelNotFoundError, match=r"lung-mask@2\.0\.0; available: 1\.0\.0, 1\.1\.0"):
        published.set_alias("lung-mask", "production", "2.0.0")
    with pytest.raises(ModelNotFoundError, match="lung-mask@staging"):
        published.remove_alias("lung-mask", "staging")
    with pytest.raises(ModelNotFoundError, match="no such model"):
        published.set_alias("brain-seg", "production", "1.0.0")


def test_alias_to_a_damaged_version_is_refused(published: ModelStore, tmp_path: Path) -> None:
    copy = writable_copy(published, tmp_path / "copy")
    (copy.root / "lung-mask" / "1.1.0" / "model.onnx").write_bytes(b"tampered")
    with pytest.raises(IntegrityError, match=r"model\.onnx has changed"):
        copy.set_alias("lung-mask", "production", "1.1.0")
    assert copy.aliases("lung-mask") == {}


# -- diff --------------------------------------------------------------------------------------


def test_diff_reports_fields_files_and_metrics(published: ModelStore) -> None:
    old, new = published.get("lung-mask@1.0.0"), published.get("lung-mask@1.1.0")
    result = diff(old, new)
    assert (result.old, result.new) == ("lung-mask@1.0.0", "lung-mask@1.1.0")
    fields = {c.path: (c.old, c.new) for c in result.fields}
    assert fields["version"] == ("1.0.0", "1.1.0")
    assert fields["changelog"] == ("First version.", "Retrained with more phantoms.")
    assert {c.name for c in result.files} == {"model.onnx", "README.md"}
    metrics = {(m.name, m.dataset): m for m in result.metrics}
    dice = metrics[("Dice", "phantoms-test")]
    assert (dice.old, dice.new) == (0.9, 0.93) and dice.delta == pytest.approx(0.03)
    hd95 = metrics[("HD95", "phantoms-test")]
    assert (hd95.old, hd95.new, hd95.delta) == (4.0, None, None)
    assert diff(old, old).empty

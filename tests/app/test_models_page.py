"""The Models page through AppTest: versions, aliases and their timeline, card, diff, alias
moves and rollbacks with a reason, publishing behind the admission checks."""

from __future__ import annotations

import json

from medmodels import ModelStore

from .builders import _seg_graph, seg_manifest
from .conftest import errors, texts


def _open(make_app):
    at = make_app().run()
    at.switch_page("app_pages/models.py").run()
    assert not at.exception, at.exception
    return at


def _table(at, column: str):
    return next(d.value for d in at.dataframe if column in d.value.columns)


def _submit(at, label: str):
    button = next(b for b in at.button if b.proto.label == label)
    return button.click().run()


def test_versions_newest_first_with_aliases_and_the_timeline(make_app) -> None:
    at = _open(make_app)
    assert at.selectbox(key="models_model").options == [
        "Air mask (air-mask)",
        "Dark image classifier (dark-classifier)",
    ]
    versions = _table(at, "Changelog")
    assert list(versions["Version"]) == ["1.1.0", "1.0.0"]
    assert list(versions["Aliases"]) == ["production", ""]
    timeline = _table(at, "Reason")
    assert list(timeline["To"]) == ["1.1.0", "1.0.0"]
    assert list(timeline["From"]) == ["1.0.0", "(created)"]
    assert "better on the phantom" in list(timeline["Reason"])
    text = texts(at)
    assert "`production` → 1.1.0" in text
    assert "## Intended use" in text  # the rendered card of the newest version


def test_diff_shows_metrics_fields_and_hashes(make_app) -> None:
    at = _open(make_app)
    fields = _table(at, "Field")
    assert "changelog" in list(fields["Field"])
    files = _table(at, "File")
    assert "model.onnx" in list(files["File"])


def test_moving_an_alias_needs_a_reason_and_is_recorded(make_app, app_env) -> None:
    at = _open(make_app)
    at.selectbox(key="models_promote_alias").set_value("staging")
    at.selectbox(key="models_promote_version").set_value("1.0.0")
    _submit(at, "Move the alias")
    assert "Give a reason" in "\n".join(errors(at))
    at.text_input(key="models_promote_reason").input("ward trial")
    at.text_input(key="models_promote_actor").input("JD")
    _submit(at, "Move the alias")
    assert not at.exception
    assert any("staging: (new) → 1.0.0" in s.value for s in at.success)
    store = ModelStore(app_env / "store")
    assert store.aliases("air-mask")["staging"] == "1.0.0"
    event = store.alias_history("air-mask", "staging")[-1]
    assert (event.reason, event.actor) == ("ward trial", "JD")
    assert "staging" in list(_table(at, "Reason")["Alias"])


def test_rollback_moves_production_back(make_app, app_env) -> None:
    at = _open(make_app)
    at.text_input(key="models_rollback_reason").input("1.1.0 misses small regions")
    _submit(at, "Roll back")
    assert not at.exception
    assert any("Rolled back production: 1.1.0 → 1.0.0" in s.value for s in at.success)
    assert ModelStore(app_env / "store").aliases("air-mask")["production"] == "1.0.0"
    assert list(_table(at, "Changelog")["Aliases"]) == ["", "production"]


def _upload_model(at, manifest_data: dict, tmp_path) -> None:
    onnx_bytes = _seg_graph(0.7).SerializeToString()
    at.file_uploader(key="publish_onnx").upload("net.onnx", onnx_bytes, "application/octet-stream")
    at.radio(key="publish_how").set_value("Upload manifest.json").run()
    at.file_uploader(key="publish_manifest_file").upload(
        "manifest.json", json.dumps(manifest_data).encode(), "application/json"
    ).run()


def test_publish_a_new_version_from_a_manifest_file(make_app, app_env, tmp_path) -> None:
    at = _open(make_app)
    data = seg_manifest("1.2.0", "Retrained.").to_data()
    _upload_model(at, data, tmp_path)
    assert "Manifest ready: **air-mask@1.2.0**" in texts(at)
    at.button(key="publish_check").click().run()
    checks = _table(at, "Check")
    assert set(checks["Result"]) == {"pass"}
    at.button(key="publish_go").click().run()
    assert not at.exception
    assert any("Published air-mask@1.2.0" in s.value for s in at.success)
    assert ModelStore(app_env / "store").versions("air-mask")[0] == "1.2.0"


def test_a_failed_admission_check_says_what_to_fix(make_app, tmp_path) -> None:
    at = _open(make_app)
    data = seg_manifest("1.3.0", "Wrong input name.").to_data()
    data["input"]["name"] = "pixels"
    _upload_model(at, data, tmp_path)
    at.button(key="publish_go").click().run()
    assert not at.exception
    checks = _table(at, "Check")
    failed = checks[checks["Result"] == "fail"]
    assert list(failed["Check"]) == ["Manifest inputs/outputs match the graph"]
    assert "pixels" in failed.iloc[0]["Details / what to fix"]
    assert "cannot be published" in "\n".join(errors(at))


def test_an_invalid_manifest_names_the_field(make_app, tmp_path) -> None:
    at = _open(make_app)
    data = seg_manifest("1.4.0", "x").to_data()
    data["output"]["labels"][1]["colour"] = "blue"
    _upload_model(at, data, tmp_path)
    message = "\n".join(errors(at))
    assert "colour" in message and "#rrggbb" in message
    assert at.button(key="publish_go").disabled


def test_publish_from_the_form_prefilled_from_an_existing_version(make_app, app_env) -> None:
    at = _open(make_app)
    onnx_bytes = _seg_graph(0.7).SerializeToString()
    at.file_uploader(key="publish_onnx").upload("net.onnx", onnx_bytes, "application/octet-stream")
    at.selectbox(key="publish_template").set_value("air-mask@1.1.0").run()
    assert at.text_input(key="publish_title").value == "Air mask"
    at.text_input(key="publish_version").input("2.0.0")
    at.text_area(key="publish_changelog").input("New weights.")
    _submit(at, "Use these values")
    assert "Manifest ready: **air-mask@2.0.0**" in texts(at)
    at.button(key="publish_go").click().run()
    assert any("Published air-mask@2.0.0" in s.value for s in at.success)
    published = ModelStore(app_env / "store").get("air-mask@2.0.0").manifest
    assert published.changelog == "New weights."
    assert published.card.limitations == ["Made for tests: it marks air, not lungs."]

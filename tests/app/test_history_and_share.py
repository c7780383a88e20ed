"""Logging, feedback, the History page and share links through AppTest, on a real history
database in the test's temporary home folder."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from medmodels import ModelStore, load_scans, load_settings, predict
from medmodels.history import (
    delete_prediction,
    get_prediction,
    open_database,
    recent,
    record_prediction,
)
from medmodels.share import ShareLinks

from .conftest import SAMPLES, errors, texts


def _db():
    return open_database(load_settings())


def _submit(at, label: str):
    button = next(b for b in at.button if b.proto.label == label)
    return button.click().run()


@pytest.fixture
def logged(app_env) -> str:
    """One logged prediction of air-mask 1.1.0 on the phantom (made without the app)."""
    settings = load_settings()
    scan = load_scans([SAMPLES / "ct-chest-phantom.nii.gz"]).scans[0]
    model = ModelStore(settings.store).get("air-mask@production")
    return record_prediction(_db(), predict(scan, model), scan, alias="production", source="api")


def test_a_run_is_logged_with_artifacts_and_takes_feedback(make_app) -> None:
    at = make_app(model="air-mask", sample="ct-chest-phantom").run()
    result = at.session_state["try_result"]
    assert result.record_id
    link = at.get("page_link")[0]
    assert "Saved to the history" in link.proto.label
    record = get_prediction(_db(), result.record_id)
    assert record["status"] == "ok" and record["source"] == "app"
    assert record["alias"] == "production" and record["version"] == "1.1.0"
    assert set(record["artifacts"]) >= {"key_slice.png", "key_slice_overlay.png"}

    _submit(at, "Save feedback")
    assert "Choose agree, disagree or unsure" in "\n".join(errors(at))
    at.radio(key="try_feedback_verdict").set_value("disagree")
    at.selectbox(key="try_feedback_reason").set_value("boundary")
    at.text_area(key="try_feedback_note").input("Edge too wide at the apex.")
    _submit(at, "Save feedback")
    assert not at.exception
    assert any("Feedback saved: Disagree" in s.value for s in at.success)
    record = get_prediction(_db(), result.record_id)
    assert record["verdict"] == "disagree"
    assert record["feedback"][-1]["reason"] == "boundary"
    assert record["feedback"][-1]["note"] == "Edge too wide at the apex."


def test_a_misfit_is_logged_once_as_rejected(make_app) -> None:
    at = make_app(model="air-mask", sample="mr-small").run()
    at.run()
    rows = recent(_db())
    assert [(r["status"], r["reason_code"]) for r in rows] == [("rejected", "scan-mismatch")]
    assert rows[0]["modality"] == "MR"


def test_history_lists_filters_and_opens_a_row_without_rerunning(make_app, logged) -> None:
    at = make_app().run()
    at.switch_page("app_pages/history.py").run()
    assert not at.exception, at.exception
    assert any("Research use only" in w.value for w in at.warning)
    table = next(d.value for d in at.dataframe if "Result" in d.value.columns)
    assert list(table["Id"]) == [logged[:8]]
    assert "air" in table["Result"][0] and "mL" in table["Result"][0]
    at.selectbox(key="history_status").set_value("rejected").run()
    assert "0 prediction(s) match" in texts(at)
    at.selectbox(key="history_status").set_value("(all)").run()

    # Clicking a row opens it: images, numbers and feedback, nothing re-run.
    at.session_state["history_table"] = {"selection": {"rows": [0], "columns": [], "cells": []}}
    at.run()
    assert not at.exception
    assert f"Prediction {logged[:8]}" in texts(at)
    assert len(at.image) == 2  # the key slice with and without the overlay
    assert at.query_params["prediction"] == logged
    at.radio(key="history_feedback_verdict").set_value("agree")
    _submit(at, "Save feedback")
    assert get_prediction(_db(), logged)["verdict"] == "agree"
    at.button(key="history_close").click().run()
    assert f"Prediction {logged[:8]}" not in texts(at)


def test_history_statistics_and_drift(make_app, logged) -> None:
    at = make_app().run()
    at.switch_page("app_pages/history.py").run()
    at.selectbox(key="history_model").set_value("air-mask").run()
    stats = next(d.value for d in at.dataframe if "p95 total ms" in d.value.columns)
    assert list(stats["Version"]) == ["1.1.0"]
    assert stats["Predictions"][0] == 1
    assert "Population stability index" in texts(at)
    assert len(at.get("arrow_vega_lite_chart")) >= 1 or len(at.get("vega_lite_chart")) >= 1


def test_share_link_opens_read_only_and_can_be_revoked(make_app, logged) -> None:
    at = make_app(prediction=logged).run()
    at.switch_page("app_pages/history.py").run()
    at.button(key="history_share_create").click().run()
    assert not at.exception
    (code,) = [c.value for c in at.code]
    assert "?share=" in code
    token = code.split("?share=", 1)[1]

    shared = make_app(share=token).run()
    assert not shared.exception
    text = texts(shared)
    assert "Shared result" in text and "Research use only" in text
    assert len(shared.image) == 2
    assert "air" in "\n".join(str(d.value) for d in shared.dataframe)
    assert not shared.file_uploader  # no upload on a shared view
    assert not [b for b in shared.button if "feedback" in b.proto.label.lower()]

    at.switch_page("app_pages/history.py").run()
    shares = next(d.value for d in at.dataframe if "Link id" in d.value.columns)
    assert list(shares["Status"]) == ["active"]
    at.button(key="history_revoke").click().run()
    assert any("revoked" in s.value for s in at.success)
    again = make_app(share=token).run()
    assert "revoked" in "\n".join(errors(again))
    assert len(again.image) == 0 and len(again.dataframe) == 0


@pytest.mark.parametrize("case", ["expired", "tampered", "unknown", "deleted"])
def test_a_bad_share_link_shows_a_clear_message_and_nothing_else(
    make_app, logged, case: str
) -> None:
    settings = load_settings()
    links = ShareLinks.for_settings(_db(), settings)
    if case == "expired":
        _, token = links.create(logged, days=1, now=datetime.now(UTC) - timedelta(days=2))
    elif case == "tampered":
        _, token = links.create(logged)
        token = token[:1] + ("B" if token[1] != "B" else "C") + token[2:]
    elif case == "deleted":
        _, token = links.create(logged)
        delete_prediction(_db(), logged)
    else:
        token = links.token("a-link-that-was-never-made")
    at = make_app(share=token).run()
    assert not at.exception
    (message,) = errors(at)
    expected = {"expired": "expired", "tampered": "not valid"}.get(case, "does not exist")
    assert expected in message
    assert logged[:8] not in message
    assert len(at.image) == 0 and len(at.dataframe) == 0 and not at.file_uploader
    assert not at.get("page_link")


def test_with_logging_off_nothing_is_recorded_and_the_result_still_shows(
    make_app, monkeypatch
) -> None:
    monkeypatch.setenv("MEDMODELS_LOG_PREDICTIONS", "false")
    at = make_app(model="air-mask", sample="ct-chest-phantom").run()
    assert not at.exception
    assert at.session_state["try_result"].record_id is None
    assert "Prediction logging is off" in texts(at)
    assert not [b for b in at.button if b.proto.label == "Save feedback"]
    assert recent(_db()) == []


def test_an_empty_history_says_how_to_fill_it(make_app) -> None:
    at = make_app().run()
    at.switch_page("app_pages/history.py").run()
    assert not at.exception
    assert any("No predictions yet" in i.value for i in at.info)

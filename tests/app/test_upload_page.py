"""The upload page, driven through Streamlit's AppTest with real uploads."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "streamlit_app.py")


def _all_text(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption]
    parts += [e.value for e in at.error] + [i.value for i in at.info]
    parts += [w.value for w in at.warning]
    return "\n".join(str(p) for p in parts)


def test_page_shows_research_notice_without_upload() -> None:
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    assert any("Research use only" in w.value for w in at.warning)


def test_uploading_the_phantom_zip_shows_the_volume_and_removed_names() -> None:
    at = AppTest.from_file(APP, default_timeout=60).run()
    data = (ROOT / "sample_data" / "ct-chest-phantom.zip").read_bytes()
    at.file_uploader(key="uploads").upload("phantom.zip", data, "application/zip").run()
    assert not at.exception
    text = _all_text(at)
    assert "CT volume, 64 slices of 256×256, 1.50×1.50×5.00 mm" in text
    assert "PatientName" in text
    assert "PHANTOM^CHEST" not in text
    assert at.slider(key="slice").value == 32
    assert len(at.get("image")) == 1


def test_bad_files_are_listed_one_line_each_and_the_app_keeps_running() -> None:
    at = AppTest.from_file(APP, default_timeout=60).run()
    uploader = at.file_uploader(key="uploads")
    uploader.set_value(
        [
            ("empty.dcm", b"", "application/dicom"),
            ("random.dcm", b"\x00" * 128 + b"DICM" + bytes(range(256)) * 4, "application/dicom"),
            ("notes.txt", b"hello", "text/plain"),
        ]
    ).run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 3
    assert any("empty.dcm" in e and "empty" in e for e in errors)
    assert all("Traceback" not in e for e in errors)

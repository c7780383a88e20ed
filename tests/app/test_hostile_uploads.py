"""Every case of the hostile-input corpus (tests/hostile/make_corpus.py) uploaded through the Try
page: the app never raises, never shows a traceback, lists every refused file on its own line,
and never echoes a header value or renders markup from a file."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

from medmodels.config import env_name

from .conftest import errors, texts, upload

HOSTILE = Path(__file__).resolve().parents[1] / "hostile" / "make_corpus.py"


def _corpus() -> ModuleType:
    if "make_corpus" in sys.modules:
        return sys.modules["make_corpus"]
    spec = importlib.util.spec_from_file_location("make_corpus", HOSTILE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_corpus"] = module
    spec.loader.exec_module(module)
    return module


def _raw_text(at) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption]
    for kind in ("error", "warning", "info", "success"):
        parts += [e.value for e in getattr(at, kind)]
    return "\n".join(str(p) for p in parts)


def test_every_hostile_case_is_handled_in_the_app(
    make_app, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus = _corpus()
    for name, value in corpus.LIMITS.items():
        monkeypatch.setenv(env_name(name), str(value))
    from conftest import PHI_TOKENS  # the shared factories' markers (tests/conftest.py)

    at = make_app().run()
    for case_id in corpus.CASE_IDS:
        case = corpus.make_case(case_id)
        upload(at, "try_files", *case.files)
        assert not at.exception, (case_id, at.exception)
        raw = _raw_text(at)
        shown = texts(at)
        assert "Traceback" not in shown and 'File "' not in shown, case_id
        for token in PHI_TOKENS:
            assert token not in shown, (case_id, token)
        # Markup from a file is never rendered: any '<' reaches Markdown escaped.
        assert not re.search(r"(?<!\\)<(script|img)", raw), case_id
        if case.scans == 0:
            (message,) = errors(at)
            assert any(line.startswith("- **") for line in message.splitlines()), case_id
            assert "Nothing in this upload could be read" in shown, case_id

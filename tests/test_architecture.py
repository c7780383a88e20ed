"""Architecture rules: the library never imports Streamlit; the public API and the settings
documentation stay consistent."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import medmodels
from medmodels.config import Settings, env_name

ROOT = Path(__file__).resolve().parents[1]


def test_library_never_imports_streamlit():
    code = textwrap.dedent(
        """
        import importlib, pkgutil, sys
        import medmodels
        names = [m.name for m in pkgutil.walk_packages(medmodels.__path__, "medmodels.")]
        for name in names:
            importlib.import_module(name)
        bad = sorted(m for m in sys.modules if m == "streamlit" or m.startswith("streamlit."))
        print(len(names))
        assert not bad, bad
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout.split()[-1]) >= 3  # the walk really found submodules


def test_public_api_is_sorted_and_exists():
    names = medmodels.__all__
    assert list(names) == sorted(names)
    assert len(set(names)) == len(names)
    for name in names:
        assert hasattr(medmodels, name), name


def test_every_setting_is_documented_in_the_readme():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [env_name(f) for f in Settings.model_fields if env_name(f) not in readme]
    assert not missing, f"README.md does not document: {', '.join(missing)}"

"""Rewrite the settings table in README.md from medmodels.config (run after adding a setting)."""

from __future__ import annotations

import re
from pathlib import Path

from medmodels.config import settings_table

README = Path(__file__).resolve().parents[1] / "README.md"


def main() -> None:
    text = README.read_text()
    pattern = re.compile(r"\| Variable \| Default \| Meaning \|\n(?:\|.*\|\n)+")
    if not pattern.search(text):
        raise SystemExit("README.md has no settings table to replace")
    README.write_text(pattern.sub(lambda _m: settings_table() + "\n", text, count=1))


if __name__ == "__main__":
    main()

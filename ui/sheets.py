"""Streamlit-side helpers of the "Hardware & cost" page: where sheets are kept, the price list
with the user's override, importing an uploaded sheet, and table formatting."""

from __future__ import annotations

import tempfile
from pathlib import Path

from medmodels import MedModelsError
from medmodels.sheets import PriceList, Sheet, SheetStore, load_prices
from ui import resources


def sheet_store() -> SheetStore:
    """The sheets folder under the configured home (cheap: a path; files are read on use)."""
    return SheetStore.from_settings(resources.settings())


def prices() -> PriceList:
    """The configured price list, read on every rerun so an edited file shows at once."""
    return load_prices(resources.settings().prices)


def with_price(price_list: PriceList, entry_id: str, usd_per_hour: float) -> PriceList:
    """``price_list`` with one entry's hourly price overridden (the calculator's input)."""
    return price_list.model_copy(
        update={
            "hardware": [
                e.with_price(usd_per_hour) if e.id == entry_id else e for e in price_list.hardware
            ]
        }
    )


def import_upload(name: str, data: bytes) -> Sheet:
    """Validate and store an uploaded sheet with the library's import (fingerprint and model
    checks included). Errors name the uploaded file, not the temporary copy."""
    safe = Path(name).name or "sheet.json"
    with tempfile.TemporaryDirectory(prefix="medmodels-sheet-import-") as tmp:
        path = Path(tmp) / safe
        path.write_bytes(data)
        try:
            sheet, _ = sheet_store().import_file(path, store=resources.store())
        except MedModelsError as exc:
            message = str(exc).replace(str(path), safe)
            raise type(exc)(message) from None
    return sheet


def fmt(value: float | int | None, digits: int = 1) -> str:
    """A number for a caption (``n/a`` when unknown)."""
    if value is None:
        return "n/a"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


def size(n_bytes: int) -> str:
    """A file size in B, KB, MB or GB (binary units, as the sheets count them)."""
    value = float(n_bytes)
    for unit in ("B", "KB", "MB"):
        if value < 1024:
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    return f"{value:,.1f} GB"

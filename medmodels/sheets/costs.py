"""What predictions cost: pure arithmetic on a measured throughput and a dated price list.

    $ per 1,000 predictions = hourly price ÷ (predictions per hour × utilisation) × 1,000

``utilisation`` is the share of paid hours spent predicting (1.0 = busy all the time; 0.2 = an
instance that idles 80 % of the time, so every prediction carries five times the cost).

A cost is *derived* when the throughput was measured on that very hardware (your own machine,
or a price entry whose ``host_fingerprints`` lists the measured host), and *estimated* when the
throughput was scaled from another machine, with the method written next to it. GPU instances
are never estimated from a CPU measurement: they are listed as not shown, with the reason.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from medmodels.sheets.errors import SheetError

if TYPE_CHECKING:
    from medmodels.sheets.sheet import Sheet

HOURS_PER_YEAR = 8766.0  # 365.25 days
DAYS_PER_MONTH = 30.4375  # 365.25 / 12
DEFAULT_UTILISATIONS = (1.0, 0.2)


# --------------------------------------------------------------------------------------------
# Pure arithmetic


def _check_utilisation(utilisation: float) -> None:
    if not 0 < utilisation <= 1:
        raise ValueError(f"utilisation must be in (0, 1]; got {utilisation}")


def owned_hourly_cost(
    *, purchase_usd: float, lifetime_years: float, watts: float, usd_per_kwh: float
) -> float:
    """Hourly cost of hardware you own: purchase spread over its lifetime, plus power."""
    if lifetime_years <= 0:
        raise ValueError("lifetime_years must be positive")
    return purchase_usd / (lifetime_years * HOURS_PER_YEAR) + watts / 1000.0 * usd_per_kwh


def predictions_per_hour(per_second: float, utilisation: float = 1.0) -> float:
    """Predictions in one paid hour at ``utilisation``."""
    _check_utilisation(utilisation)
    return per_second * 3600.0 * utilisation


def cost_per_1000(
    usd_per_hour: float, predictions_per_hour_at_full: float, utilisation: float = 1.0
) -> float:
    """$ per 1,000 predictions: hourly price ÷ (predictions per hour × utilisation) × 1,000."""
    _check_utilisation(utilisation)
    if predictions_per_hour_at_full <= 0:
        raise ValueError("predictions per hour must be positive")
    return usd_per_hour / (predictions_per_hour_at_full * utilisation) * 1000.0


def monthly_cost(
    usd_per_hour: float,
    predictions_per_hour_at_full: float,
    daily_volume: float,
    *,
    utilisation: float = 1.0,
    days: float = DAYS_PER_MONTH,
) -> float:
    """Monthly cost of ``daily_volume`` predictions a day, paying for busy hours at
    ``utilisation`` (= daily volume × days × cost per prediction)."""
    per_prediction = cost_per_1000(usd_per_hour, predictions_per_hour_at_full, utilisation) / 1000
    return daily_volume * days * per_prediction


def instances_needed(
    daily_volume: float, predictions_per_hour_at_full: float, *, hours_per_day: float = 24.0
) -> int:
    """Always-on machines needed to serve ``daily_volume`` a day (at least 1)."""
    if predictions_per_hour_at_full <= 0:
        raise ValueError("predictions per hour must be positive")
    return max(1, math.ceil(daily_volume / (predictions_per_hour_at_full * hours_per_day)))


def always_on_monthly_cost(
    usd_per_hour: float, instances: int = 1, *, days: float = DAYS_PER_MONTH
) -> float:
    """Monthly cost of ``instances`` machines running around the clock."""
    return usd_per_hour * 24.0 * days * instances


def scale_by_cores(per_hour: float, from_cores: int, to_cores: int) -> float:
    """Throughput scaled linearly by core count (the estimate's method, not a measurement)."""
    if from_cores <= 0:
        raise ValueError("from_cores must be positive")
    return per_hour * to_cores / from_cores


# --------------------------------------------------------------------------------------------
# The price list


class PriceEntry(BaseModel):
    """One kind of hardware and what an hour of it costs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    kind: Literal["cpu", "gpu", "own"]
    vcpus: int | None = Field(None, gt=0)
    ram_gib: float | None = Field(None, gt=0)
    arch: str | None = None
    gpu: str | None = None
    usd_per_hour: float | None = Field(None, ge=0)
    purchase_usd: float | None = Field(None, ge=0)
    lifetime_years: float | None = Field(None, gt=0)
    watts: float | None = Field(None, ge=0)
    usd_per_kwh: float | None = Field(None, ge=0)
    host_fingerprints: list[str] = Field(default_factory=list)
    as_of: date
    source: str = Field(min_length=1)

    @model_validator(mode="after")
    def _priced(self) -> PriceEntry:
        owned = (self.purchase_usd, self.lifetime_years, self.watts, self.usd_per_kwh)
        if self.usd_per_hour is None and any(v is None for v in owned):
            raise ValueError(
                "give usd_per_hour, or (for own hardware) purchase_usd, lifetime_years, watts "
                "and usd_per_kwh"
            )
        if self.kind == "cpu" and self.vcpus is None:
            raise ValueError("a cpu entry needs vcpus (to scale measurements by core count)")
        return self

    @property
    def hourly(self) -> float:
        """USD per hour (computed for own hardware when no hourly price is given)."""
        if self.usd_per_hour is not None:
            return self.usd_per_hour
        return owned_hourly_cost(
            purchase_usd=self.purchase_usd or 0.0,
            lifetime_years=self.lifetime_years or 1.0,
            watts=self.watts or 0.0,
            usd_per_kwh=self.usd_per_kwh or 0.0,
        )

    def with_price(self, usd_per_hour: float) -> PriceEntry:
        """A copy with another hourly price (the app's price override)."""
        return self.model_copy(update={"usd_per_hour": usd_per_hour})


class PriceList(BaseModel):
    """A dated list of hardware prices (see ``prices.toml`` for the format)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    currency: Literal["USD"] = "USD"
    hardware: list[PriceEntry] = Field(min_length=1)
    path: str = ""

    @model_validator(mode="after")
    def _unique(self) -> PriceList:
        ids = [e.id for e in self.hardware]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"hardware ids must be unique; repeated: {', '.join(dupes)}")
        return self

    def get(self, entry_id: str) -> PriceEntry:
        """The entry with ``entry_id``; KeyError lists the valid ids."""
        for entry in self.hardware:
            if entry.id == entry_id:
                return entry
        raise KeyError(f"{entry_id}; available: {', '.join(e.id for e in self.hardware)}")


def default_prices_path() -> Path:
    """The price list shipped with MedModels."""
    return Path(str(resources.files("medmodels.sheets") / "prices.toml"))


def load_prices(path: str | os.PathLike[str] | None = None) -> PriceList:
    """Read and validate a price list (default: the shipped one); SheetError says what to fix."""
    target = Path(path) if path is not None else default_prices_path()
    try:
        data = tomllib.loads(target.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SheetError(
            f"price list {target} not found; fix MEDMODELS_PRICES or unset it to use the "
            "shipped list"
        ) from None
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SheetError(f"price list {target} cannot be read: {exc}") from None
    try:
        return PriceList.model_validate({**data, "path": str(target)})
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = list(err["loc"])
            if len(loc) >= 2 and loc[0] == "hardware" and isinstance(loc[1], int):
                entries = data.get("hardware") or []
                entry = entries[loc[1]] if loc[1] < len(entries) else {}
                label = f"hardware {entry.get('id', f'#{loc[1] + 1}')!s}"
                loc = [label, *loc[2:]]
            where = ".".join(str(p) for p in loc)
            problems.append(f"{where}: {err['msg']}" if where else err["msg"])
        raise SheetError(f"price list {target}: " + "; ".join(problems)) from None


# --------------------------------------------------------------------------------------------
# Cost rows of a sheet

_ARCH_ALIASES = {"aarch64": "arm64", "amd64": "x86_64", "x64": "x86_64"}


def _arch(name: str) -> str:
    low = name.lower()
    return _ARCH_ALIASES.get(low, low)


@dataclass(frozen=True)
class CostRow:
    """What predictions of one sheet's model cost on one kind of hardware."""

    entry: PriceEntry
    usd_per_hour: float
    shown: bool
    provenance: Literal["derived", "estimated"] | None
    method: str
    predictions_per_hour: float | None = None
    cost_per_1000: dict[float, float] = field(default_factory=dict)
    daily_volume: float | None = None
    monthly_usd: dict[float, float] = field(default_factory=dict)
    instances: int | None = None
    always_on_monthly_usd: float | None = None

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (utilisations as percent strings)."""
        return {
            "hardware": self.entry.id,
            "name": self.entry.name,
            "kind": self.entry.kind,
            "usd_per_hour": round(self.usd_per_hour, 6),
            "price_as_of": self.entry.as_of.isoformat(),
            "price_source": self.entry.source,
            "shown": self.shown,
            "provenance": self.provenance,
            "method": self.method,
            "predictions_per_hour": self.predictions_per_hour,
            "usd_per_1000": {f"{u:.0%}": round(c, 6) for u, c in self.cost_per_1000.items()},
            "daily_volume": self.daily_volume,
            "monthly_usd": {f"{u:.0%}": round(c, 2) for u, c in self.monthly_usd.items()},
            "instances": self.instances,
            "always_on_monthly_usd": (
                None if self.always_on_monthly_usd is None else round(self.always_on_monthly_usd, 2)
            ),
        }


def cost_rows(
    sheet: Sheet,
    prices: PriceList,
    *,
    utilisations: Sequence[float] = DEFAULT_UTILISATIONS,
    daily_volume: float | None = 1000,
) -> list[CostRow]:
    """One row per price entry: derived from the best measured throughput for the measured
    hardware; for other CPU instances estimated from the all-cores-busy rate scaled by core
    count; GPU instances not shown (with the reason)."""
    for u in utilisations:
        _check_utilisation(u)
    host = sheet.host
    best = sheet.bench.best_throughput()
    measured_per_hour = best.per_hour
    # Scaling to other core counts starts from the rate with every core busy (parallel
    # sessions), which includes the contention a full machine has; 1 thread if that is all.
    base = sheet.bench.throughput_for("parallel-sessions") or sheet.bench.throughput_for("1-thread")
    base = base or best
    base_cores = base.sessions * base.intra_op_threads
    rows: list[CostRow] = []
    for entry in prices.hardware:
        hourly = entry.hourly
        per_hour: float | None
        provenance: Literal["derived", "estimated"] | None
        if entry.kind == "own" or host.fingerprint in entry.host_fingerprints:
            per_hour = measured_per_hour
            provenance = "derived"
            method = (
                f"measured on this hardware ({host.cpu_model}, {host.usable_cores} cores): "
                f"{best.per_second:.3f} predictions/s end to end ({best.mode}), × the listed "
                "hourly price"
            )
        elif entry.kind == "gpu":
            rows.append(
                CostRow(
                    entry=entry,
                    usd_per_hour=hourly,
                    shown=False,
                    provenance=None,
                    method=(
                        "not shown: no measurement on this GPU, and a CPU measurement says "
                        "nothing about GPU speed; run 'medmodels sheet' on it and import the sheet"
                    ),
                )
            )
            continue
        else:
            vcpus = entry.vcpus or 1
            per_hour = scale_by_cores(base.per_hour, base_cores, vcpus)
            provenance = "estimated"
            method = (
                f"estimated: scaled from the measured host ({host.cpu_model}: "
                f"{base.per_hour:.0f} predictions/h with {base_cores} core(s) busy, {base.mode}) "
                f"by core count (× {vcpus}/{base_cores}), assuming the same speed per core"
            )
            if entry.arch and _arch(entry.arch) != _arch(host.machine):
                method += f"; rough: {entry.arch} differs from the measured {host.machine}"
        costs = {u: cost_per_1000(hourly, per_hour, u) for u in utilisations}
        monthly: dict[float, float] = {}
        instances = always_on = None
        if daily_volume is not None:
            monthly = {
                u: monthly_cost(hourly, per_hour, daily_volume, utilisation=u) for u in utilisations
            }
            instances = instances_needed(daily_volume, per_hour)
            always_on = always_on_monthly_cost(hourly, instances)
        rows.append(
            CostRow(
                entry=entry,
                usd_per_hour=hourly,
                shown=True,
                provenance=provenance,
                method=method,
                predictions_per_hour=per_hour,
                cost_per_1000=costs,
                daily_volume=daily_volume,
                monthly_usd=monthly,
                instances=instances,
                always_on_monthly_usd=always_on,
            )
        )
    return rows

"""Hardware and cost sheets: what a model version needs, how fast it runs on a named host, what
1,000 predictions cost, and whether it suits a phone, an edge box or a web page. Every figure
says where it came from: ``read`` (from the graph or the OS), ``measured`` (in a child process
on a named host), ``derived`` (arithmetic on measured figures and a listed price) or
``estimated`` (with its method).

Typical use (the app's "Hardware & cost" page)::

    from medmodels.sheets import SheetStore, build_sheet, cost_rows, load_prices

    sheets = SheetStore.from_settings(settings)
    sheet = build_sheet(store, "brain-tissue@1.0.0", settings=settings, progress=bar)
    prices = load_prices(settings.prices)
    rows = [comparison_row(s, prices, sheets=sheets) for s in sheets.sheets("brain-tissue")]
    for s in sheets.sheets("brain-tissue"):        # every version × host, newest first
        s.figures()                                 # each with unit, provenance and source
        sheets.verdicts(s)                          # mobile / edge / web, with reasons
        cost_rows(s, prices, utilisations=(1.0, 0.2), daily_volume=500)
"""

from medmodels.sheets.agreement import Agreement, compare_predictions, measure_agreement
from medmodels.sheets.bench import (
    Bench,
    ColdStart,
    Host,
    Memory,
    StageStats,
    Throughput,
    host_info,
    run_benchmark,
    stage_stats,
)
from medmodels.sheets.costs import (
    CostRow,
    PriceEntry,
    PriceList,
    always_on_monthly_cost,
    cost_per_1000,
    cost_rows,
    default_prices_path,
    instances_needed,
    load_prices,
    monthly_cost,
    owned_hourly_cost,
    predictions_per_hour,
    scale_by_cores,
)
from medmodels.sheets.errors import SheetError, VariantError
from medmodels.sheets.profile import GraphProfile, TensorInfo, count_flops, profile_model
from medmodels.sheets.reference import (
    Reference,
    choose_reference,
    load_reference,
    synthetic_reference,
)
from medmodels.sheets.sheet import Figure, Sheet, SheetStore, build_sheet, comparison_row
from medmodels.sheets.targets import (
    EpCoverage,
    MobileFacts,
    TargetFacts,
    TargetVerdict,
    WebFacts,
    target_facts,
    target_verdicts,
)
from medmodels.sheets.variants import (
    OrtArtifact,
    VariantResult,
    build_ort,
    build_variant,
    load_ort_artifact,
)

__all__ = [
    "Agreement",
    "Bench",
    "ColdStart",
    "CostRow",
    "EpCoverage",
    "Figure",
    "GraphProfile",
    "Host",
    "Memory",
    "MobileFacts",
    "OrtArtifact",
    "PriceEntry",
    "PriceList",
    "Reference",
    "Sheet",
    "SheetError",
    "SheetStore",
    "StageStats",
    "TargetFacts",
    "TargetVerdict",
    "TensorInfo",
    "Throughput",
    "VariantError",
    "VariantResult",
    "WebFacts",
    "always_on_monthly_cost",
    "build_ort",
    "build_sheet",
    "build_variant",
    "choose_reference",
    "compare_predictions",
    "comparison_row",
    "cost_per_1000",
    "cost_rows",
    "count_flops",
    "default_prices_path",
    "host_info",
    "instances_needed",
    "load_ort_artifact",
    "load_prices",
    "load_reference",
    "measure_agreement",
    "monthly_cost",
    "owned_hourly_cost",
    "predictions_per_hour",
    "profile_model",
    "run_benchmark",
    "scale_by_cores",
    "stage_stats",
    "synthetic_reference",
    "target_facts",
    "target_verdicts",
]

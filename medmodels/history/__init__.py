"""The prediction history: every prediction (and every rejected input) as a typed row in one
DuckDB file under the home folder, with feedback, de-identified artifacts, statistics per model
version, version comparisons, drift and exports.

    from medmodels.history import open_database, record_prediction, recent, version_stats

    db = open_database(settings)            # one connection per process, a cursor per call
    pid = record_prediction(db, prediction, scan, alias="production", source="app")
    add_feedback(db, pid, "agree")
    version_stats(db, "lung-mask")
"""

from medmodels.history.db import (
    MIGRATIONS,
    SCHEMA_VERSION,
    Database,
    DatabaseBusyError,
    close_all,
    database_path,
    open_database,
)
from medmodels.history.drift import PSI_DRIFT, PSI_WATCH, DriftReport, DriftRow, drift
from medmodels.history.log import (
    FEEDBACK_REASONS,
    STAGES,
    VERDICTS,
    AliasPeriod,
    Comparison,
    Feedback,
    HistoryFilter,
    InputStats,
    VersionStats,
    add_feedback,
    alias_timeline,
    alias_used,
    compare_versions,
    count,
    delete_prediction,
    export,
    get_prediction,
    input_stats,
    purge_artifacts,
    recent,
    record_prediction,
    record_rejection,
    resolve_id,
    version_stats,
)
from medmodels.history.secrets import home_secret

__all__ = [
    "FEEDBACK_REASONS",
    "MIGRATIONS",
    "PSI_DRIFT",
    "PSI_WATCH",
    "SCHEMA_VERSION",
    "STAGES",
    "VERDICTS",
    "AliasPeriod",
    "Comparison",
    "Database",
    "DatabaseBusyError",
    "DriftReport",
    "DriftRow",
    "Feedback",
    "HistoryFilter",
    "InputStats",
    "VersionStats",
    "add_feedback",
    "alias_timeline",
    "alias_used",
    "close_all",
    "compare_versions",
    "count",
    "database_path",
    "delete_prediction",
    "drift",
    "export",
    "get_prediction",
    "home_secret",
    "input_stats",
    "open_database",
    "purge_artifacts",
    "recent",
    "record_prediction",
    "record_rejection",
    "resolve_id",
    "version_stats",
]

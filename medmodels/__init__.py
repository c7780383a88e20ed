"""MedModels: a versioned store of medical imaging models, scan ingestion, inference, prediction
history and hardware/cost sheets. UI-free: the Streamlit app and the CLI are thin layers on top.

Research use only — not for diagnosis.
"""

from medmodels.config import Settings, load_settings
from medmodels.errors import (
    AdmissionError,
    ConfigError,
    FileProblem,
    HistoryError,
    IntegrityError,
    ManifestError,
    MedModelsError,
    ModelNotFoundError,
    ScanMismatchError,
    UnreadableScanError,
    UploadLimitError,
    VersionExistsError,
)
from medmodels.scans import LoadResult, Scan, load_scans

__all__ = [
    "AdmissionError",
    "ConfigError",
    "FileProblem",
    "HistoryError",
    "IntegrityError",
    "LoadResult",
    "ManifestError",
    "MedModelsError",
    "ModelNotFoundError",
    "Scan",
    "ScanMismatchError",
    "Settings",
    "UnreadableScanError",
    "UploadLimitError",
    "VersionExistsError",
    "load_scans",
    "load_settings",
]

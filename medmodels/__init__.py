"""MedModels: a versioned store of medical imaging models, scan ingestion, inference, prediction
history and hardware/cost sheets. UI-free: the Streamlit app and the CLI are thin layers on top.

Research use only — not for diagnosis.
"""

from medmodels.config import Settings, load_settings
from medmodels.errors import (
    AdmissionError,
    AliasError,
    ConfigError,
    DatabaseBusyError,
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
from medmodels.inference import LabelResult, Prediction, check_fit, fit_problems, predict
from medmodels.scans import LoadResult, Scan, load_scans
from medmodels.store import Manifest, ModelStore, ModelVersion, diff

__all__ = [
    "AdmissionError",
    "AliasError",
    "ConfigError",
    "DatabaseBusyError",
    "FileProblem",
    "HistoryError",
    "IntegrityError",
    "LabelResult",
    "LoadResult",
    "Manifest",
    "ManifestError",
    "MedModelsError",
    "ModelNotFoundError",
    "ModelStore",
    "ModelVersion",
    "Prediction",
    "Scan",
    "ScanMismatchError",
    "Settings",
    "UnreadableScanError",
    "UploadLimitError",
    "VersionExistsError",
    "check_fit",
    "diff",
    "fit_problems",
    "load_scans",
    "load_settings",
    "predict",
]

"""Turn whatever a clinician uploads (DICOM files, series, folders, zips, NIfTI, PNG/JPEG) into
validated, de-identified :class:`Scan` objects. See :func:`load_scans`."""

from medmodels.scans.load import load_scans
from medmodels.scans.types import LoadResult, Scan, ScanKind
from medmodels.scans.worker import DecodePool, load_scans_isolated

__all__ = ["DecodePool", "LoadResult", "Scan", "ScanKind", "load_scans", "load_scans_isolated"]

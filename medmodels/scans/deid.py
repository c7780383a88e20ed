"""De-identification by allow-list: what may leave the loader, and the report of what did not.

The loader never returns a DICOM dataset. It builds a :class:`~medmodels.scans.types.Scan`
from geometry, pixel format and rescale values, plus :func:`technical_summary` — a short
allow-list of technical facts whose values are also checked against a strict character set
(a hostile file can put a name or a script into any text field). :func:`identifying_present`
reports, by keyword only, which identifying attributes the input carried; their values are
never read into anything the loader returns.
"""

from __future__ import annotations

import re
from typing import Any

from pydicom.datadict import keyword_for_tag
from pydicom.dataset import Dataset

# DICOM PS3.15 Annex E, Table E.1-1 (Basic Application Level Confidentiality Profile): the
# attributes most often present in images. Anything not on the allow-list is dropped anyway;
# this list only decides what the de-identification report names.
IDENTIFYING_KEYWORDS: frozenset[str] = frozenset(
    [
        "AccessionNumber",
        "AcquisitionDate",
        "AcquisitionDateTime",
        "AcquisitionTime",
        "AdditionalPatientHistory",
        "AdmissionID",
        "AdmittingDiagnosesDescription",
        "Allergies",
        "BranchOfService",
        "CassetteID",
        "ClinicalTrialProtocolID",
        "ClinicalTrialSiteName",
        "ClinicalTrialSponsorName",
        "ClinicalTrialSubjectID",
        "ContentDate",
        "ContentTime",
        "CountryOfResidence",
        "CurrentPatientLocation",
        "DerivationDescription",
        "DetectorID",
        "DeviceSerialNumber",
        "EthnicGroup",
        "FrameOfReferenceUID",
        "GantryID",
        "ImageComments",
        "InstanceCreationDate",
        "InstanceCreationTime",
        "InstanceCreatorUID",
        "InstitutionAddress",
        "InstitutionName",
        "InstitutionalDepartmentName",
        "IrradiationEventUID",
        "IssuerOfPatientID",
        "MedicalAlerts",
        "MedicalRecordLocator",
        "MilitaryRank",
        "NameOfPhysiciansReadingStudy",
        "Occupation",
        "OperatorsName",
        "OtherPatientIDs",
        "OtherPatientIDsSequence",
        "OtherPatientNames",
        "PatientAddress",
        "PatientAge",
        "PatientBirthDate",
        "PatientBirthName",
        "PatientBirthTime",
        "PatientComments",
        "PatientID",
        "PatientInsurancePlanCodeSequence",
        "PatientMotherBirthName",
        "PatientName",
        "PatientReligiousPreference",
        "PatientSex",
        "PatientSize",
        "PatientState",
        "PatientTelephoneNumbers",
        "PatientWeight",
        "PerformedProcedureStepDescription",
        "PerformedProcedureStepID",
        "PerformedProcedureStepStartDate",
        "PerformedProcedureStepStartTime",
        "PerformingPhysicianName",
        "PhysiciansOfRecord",
        "PlateID",
        "PregnancyStatus",
        "ProtocolName",
        "ReasonForStudy",
        "ReferencedPatientSequence",
        "ReferencedSOPInstanceUID",
        "ReferencedStudySequence",
        "ReferringPhysicianAddress",
        "ReferringPhysicianName",
        "ReferringPhysicianTelephoneNumbers",
        "RegionOfResidence",
        "RequestAttributesSequence",
        "RequestedProcedureDescription",
        "RequestingPhysician",
        "ScheduledProcedureStepDescription",
        "SeriesDate",
        "SeriesDescription",
        "SeriesInstanceUID",
        "SeriesTime",
        "SmokingStatus",
        "SOPInstanceUID",
        "StationName",
        "StorageMediaFileSetUID",
        "StudyDate",
        "StudyDescription",
        "StudyID",
        "StudyInstanceUID",
        "StudyTime",
    ]
)

# Technical text is restricted to this alphabet; anything else (a name with accents, markup,
# control characters, very long text) is replaced by None rather than passed on.
_SAFE_TEXT = re.compile(r"^[A-Za-z0-9 ._+\-/()]{1,64}$")


def safe_text(value: Any) -> str | None:
    """``value`` as a short technical string, or None when it does not look technical."""
    if value is None:
        return None
    text = str(value).strip()
    return text if _SAFE_TEXT.match(text) else None


def safe_number(value: Any) -> float | None:
    """``value`` (a DS/IS/number, or the first of several) as a float, or None."""
    if value is None:
        return None
    try:
        if not isinstance(value, str | bytes | int | float) and hasattr(value, "__len__"):
            value = value[0] if len(value) else None
        number = float(value)
    except (TypeError, ValueError, IndexError):
        return None
    return number if number == number and abs(number) < 1e9 else None


def identifying_present(ds: Dataset, *, max_depth: int = 3) -> tuple[set[str], int]:
    """Keywords of identifying attributes present in ``ds`` (down to ``max_depth`` levels of
    sequences) and the number of private attributes. Values are never read."""
    found: set[str] = set()
    private = 0
    stack: list[tuple[Dataset, int]] = [(ds, 0)]
    while stack:
        current, depth = stack.pop()
        for tag in list(current.keys()):
            if tag.is_private:
                private += 1
                continue
            elem = current.get_item(tag)
            keyword = keyword_for_tag(tag)
            if keyword in IDENTIFYING_KEYWORDS:
                found.add(keyword)
            if depth < max_depth and getattr(elem, "VR", None) == "SQ":
                try:
                    items = current[tag].value
                except Exception:  # a damaged sequence: nothing more to report from it
                    continue
                stack.extend((item, depth + 1) for item in items if isinstance(item, Dataset))
    return found, private


def removed_report(found: set[str], private: int) -> tuple[str, ...]:
    """The ``Scan.removed`` tuple: sorted keywords, then a count of private attributes."""
    names = sorted(found)
    if private:
        names.append(f"private attributes ({private})")
    return tuple(names)


# Attributes naming people, places or record numbers. A technical text value that shares a word
# with one of them (say a name typed into Manufacturer) is dropped from the summary.
_NAMING_KEYWORDS = (
    "PatientName",
    "PatientID",
    "OtherPatientIDs",
    "OtherPatientNames",
    "PatientBirthName",
    "PatientMotherBirthName",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "IssuerOfPatientID",
    "MedicalRecordLocator",
    "AccessionNumber",
    "StudyID",
    "ReferringPhysicianName",
    "PerformingPhysicianName",
    "PhysiciansOfRecord",
    "NameOfPhysiciansReadingStudy",
    "RequestingPhysician",
    "OperatorsName",
    "InstitutionName",
    "InstitutionAddress",
    "InstitutionalDepartmentName",
    "StationName",
)
# Words too common in institution names to identify anyone.
_COMMON_WORDS = frozenset(
    [
        "the",
        "and",
        "for",
        "of",
        "hospital",
        "hospitals",
        "clinic",
        "clinics",
        "clinical",
        "university",
        "medical",
        "medicine",
        "center",
        "centre",
        "health",
        "healthcare",
        "imaging",
        "radiology",
        "department",
        "institute",
        "research",
    ]
)
_WORD = re.compile(r"[A-Za-z0-9]+")


def _words(text: str) -> set[str]:
    return {w.lower() for w in _WORD.findall(text) if len(w) >= 3}


def identifying_words(ds: Dataset) -> set[str]:
    """Words (3+ characters, lower case) of the naming attributes of ``ds``, for comparison
    only: they are never stored or shown."""
    words: set[str] = set()
    for keyword in _NAMING_KEYWORDS:
        try:
            value = ds.get(keyword)
        except Exception:  # a damaged element: nothing to compare against
            continue
        if value is None:
            continue
        values = value if isinstance(value, list | tuple) else [value]
        for item in values:
            words |= _words(str(item))
    return words - _COMMON_WORDS


def technical_summary(ds: Dataset) -> dict[str, Any]:
    """The allow-listed, PHI-free technical facts of one DICOM dataset."""
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    naming = identifying_words(ds)

    def text(keyword: str) -> str | None:
        value = safe_text(ds.get(keyword))
        if value is not None and _words(value) & naming:
            return None
        return value

    summary: dict[str, Any] = {
        "modality": safe_text(ds.get("Modality")),
        "manufacturer": text("Manufacturer"),
        "manufacturer_model": text("ManufacturerModelName"),
        "body_part": text("BodyPartExamined"),
        "kvp": safe_number(ds.get("KVP")),
        "slice_thickness_mm": safe_number(ds.get("SliceThickness")),
        "magnetic_field_t": safe_number(ds.get("MagneticFieldStrength")),
        "photometric": safe_text(ds.get("PhotometricInterpretation")),
        "bits_stored": safe_number(ds.get("BitsStored")),
        "window_center": safe_number(ds.get("WindowCenter")),
        "window_width": safe_number(ds.get("WindowWidth")),
        "transfer_syntax": safe_text(ts.name) if ts is not None else None,
    }
    return summary

"""The sample scans a clinician can try without uploading anything: a short catalogue of
``sample_data/`` with stable ids (used in deep links) and PHI-free labels."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "sample_data"


@dataclass(frozen=True)
class Sample:
    """One sample scan: ``id`` for links, ``label`` for people, ``path`` under sample_data/."""

    id: str
    label: str
    path: str

    @property
    def file(self) -> Path:
        """Where the sample is on disk."""
        return SAMPLE_DIR / self.path


SAMPLES: tuple[Sample, ...] = (
    Sample(
        "ct-chest-phantom", "CT chest phantom — synthetic, 64 slices (zip)", "ct-chest-phantom.zip"
    ),
    Sample(
        "ct-chest-phantom-nifti",
        "CT chest phantom — synthetic, 64 slices (NIfTI)",
        "ct-chest-phantom.nii.gz",
    ),
    Sample(
        "mr-brain-template", "MR brain T1 — MNI152 template, 2 mm (NIfTI)", "mni152-t1-2mm.nii.gz"
    ),
    Sample(
        "mr-brain-slice", "MR brain T1 — one coronal slice (NIfTI)", "dipy-t1-coronal-slice.nii.gz"
    ),
    Sample("cr-chest", "Chest radiograph (CR, DICOM)", "dicom/RG1_J2KI.dcm"),
    Sample("ct-abdomen-slice", "CT abdomen — one axial slice (DICOM)", "dicom/explicit_VR-UN.dcm"),
    Sample("ct-head-slice", "CT head — one axial slice (DICOM)", "dicom/693_J2KR.dcm"),
    Sample("ct-spine-small", "CT thoracic spine — one small slice (DICOM)", "dicom/CT_small.dcm"),
    Sample("mr-shoulder-slice", "MR shoulder — one oblique slice (DICOM)", "dicom/MR2_J2KI.dcm"),
    Sample(
        "mr-head-multiframe", "MR head — 10 frames without geometry (DICOM)", "dicom/emri_small.dcm"
    ),
    Sample("mr-small", "MR — one small slice (DICOM)", "dicom/MR_small.dcm"),
)

BY_ID: dict[str, Sample] = {s.id: s for s in SAMPLES}


def available() -> list[Sample]:
    """The samples whose files are present (a trimmed checkout may lack some)."""
    return [s for s in SAMPLES if s.file.exists()]

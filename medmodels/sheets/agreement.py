"""How closely a variant (int8, fp16, ORT format) reproduces its parent on the reference input.

Both run through the full ``predict()`` pipeline, so what is compared is what a clinician would
see: segmentation label maps (voxel label agreement and Dice per non-background label) or
classification probabilities (top-label agreement and the largest absolute difference).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from medmodels.inference import Prediction, predict
from medmodels.scans.types import Scan
from medmodels.store.store import ModelVersion


class Agreement(BaseModel):
    """A variant's output compared with its parent's (provenance: ``measured``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    provenance: str = "measured"
    source: str
    parent: str
    task: Literal["classification", "segmentation"]
    reference: str
    label_agreement: float | None = None
    dice: dict[str, float] | None = None
    top_label_agreement: float | None = None
    max_probability_difference: float | None = None
    decision_agreement: float | None = None

    @property
    def min_dice(self) -> float | None:
        """The worst Dice over the non-background labels."""
        return min(self.dice.values()) if self.dice else None

    def describe(self) -> str:
        """One line: ``Dice lung 0.991, voxel agreement 99.8 % vs 1.0.0``."""
        if self.task == "segmentation":
            dice = ", ".join(f"{k} {v:.3f}" for k, v in (self.dice or {}).items())
            return (
                f"Dice {dice or 'n/a'}; voxel label agreement "
                f"{(self.label_agreement or 0.0):.2%} vs {self.parent}"
            )
        return (
            f"top label {'agrees' if self.top_label_agreement == 1.0 else 'differs'}, "
            f"max probability difference {(self.max_probability_difference or 0.0):.4f} "
            f"vs {self.parent}"
        )


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two boolean masks; 1.0 when both are empty (they agree)."""
    total = int(a.sum()) + int(b.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(a, b).sum()) / total


def compare_predictions(
    parent: Prediction, variant: Prediction, *, parent_version: str, reference: str
) -> Agreement:
    """Agreement of ``variant`` with ``parent`` (both from the same scan)."""
    source = f"predict() of both versions on {reference}"
    if parent.task == "segmentation":
        a, b = parent.label_volume, variant.label_volume
        if a is None or b is None or a.shape != b.shape:
            raise ValueError("both predictions need label volumes of the same shape")
        scores = {
            lab.name: dice(a == lab.index, b == lab.index)
            for lab in parent.labels
            if lab.index != 0
        }
        return Agreement(
            source=source,
            parent=parent_version,
            task="segmentation",
            reference=reference,
            label_agreement=float(np.mean(a == b)),
            dice=scores,
        )
    p, q = parent.probabilities, variant.probabilities
    diff = max((abs(p[k] - q.get(k, float("nan"))) for k in p), default=0.0)
    decision = None
    if parent.decision is not None and variant.decision is not None:
        decision = 1.0 if parent.decision == variant.decision else 0.0
    return Agreement(
        source=source,
        parent=parent_version,
        task="classification",
        reference=reference,
        top_label_agreement=1.0 if parent.top_label == variant.top_label else 0.0,
        max_probability_difference=float(diff),
        decision_agreement=decision,
    )


def measure_agreement(
    parent: ModelVersion, variant: ModelVersion, scan: Scan, *, reference: str
) -> Agreement:
    """Run both versions on ``scan`` and compare."""
    return compare_predictions(
        predict(scan, parent),
        predict(scan, variant),
        parent_version=parent.version,
        reference=reference,
    )

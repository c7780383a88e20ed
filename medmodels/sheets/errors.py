"""Errors of the sheets package (both are :class:`~medmodels.errors.MedModelsError`)::

MedModelsError
└── SheetError        (ValueError)  a sheet cannot be measured, stored, read or imported
    └── VariantError                 an optimised variant cannot be built or verified
"""

from __future__ import annotations

from medmodels.errors import MedModelsError


class SheetError(MedModelsError, ValueError):
    """A hardware/cost sheet cannot be measured, stored, read or imported; says what to do."""


class VariantError(SheetError):
    """An optimised variant (int8, fp16, ORT format) cannot be built, loaded or verified."""

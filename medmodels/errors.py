"""Every error MedModels raises on purpose, so callers can catch one root and show its message.

Messages say what was wrong and what to do about it. They never contain a value read from a
file header (it may be a patient's name), only fixed text, counts and sizes.

    MedModelsError
    ├── ConfigError                (ValueError)   a setting has an unusable value
    ├── UnreadableScanError        (ValueError)   an upload could not be turned into a scan
    │   └── UploadLimitError                      the upload exceeds a size/count/ratio limit
    ├── ScanMismatchError          (ValueError)   the scan does not fit the model's declared input
    ├── ManifestError              (ValueError)   a manifest.json is invalid
    ├── ModelNotFoundError         (LookupError)  no such model, version or alias (lists choices)
    ├── IntegrityError                            a stored file does not match its SHA-256
    ├── AdmissionError             (ValueError)   a model failed the publish checks
    ├── VersionExistsError         (FileExistsError) a version folder is immutable
    ├── AliasError                 (ValueError)   an alias name or alias move is not allowed
    └── HistoryError                              the prediction log cannot be read or written
        └── DatabaseBusyError                     another process holds the database file
"""

from __future__ import annotations

from dataclasses import dataclass


class MedModelsError(Exception):
    """Root of every error MedModels raises deliberately."""


class ConfigError(MedModelsError, ValueError):
    """A setting (environment variable ``MEDMODELS_*``) has an unusable value."""


@dataclass(frozen=True)
class FileProblem:
    """Why one uploaded file (or archive entry) was not used.

    ``name`` is the name the user gave the file; it is for showing back to that user only and
    must never be logged or stored. ``reason`` is fixed text that never contains header values.
    ``code`` is a short machine-readable reason (e.g. ``"truncated"``) that may be logged.
    """

    name: str
    reason: str
    code: str

    def __str__(self) -> str:
        return f"{self.name}: {self.reason}"


class UnreadableScanError(MedModelsError, ValueError):
    """An upload could not be turned into a scan; ``problems`` lists every file and why."""

    def __init__(self, message: str, problems: list[FileProblem] | None = None, code: str = ""):
        super().__init__(message)
        self.problems: list[FileProblem] = list(problems or [])
        self.code = code or (self.problems[0].code if self.problems else "unreadable")

    @classmethod
    def for_file(cls, name: str, code: str, reason: str) -> UnreadableScanError:
        """The error for one file ``name`` with problem ``code`` and ``reason``."""
        return cls(reason, [FileProblem(name, reason, code)], code=code)

    def __reduce__(self) -> tuple[type, tuple[str, list[FileProblem], str]]:
        """Keep the problems when the error crosses a process boundary."""
        return (type(self), (str(self), self.problems, self.code))


class UploadLimitError(UnreadableScanError):
    """The upload exceeds a configured limit (bytes, files, entries, ratio or pixels)."""


class ScanMismatchError(MedModelsError, ValueError):
    """The scan does not fit what the model declares it accepts (modality, size, spacing...)."""


class ManifestError(MedModelsError, ValueError):
    """A model manifest is missing, malformed or inconsistent with its files."""


class ModelNotFoundError(MedModelsError, LookupError):
    """A model, version or alias does not exist; the message lists the valid choices."""


class IntegrityError(MedModelsError):
    """A file in a published model version does not match the SHA-256 in its manifest."""


class AdmissionError(MedModelsError, ValueError):
    """A model failed the checks that run before it may be published."""


class VersionExistsError(MedModelsError, FileExistsError):
    """A published version folder is immutable and cannot be written again."""


class AliasError(MedModelsError, ValueError):
    """An alias name is invalid, or an alias move (e.g. a rollback) has nowhere to go."""


class HistoryError(MedModelsError):
    """The prediction history database cannot be opened, read or written."""


class DatabaseBusyError(HistoryError):
    """Another process holds the history database (DuckDB allows one writing process).

    ``pid`` and ``program`` name the holder when DuckDB reports it.
    """

    def __init__(self, message: str, pid: int | None = None, program: str | None = None):
        super().__init__(message)
        self.pid = pid
        self.program = program
